//! What the lock reports: `status` (id 0) with its update summary, and
//! the owner's update settings it carries; `presence` (id 3).

use super::*;

/// The owner's update settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Install without asking when a release fixes a high or critical CVE.
    pub auto_install_cve: bool,
    /// Install only while the bolt is withdrawn.
    pub install_needs_unlocked: bool,
}

impl Settings {
    pub(super) fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, {
            "auto_install_cve" => self.auto_install_cve,
            "install_needs_unlocked" => self.install_needs_unlocked,
        })
    }
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Settings, Error> {
        read_map!(r, 0, ("settings", "a map") => Settings {
            auto_install_cve: "auto_install_cve" => flag,
            install_needs_unlocked: "install_needs_unlocked" => flag,
        })
    }
}

impl Entry for Settings {
    fn write_entry(&self, w: &mut Writer<'_>, key: &str) -> Result<(), Error> {
        w.text(key)?;
        self.write(w)
    }
}

/// Why a consented install waits: the typed form of an update summary's
/// `reason` (which is in words, for people). On the wire, in the summary
/// map: `"why": "battery-low"` with `"have_mwh"` and `"need_mwh"`, or
/// `"why": "bolt-locked"`. A client decides on this, never on `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Postponement {
    /// The battery holds less than the release's `minimum-battery`.
    BatteryLow {
        /// The energy the battery holds, mWh.
        have_mwh: u64,
        /// The energy the install needs, mWh.
        need_mwh: u64,
    },
    /// Installs need the bolt withdrawn, and it is thrown.
    BoltLocked,
}

impl Postponement {
    /// The `why` text.
    pub fn as_str(&self) -> &'static str {
        match self {
            Postponement::BatteryLow { .. } => "battery-low",
            Postponement::BoltLocked => "bolt-locked",
        }
    }
}

/// The pending update's summary (in `status`, and the `consent` answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateSummary<'a> {
    /// The manifest's sequence number.
    pub sequence: u64,
    /// The release version.
    pub version: &'a str,
    /// Where it stands.
    pub state: UpdateState,
    /// Why it is postponed, in words (for people).
    pub reason: Option<&'a str>,
    /// Why it is postponed, typed (what a client decides on).
    pub why: Option<Postponement>,
    /// How many CVEs it fixes.
    pub cves: u64,
    /// The highest severity among them.
    pub highest: Option<Severity>,
}

impl<'a> UpdateSummary<'a> {
    pub(super) fn entries(&self) -> usize {
        let why = match self.why {
            Some(Postponement::BatteryLow { .. }) => 3,
            Some(Postponement::BoltLocked) => 1,
            None => 0,
        };
        4 + why + usize::from(self.reason.is_some()) + usize::from(self.highest.is_some())
    }
    pub(super) fn write_entries(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        // Deterministic order: shorter keys first, then bytewise.
        if let Some(p) = &self.why {
            w.entry_text("why", p.as_str())?;
        }
        w.entry_u64("cves", self.cves)?;
        w.entry_text("state", self.state.as_str())?;
        if let Some(r) = self.reason {
            w.entry_text("reason", r)?;
        }
        if let Some(h) = self.highest {
            w.entry_text("highest", h.as_str())?;
        }
        w.entry_text("version", self.version)?;
        if let Some(Postponement::BatteryLow { have_mwh, need_mwh }) = self.why {
            w.entry_u64("have_mwh", have_mwh)?;
            w.entry_u64("need_mwh", need_mwh)?;
        }
        w.entry_u64("sequence", self.sequence)
    }
}

#[derive(Default)]
pub(super) struct SummaryFields<'a> {
    sequence: Option<u64>,
    version: Option<&'a str>,
    state: Option<UpdateState>,
    reason: Option<&'a str>,
    cves: Option<u64>,
    highest: Option<Severity>,
    why: Option<&'a str>,
    have_mwh: Option<u64>,
    need_mwh: Option<u64>,
}

impl<'a> SummaryFields<'a> {
    /// The summary's keys.
    pub(super) const NAMES: [&'static str; 9] = [
        "sequence", "version", "state", "reason", "cves", "highest", "why", "have_mwh", "need_mwh",
    ];

    /// Reads the value of [`Self::NAMES`]`[i]`.
    pub(super) fn value(
        &mut self,
        i: usize,
        name: &'static str,
        r: &mut Reader<'a>,
    ) -> Result<(), Error> {
        match i {
            0 => self.sequence = Some(uint(r, name)?),
            1 => self.version = Some(text(r, name)?),
            2 => self.state = Some(read_state(r, name)?),
            3 => self.reason = Some(text(r, name)?),
            4 => self.cves = Some(uint(r, name)?),
            5 => self.highest = Some(read_severity(r, name)?),
            6 => self.why = Some(text(r, name)?),
            7 => self.have_mwh = Some(uint(r, name)?),
            _ => self.need_mwh = Some(uint(r, name)?),
        }
        Ok(())
    }
    /// The typed postponement: `why` with the figures its kind needs;
    /// figures without a `why` that takes them are refused.
    pub(super) fn why(&self) -> Result<Option<Postponement>, Error> {
        let invalid = Error::Invalid {
            field: "why",
            expected: "battery-low (with have_mwh and need_mwh) or bolt-locked",
        };
        match self.why {
            None if self.have_mwh.is_some() || self.need_mwh.is_some() => Err(invalid),
            None => Ok(None),
            Some("battery-low") => Ok(Some(Postponement::BatteryLow {
                have_mwh: cbor::need(self.have_mwh, "have_mwh")?,
                need_mwh: cbor::need(self.need_mwh, "need_mwh")?,
            })),
            Some("bolt-locked") if self.have_mwh.is_none() && self.need_mwh.is_none() => {
                Ok(Some(Postponement::BoltLocked))
            }
            Some(_) => Err(invalid),
        }
    }
    pub(super) fn summary(self) -> Result<Option<UpdateSummary<'a>>, Error> {
        if self.sequence.is_none() && self.state.is_none() && self.version.is_none() {
            return Ok(None);
        }
        Ok(Some(UpdateSummary {
            sequence: cbor::need(self.sequence, "sequence")?,
            version: cbor::need(self.version, "version")?,
            state: cbor::need(self.state, "state")?,
            reason: self.reason,
            why: self.why()?,
            cves: cbor::need(self.cves, "cves")?,
            highest: self.highest,
        }))
    }
}

impl Entry for UpdateSummary<'_> {
    fn write_entry(&self, w: &mut Writer<'_>, key: &str) -> Result<(), Error> {
        w.text(key)?;
        w.map(self.entries())?;
        self.write_entries(w)
    }
}

/// The `update` map of a `status` answer: a whole summary.
fn summary_map<'a>(r: &mut Reader<'a>, name: &'static str) -> Result<UpdateSummary<'a>, Error> {
    let mut f = SummaryFields::default();
    let mut e = |i, name, r: &mut Reader<'a>| f.value(i, name, r);
    field(
        cbor::read_fields(r, &SummaryFields::NAMES, 0, &mut e),
        name,
        "a map",
    )?;
    f.summary()?.ok_or(Error::Invalid {
        field: name,
        expected: "an update summary",
    })
}

message! {
    /// `status` answer (also `lock` and `unlock`'s).
    pub struct Status<'a> {
        /// The bolt.
        pub bolt: Bolt = "bolt" => |r, name| text_of(r, name, "locked or unlocked", Bolt::parse),
        /// The door.
        pub door: Door = "door" => |r, name| text_of(r, name, "open or closed", Door::parse),
        /// Battery voltage, mV.
        pub battery_mv: u64 = "battery_mv" => uint,
        /// Battery energy left, mWh.
        pub battery_mwh: u64 = "battery_mwh" => uint,
        /// The tamper switch tripped.
        pub tamper: bool = "tamper" => flag,
        /// Seconds of keypad lockout left.
        pub lockout_s: u64 = "lockout_s" => uint,
        /// The lock model.
        pub model: &'a str = "model" => text,
        /// The running release's version (`recovery` when none runs).
        pub version: &'a str = "version" => text,
        /// The running slot.
        pub slot: Option<u64> = "slot" => uint,
        /// The running image's SHA-256 (a delta's base must be this).
        pub image: Option<[u8; 32]> = "image" => |r, name| array(r, name, "32 bytes (SHA-256)"),
        /// The running image is on trial.
        pub trial: bool = "trial" => flag,
        /// Seconds left in the presence window.
        pub presence_s: u64 = "presence_s" => uint,
        /// Paired owners.
        pub owners: u64 = "owners" => uint,
        /// The pending update.
        pub update: Option<UpdateSummary<'a>> = "update" => summary_map,
        /// The owner's settings.
        pub settings: Settings = "settings" => |r, _| Settings::read(r),
        /// The lock's device key (Ed25519, raw), which signs its audit log.
        pub device_key: Option<[u8; 32]> = "device_key" => |r, name| array(r, name, "32 bytes (Ed25519)"),
    }
    encode(m) {
        "bolt" => m.bolt.as_str(),
        "door" => m.door.as_str(),
        "slot" => m.slot,
        "image" => m.image,
        "model" => m.model,
        "trial" => m.trial,
        "owners" => m.owners,
        "tamper" => m.tamper,
        "update" => m.update,
        "version" => m.version,
        "settings" => m.settings,
        "lockout_s" => m.lockout_s,
        "battery_mv" => m.battery_mv,
        "device_key" => m.device_key,
        "presence_s" => m.presence_s,
        "battery_mwh" => m.battery_mwh,
    }
}

message! {
    /// `presence` answer.
    pub struct Presence {
        /// The window is open.
        pub open: bool = "open" => flag,
        /// Seconds left.
        pub remaining_s: u64 = "remaining_s" => uint,
    }
    encode(m) { "open" => m.open, "remaining_s" => m.remaining_s }
}
