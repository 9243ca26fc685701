//! The pending update: its release `notes` (id 4) with their CVEs and
//! the owner's `consent` (id 5).

use super::status::SummaryFields;
use super::*;

/// A CVE a release fixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cve<'a> {
    /// Its id (`CVE-2024-12345`).
    pub id: &'a str,
    /// Its severity.
    pub severity: Severity,
}

impl<'a> Item<'a> for Cve<'a> {
    fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, { "id" => self.id, "severity" => self.severity.as_str() })
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, Error> {
        read_map!(r, 5, ("cves", "an array of maps") => Cve {
            id: "cves.id" => text,
            severity: "cves.severity" => read_severity,
        })
    }
}

/// `notes` answer: the pending update's release notes and CVEs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Notes<'a> {
    /// The manifest's sequence number.
    pub sequence: u64,
    /// The release version.
    pub version: &'a str,
    /// The release notes (untrusted text: escape before printing).
    pub notes: &'a str,
    /// The CVEs it fixes (at most [`MAX_CVES`]).
    pub cves: Seq<'a, Cve<'a>>,
    /// The energy an install needs, mWh.
    pub min_battery_mwh: Option<u64>,
    /// Where the update stands.
    pub state: UpdateState,
    /// Why it is postponed.
    pub reason: Option<&'a str>,
}

impl<'a> Message<'a> for Notes<'a> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, {
            "cves" => self.cves,
            "notes" => self.notes,
            "state" => self.state.as_str(),
            "reason" => self.reason,
            "version" => self.version,
            "sequence" => self.sequence,
            "min_battery_mwh" => self.min_battery_mwh,
        })
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        read_map!(body => Notes {
            sequence: "sequence" => uint,
            version: "version" => text,
            notes: "notes" => text,
            cves: "cves" => |r, name| Seq::read(r, name, MAX_CVES),
            min_battery_mwh: "min_battery_mwh" => uint,
            state: "state" => read_state,
            reason: "reason" => text,
        })
    }
}

/// `consent` request: `{"accept": bool, "auth"?}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consent {
    /// Accept (install) or refuse (erase) the pending update.
    pub accept: bool,
    /// An owner's authentication.
    pub auth: Option<Auth>,
}

impl<'a> Message<'a> for Consent {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, { "auth" => self.auth, "accept" => self.accept })
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        read_map!(body => Consent {
            accept: "accept" => flag,
            auth: "auth" => owner_auth,
        })
    }
}

/// `consent` answer: the update's summary at the top level (an empty map
/// when nothing is pending any more).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsentRsp<'a> {
    /// The summary.
    pub update: Option<UpdateSummary<'a>>,
}

impl<'a> Message<'a> for ConsentRsp<'a> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        match &self.update {
            Some(u) => {
                w.map(u.entries())?;
                u.write_entries(w)
            }
            None => w.map(0),
        }
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let mut f = SummaryFields::default();
        cbor::read_body(body, &SummaryFields::NAMES, &mut |i, name, r| {
            f.value(i, name, r)
        })?;
        Ok(ConsentRsp {
            update: f.summary()?,
        })
    }
}
