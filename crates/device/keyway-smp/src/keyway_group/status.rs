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
        w.map(2)?;
        w.entry_bool("auto_install_cve", self.auto_install_cve)?;
        w.entry_bool("install_needs_unlocked", self.install_needs_unlocked)
    }
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Settings, Error> {
        let (mut a, mut n) = (None, None);
        let names = ["auto_install_cve", "install_needs_unlocked"];
        let mut value = |i, name, r: &mut Reader<'_>| {
            let v = Some(flag(r, name)?);
            if i == 0 {
                a = v
            } else {
                n = v
            }
            Ok(())
        };
        field(
            cbor::read_fields(r, &names, 0, &mut value),
            "settings",
            "a map",
        )?;
        Ok(Settings {
            auto_install_cve: cbor::need(a, "auto_install_cve")?,
            install_needs_unlocked: cbor::need(n, "install_needs_unlocked")?,
        })
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
            1 => self.version = Some(txt(r, name)?),
            2 => self.state = Some(text_of(r, name, "an update state", UpdateState::parse)?),
            3 => self.reason = Some(txt(r, name)?),
            4 => self.cves = Some(uint(r, name)?),
            5 => self.highest = Some(text_of(r, name, "a severity", Severity::parse)?),
            6 => self.why = Some(txt(r, name)?),
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

/// `status` answer (also `lock` and `unlock`'s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status<'a> {
    /// The bolt.
    pub bolt: Bolt,
    /// The door.
    pub door: Door,
    /// Battery voltage, mV.
    pub battery_mv: u64,
    /// Battery energy left, mWh.
    pub battery_mwh: u64,
    /// The tamper switch tripped.
    pub tamper: bool,
    /// Seconds of keypad lockout left.
    pub lockout_s: u64,
    /// The lock model.
    pub model: &'a str,
    /// The running release's version (`recovery` when none runs).
    pub version: &'a str,
    /// The running slot.
    pub slot: Option<u64>,
    /// The running image's SHA-256 (a delta's base must be this).
    pub image: Option<[u8; 32]>,
    /// The running image is on trial.
    pub trial: bool,
    /// Seconds left in the presence window.
    pub presence_s: u64,
    /// Paired owners.
    pub owners: u64,
    /// The pending update.
    pub update: Option<UpdateSummary<'a>>,
    /// The owner's settings.
    pub settings: Settings,
    /// The lock's device key (Ed25519, raw), which signs its audit log.
    pub device_key: Option<[u8; 32]>,
}

impl<'a> Message<'a> for Status<'a> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        let n = 12
            + usize::from(self.slot.is_some())
            + usize::from(self.image.is_some())
            + usize::from(self.update.is_some())
            + usize::from(self.device_key.is_some());
        w.map(n)?;
        w.entry_text("bolt", self.bolt.as_str())?;
        w.entry_text("door", self.door.as_str())?;
        if let Some(s) = self.slot {
            w.entry_u64("slot", s)?;
        }
        if let Some(i) = &self.image {
            w.entry_bytes("image", i)?;
        }
        w.entry_text("model", self.model)?;
        w.entry_bool("trial", self.trial)?;
        w.entry_u64("owners", self.owners)?;
        w.entry_bool("tamper", self.tamper)?;
        if let Some(u) = &self.update {
            w.text("update")?;
            w.map(u.entries())?;
            u.write_entries(w)?;
        }
        w.entry_text("version", self.version)?;
        w.text("settings")?;
        self.settings.write(w)?;
        w.entry_u64("lockout_s", self.lockout_s)?;
        w.entry_u64("battery_mv", self.battery_mv)?;
        if let Some(k) = &self.device_key {
            w.entry_bytes("device_key", k)?;
        }
        w.entry_u64("presence_s", self.presence_s)?;
        w.entry_u64("battery_mwh", self.battery_mwh)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut bolt, mut door, mut mv, mut mwh, mut tamper) = (None, None, None, None, None);
        let (mut lockout, mut model, mut version, mut slot, mut image) =
            (None, None, None, None, None);
        let (mut trial, mut presence, mut owners, mut update, mut settings, mut dk) =
            (None, None, None, None, None, None);
        let names = [
            "bolt",
            "door",
            "battery_mv",
            "battery_mwh",
            "tamper",
            "lockout_s",
            "model",
            "version",
            "slot",
            "image",
            "trial",
            "presence_s",
            "owners",
            "update",
            "settings",
            "device_key",
        ];
        cbor::read_body(body, &names, &mut |i, name, r| {
            match i {
                0 => bolt = Some(text_of(r, name, "locked or unlocked", Bolt::parse)?),
                1 => door = Some(text_of(r, name, "open or closed", Door::parse)?),
                2 => mv = Some(uint(r, name)?),
                3 => mwh = Some(uint(r, name)?),
                4 => tamper = Some(flag(r, name)?),
                5 => lockout = Some(uint(r, name)?),
                6 => model = Some(txt(r, name)?),
                7 => version = Some(txt(r, name)?),
                8 => slot = Some(uint(r, name)?),
                9 => image = Some(fixed(r, name, "32 bytes (SHA-256)")?),
                10 => trial = Some(flag(r, name)?),
                11 => presence = Some(uint(r, name)?),
                12 => owners = Some(uint(r, name)?),
                13 => {
                    let mut f = SummaryFields::default();
                    let mut e = |i, name, r: &mut Reader<'a>| f.value(i, name, r);
                    field(
                        cbor::read_fields(r, &SummaryFields::NAMES, 0, &mut e),
                        name,
                        "a map",
                    )?;
                    update = Some(f.summary()?.ok_or(Error::Invalid {
                        field: name,
                        expected: "an update summary",
                    })?);
                }
                14 => settings = Some(Settings::read(r)?),
                _ => dk = Some(fixed(r, name, "32 bytes (Ed25519)")?),
            }
            Ok(())
        })?;
        Ok(Status {
            bolt: cbor::need(bolt, "bolt")?,
            door: cbor::need(door, "door")?,
            battery_mv: cbor::need(mv, "battery_mv")?,
            battery_mwh: cbor::need(mwh, "battery_mwh")?,
            tamper: cbor::need(tamper, "tamper")?,
            lockout_s: cbor::need(lockout, "lockout_s")?,
            model: cbor::need(model, "model")?,
            version: cbor::need(version, "version")?,
            slot,
            image,
            trial: cbor::need(trial, "trial")?,
            presence_s: cbor::need(presence, "presence_s")?,
            owners: cbor::need(owners, "owners")?,
            update,
            settings: cbor::need(settings, "settings")?,
            device_key: dk,
        })
    }
}

/// `presence` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presence {
    /// The window is open.
    pub open: bool,
    /// Seconds left.
    pub remaining_s: u64,
}

impl<'a> Message<'a> for Presence {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(2)?;
        w.entry_bool("open", self.open)?;
        w.entry_u64("remaining_s", self.remaining_s)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut o, mut s) = (None, None);
        cbor::read_body(body, &["open", "remaining_s"], &mut |i, name, r| {
            match i {
                0 => o = Some(flag(r, name)?),
                _ => s = Some(uint(r, name)?),
            }
            Ok(())
        })?;
        Ok(Presence {
            open: cbor::need(o, "open")?,
            remaining_s: cbor::need(s, "remaining_s")?,
        })
    }
}
