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
        w.map(2)?;
        w.entry_text("id", self.id)?;
        w.entry_text("severity", self.severity.as_str())
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, Error> {
        let (mut id, mut sev) = (None, None);
        let names = ["cves.id", "cves.severity"];
        let mut e = |i, name, r: &mut Reader<'a>| {
            match i {
                0 => id = Some(txt(r, name)?),
                _ => sev = Some(text_of(r, name, "a severity", Severity::parse)?),
            }
            Ok(())
        };
        field(
            cbor::read_fields(r, &names, 5, &mut e),
            "cves",
            "an array of maps",
        )?;
        Ok(Cve {
            id: cbor::need(id, "cves.id")?,
            severity: cbor::need(sev, "cves.severity")?,
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
        w.map(
            5 + usize::from(self.min_battery_mwh.is_some()) + usize::from(self.reason.is_some()),
        )?;
        w.text("cves")?;
        self.cves.write(w)?;
        w.entry_text("notes", self.notes)?;
        w.entry_text("state", self.state.as_str())?;
        if let Some(r) = self.reason {
            w.entry_text("reason", r)?;
        }
        w.entry_text("version", self.version)?;
        w.entry_u64("sequence", self.sequence)?;
        if let Some(b) = self.min_battery_mwh {
            w.entry_u64("min_battery_mwh", b)?;
        }
        Ok(())
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut seq, mut version, mut notes, mut cves) = (None, None, None, None);
        let (mut min, mut state, mut reason) = (None, None, None);
        let names = [
            "sequence",
            "version",
            "notes",
            "cves",
            "min_battery_mwh",
            "state",
            "reason",
        ];
        cbor::read_body(body, &names, &mut |i, name, r| {
            match i {
                0 => seq = Some(uint(r, name)?),
                1 => version = Some(txt(r, name)?),
                2 => notes = Some(txt(r, name)?),
                3 => cves = Some(Seq::read(r, name, MAX_CVES)?),
                4 => min = Some(uint(r, name)?),
                5 => state = Some(text_of(r, name, "an update state", UpdateState::parse)?),
                _ => reason = Some(txt(r, name)?),
            }
            Ok(())
        })?;
        Ok(Notes {
            sequence: cbor::need(seq, "sequence")?,
            version: cbor::need(version, "version")?,
            notes: cbor::need(notes, "notes")?,
            cves: cbor::need(cves, "cves")?,
            min_battery_mwh: min,
            state: cbor::need(state, "state")?,
            reason,
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
        w.map(1 + usize::from(self.auth.is_some()))?;
        Auth::write_entry(self.auth.as_ref(), w)?;
        w.entry_bool("accept", self.accept)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut accept, mut auth) = (false, None);
        let names = ["accept", "auth"];
        let seen = cbor::read_body(body, &names, &mut |i, name, r| {
            match i {
                0 => accept = flag(r, name)?,
                _ => auth = Some(Auth::read(r)?),
            }
            Ok(())
        })?;
        cbor::require(seen, 0b1, &names)?;
        Ok(Consent { accept, auth })
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
