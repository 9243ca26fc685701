//! The pending update: its release `notes` (id 4) with their CVEs and
//! the owner's `consent` (id 5).

use super::status::SummaryFields;
use super::*;

message! {
    /// A CVE a release fixes.
    item(5, "cves", "an array of maps")
    pub struct Cve<'a> {
        /// Its id (`CVE-2024-12345`).
        pub id: &'a str = "cves.id" => text,
        /// Its severity.
        pub severity: Severity = "cves.severity" => read_severity,
    }
    encode(m) { "id" => m.id, "severity" => m.severity.as_str() }
}

message! {
    /// `notes` answer: the pending update's release notes and CVEs.
    pub struct Notes<'a> {
        /// The manifest's sequence number.
        pub sequence: u64 = "sequence" => uint,
        /// The release version.
        pub version: &'a str = "version" => text,
        /// The release notes (untrusted text: escape before printing).
        pub notes: &'a str = "notes" => text,
        /// The CVEs it fixes (at most [`MAX_CVES`]).
        pub cves: Seq<'a, Cve<'a>> = "cves" => |r, name| Seq::read(r, name, MAX_CVES),
        /// The energy an install needs, mWh.
        pub min_battery_mwh: Option<u64> = "min_battery_mwh" => uint,
        /// Where the update stands.
        pub state: UpdateState = "state" => read_state,
        /// Why it is postponed.
        pub reason: Option<&'a str> = "reason" => text,
    }
    encode(m) {
        "cves" => m.cves,
        "notes" => m.notes,
        "state" => m.state.as_str(),
        "reason" => m.reason,
        "version" => m.version,
        "sequence" => m.sequence,
        "min_battery_mwh" => m.min_battery_mwh,
    }
}

message! {
    /// `consent` request: `{"accept": bool, "auth"?}`.
    pub struct Consent {
        /// Accept (install) or refuse (erase) the pending update.
        pub accept: bool = "accept" => flag,
        /// An owner's authentication.
        pub auth: Option<Auth> = "auth" => owner_auth,
    }
    encode(m) { "auth" => m.auth, "accept" => m.accept }
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
