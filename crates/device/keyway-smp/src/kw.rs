//! The Keyway group (64): the lock's own commands (FORMAT.md, "The Keyway
//! SMP group"). Every body is a CBOR map with text keys, as in the
//! standard groups; unknown keys are skipped, so a newer lock's extra
//! fields do not break an older client.

use crate::Message;
use crate::auth::Auth;
use crate::cbor::{self, Error, Reader, Writer, field, fixed};
use crate::seq::{Item, Seq};

/// Keyway group command ids.
pub mod cmd {
    /// Read: the lock's state.
    pub const STATUS: u8 = 0;
    /// Write: throw the bolt.
    pub const LOCK: u8 = 1;
    /// Write: withdraw the bolt.
    pub const UNLOCK: u8 = 2;
    /// Read: the presence window.
    pub const PRESENCE: u8 = 3;
    /// Read: the pending update's release notes.
    pub const NOTES: u8 = 4;
    /// Write: accept or refuse the pending update.
    pub const CONSENT: u8 = 5;
    /// Read: a chunk of the audit log's export file.
    pub const LOG: u8 = 6;
    /// Read: a fresh nonce for owner authentication.
    pub const CHALLENGE: u8 = 7;
    /// Write: pair an owner key.
    pub const PAIR: u8 = 8;
    /// Write: factory reset.
    pub const FACTORY_RESET: u8 = 9;
    /// Write: the owner's update settings.
    pub const SETTINGS: u8 = 10;
    /// Read: the lock's pairing parameters (PBKDF salt and iterations);
    /// write: pairing by PAKE, first message (`Pake1`, `keyway-channel`).
    /// Both need the presence window.
    pub const PAKE_START: u8 = 11;
    /// Write: pairing by PAKE, confirmation (`Pake3`).
    pub const PAKE_FINISH: u8 = 12;
    /// Write: session handshake, first message (`msg1`).
    pub const SESSION_START: u8 = 13;
    /// Write: session handshake, second message (`msg3`).
    pub const SESSION_FINISH: u8 = 14;
    /// Write: a sealed request inside a session; the answer is sealed.
    pub const SEALED: u8 = 15;
    /// Read: the paired owners (an owner: a session, or a signed request).
    pub const OWNERS: u8 = 16;
    /// Write: remove an owner by key id (an owner: a session, or a signed
    /// request).
    pub const UNPAIR: u8 = 17;
}

/// The largest `data` of a `log` answer a lock sends.
pub const LOG_CHUNK: usize = 1024;
/// The most CVEs a `notes` answer may list.
pub const MAX_CVES: usize = 64;
/// The most owners an `owners` answer may list (a decoder's bound; a
/// lock holds fewer).
pub const MAX_OWNERS: usize = 64;
/// The longest owner name an `owners` answer may carry, in bytes.
pub const MAX_OWNER_NAME: usize = 64;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $v),* }
        impl $name {
            /// The wire text.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),* }
            }
            /// The value of a wire text.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$v),)* _ => None }
            }
        }
    };
}

text_enum!(
    /// The bolt.
    Bolt { /// Thrown.
        Locked = "locked", /// Withdrawn.
        Unlocked = "unlocked" }
);
text_enum!(
    /// The door sensor.
    Door { /// Open.
        Open = "open", /// Closed.
        Closed = "closed" }
);
text_enum!(
    /// Where a pending update stands.
    UpdateState {
        /// Verified, waiting for the owner's consent.
        AwaitingConsent = "awaiting-consent",
        /// Consented, waiting for the policy (battery, bolt).
        Postponed = "postponed",
        /// Armed: the lock resets into it.
        Installing = "installing",
        /// Refused by the owner (and erased).
        Refused = "refused",
    }
);
text_enum!(
    /// A CVE's severity.
    Severity { /// Low.
        Low = "low", /// Medium.
        Medium = "medium", /// High.
        High = "high", /// Critical.
        Critical = "critical" }
);

fn text_of<T>(
    r: &mut Reader<'_>,
    name: &'static str,
    expected: &'static str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, Error> {
    let s = field(r.text(), name, expected)?;
    parse(s).ok_or(Error::Invalid {
        field: name,
        expected,
    })
}

fn uint(r: &mut Reader<'_>, name: &'static str) -> Result<u64, Error> {
    field(r.u64(), name, "an unsigned integer")
}

fn flag(r: &mut Reader<'_>, name: &'static str) -> Result<bool, Error> {
    field(r.bool(), name, "a bool")
}

fn txt<'a>(r: &mut Reader<'a>, name: &'static str) -> Result<&'a str, Error> {
    field(r.text(), name, "a text string")
}

/// A request whose body is only an owner's optional `auth` (lock, unlock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signed {
    /// An owner's authentication (absent: the presence window).
    pub auth: Option<Auth>,
}

impl<'a> Message<'a> for Signed {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(usize::from(self.auth.is_some()))?;
        if let Some(a) = &self.auth {
            w.text("auth")?;
            a.write(w)?;
        }
        Ok(())
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let mut auth = None;
        cbor::read_body(body, &["auth"], &mut |_, _, r| {
            auth = Some(Auth::read(r)?);
            Ok(())
        })?;
        Ok(Signed { auth })
    }
}

/// The owner's update settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Install without asking when a release fixes a high or critical CVE.
    pub auto_install_cve: bool,
    /// Install only while the bolt is withdrawn.
    pub install_needs_unlocked: bool,
}

impl Settings {
    fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(2)?;
        w.entry_bool("auto_install_cve", self.auto_install_cve)?;
        w.entry_bool("install_needs_unlocked", self.install_needs_unlocked)
    }
    fn read(r: &mut Reader<'_>) -> Result<Settings, Error> {
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
    fn entries(&self) -> usize {
        let why = match self.why {
            Some(Postponement::BatteryLow { .. }) => 3,
            Some(Postponement::BoltLocked) => 1,
            None => 0,
        };
        4 + why + usize::from(self.reason.is_some()) + usize::from(self.highest.is_some())
    }
    fn write_entries(&self, w: &mut Writer<'_>) -> Result<(), Error> {
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
struct SummaryFields<'a> {
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
    const NAMES: [&'static str; 9] = [
        "sequence", "version", "state", "reason", "cves", "highest", "why", "have_mwh", "need_mwh",
    ];

    /// Reads the value of [`Self::NAMES`]`[i]`.
    fn value(&mut self, i: usize, name: &'static str, r: &mut Reader<'a>) -> Result<(), Error> {
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
    fn why(&self) -> Result<Option<Postponement>, Error> {
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
    fn summary(self) -> Result<Option<UpdateSummary<'a>>, Error> {
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
        if let Some(a) = &self.auth {
            w.text("auth")?;
            a.write(w)?;
        }
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

/// `log` request: `{"off", "auth"?}`; offset 0 starts a new export, which
/// an owner signs (later chunks belong to the same peer's export).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Log {
    /// The byte offset into the export file.
    pub off: u64,
    /// An owner's authentication (the first chunk).
    pub auth: Option<Auth>,
}

impl<'a> Message<'a> for Log {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(1 + usize::from(self.auth.is_some()))?;
        w.entry_u64("off", self.off)?;
        if let Some(a) = &self.auth {
            w.text("auth")?;
            a.write(w)?;
        }
        Ok(())
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut off, mut auth) = (0, None);
        let names = ["off", "auth"];
        let seen = cbor::read_body(body, &names, &mut |i, name, r| {
            match i {
                0 => off = uint(r, name)?,
                _ => auth = Some(Auth::read(r)?),
            }
            Ok(())
        })?;
        cbor::require(seen, 0b1, &names)?;
        Ok(Log { off, auth })
    }
}

/// `log` answer: `{"off", "len", "data"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRsp<'a> {
    /// The chunk's offset.
    pub off: u64,
    /// The whole export file's length.
    pub len: u64,
    /// The chunk.
    pub data: &'a [u8],
}

impl<'a> Message<'a> for LogRsp<'a> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(3)?;
        w.entry_u64("len", self.len)?;
        w.entry_u64("off", self.off)?;
        w.entry_bytes("data", self.data)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut off, mut len, mut data) = (None, None, None);
        cbor::read_body(body, &["off", "len", "data"], &mut |i, name, r| {
            match i {
                0 => off = Some(uint(r, name)?),
                1 => len = Some(uint(r, name)?),
                _ => data = Some(field(r.bytes(), name, "a byte string")?),
            }
            Ok(())
        })?;
        Ok(LogRsp {
            off: cbor::need(off, "off")?,
            len: cbor::need(len, "len")?,
            data: cbor::need(data, "data")?,
        })
    }
}

/// `challenge` answer: `{"nonce": 16 bytes, "expires_s"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The nonce to sign with the next request.
    pub nonce: [u8; 16],
    /// Seconds it lives.
    pub expires_s: u64,
}

impl<'a> Message<'a> for Challenge {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(2)?;
        w.entry_bytes("nonce", &self.nonce)?;
        w.entry_u64("expires_s", self.expires_s)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut n, mut e) = (None, None);
        cbor::read_body(body, &["nonce", "expires_s"], &mut |i, name, r| {
            match i {
                0 => n = Some(fixed(r, name, "16 bytes")?),
                _ => e = Some(uint(r, name)?),
            }
            Ok(())
        })?;
        Ok(Challenge {
            nonce: cbor::need(n, "nonce")?,
            expires_s: cbor::need(e, "expires_s")?,
        })
    }
}

/// `pair` request: `{"key": 32 bytes, "name"?}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair<'a> {
    /// The owner's Ed25519 public key.
    pub key: [u8; 32],
    /// A name for people.
    pub name: Option<&'a str>,
}

impl<'a> Message<'a> for Pair<'a> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(1 + usize::from(self.name.is_some()))?;
        w.entry_bytes("key", &self.key)?;
        if let Some(n) = self.name {
            w.entry_text("name", n)?;
        }
        Ok(())
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut key, mut name) = ([0; 32], None);
        let names = ["key", "name"];
        let seen = cbor::read_body(body, &names, &mut |i, n, r| {
            match i {
                0 => cbor::fill(r, n, "32 bytes (an Ed25519 public key)", &mut key)?,
                _ => name = Some(txt(r, n)?),
            }
            Ok(())
        })?;
        cbor::require(seen, 0b1, &names)?;
        Ok(Pair { key, name })
    }
}

/// `pair` answer: `{"owners", "key_id": 8 bytes}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairRsp {
    /// Owners now paired.
    pub owners: u64,
    /// The new owner's key id (SHA-256 of the key, first 8 bytes).
    pub key_id: [u8; 8],
}

impl<'a> Message<'a> for PairRsp {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(2)?;
        w.entry_bytes("key_id", &self.key_id)?;
        w.entry_u64("owners", self.owners)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut o, mut id) = (None, None);
        cbor::read_body(body, &["owners", "key_id"], &mut |i, name, r| {
            match i {
                0 => o = Some(uint(r, name)?),
                _ => id = Some(fixed(r, name, "8 bytes")?),
            }
            Ok(())
        })?;
        Ok(PairRsp {
            owners: cbor::need(o, "owners")?,
            key_id: cbor::need(id, "key_id")?,
        })
    }
}

/// `factory reset` answer: `{"owners": 0}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FactoryResetRsp {
    /// Owners left (0).
    pub owners: u64,
}

impl<'a> Message<'a> for FactoryResetRsp {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(1)?;
        w.entry_u64("owners", self.owners)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let mut o = None;
        cbor::read_body(body, &["owners"], &mut |_, name, r| {
            o = Some(uint(r, name)?);
            Ok(())
        })?;
        Ok(FactoryResetRsp {
            owners: cbor::need(o, "owners")?,
        })
    }
}

/// `settings` request: the settings to change, and an owner's `auth`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SettingsReq {
    /// New `auto_install_cve`.
    pub auto_install_cve: Option<bool>,
    /// New `install_needs_unlocked`.
    pub install_needs_unlocked: Option<bool>,
    /// An owner's authentication.
    pub auth: Option<Auth>,
}

impl<'a> Message<'a> for SettingsReq {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(
            usize::from(self.auto_install_cve.is_some())
                + usize::from(self.install_needs_unlocked.is_some())
                + usize::from(self.auth.is_some()),
        )?;
        if let Some(a) = &self.auth {
            w.text("auth")?;
            a.write(w)?;
        }
        if let Some(v) = self.auto_install_cve {
            w.entry_bool("auto_install_cve", v)?;
        }
        if let Some(v) = self.install_needs_unlocked {
            w.entry_bool("install_needs_unlocked", v)?;
        }
        Ok(())
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let mut s = SettingsReq::default();
        let names = ["auto_install_cve", "install_needs_unlocked", "auth"];
        cbor::read_body(body, &names, &mut |i, name, r| {
            match i {
                0 => s.auto_install_cve = Some(flag(r, name)?),
                1 => s.install_needs_unlocked = Some(flag(r, name)?),
                _ => s.auth = Some(Auth::read(r)?),
            }
            Ok(())
        })?;
        Ok(s)
    }
}

/// `settings` answer: `{"settings": {…}}`, all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingsRsp {
    /// The settings now.
    pub settings: Settings,
}

impl<'a> Message<'a> for SettingsRsp {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(1)?;
        w.text("settings")?;
        self.settings.write(w)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let mut s = None;
        cbor::read_body(body, &["settings"], &mut |_, _, r| {
            s = Some(Settings::read(r)?);
            Ok(())
        })?;
        Ok(SettingsRsp {
            settings: cbor::need(s, "settings")?,
        })
    }
}

// ---------------------------------------------------------------------
// The secure channel's messages (ids 11 to 17): pairing by PAKE,
// sessions, sealed requests, the owner list and unpairing. The channel's
// own messages (`keyway-channel`) travel as byte strings; their lengths
// are checked by the channel, which fixes them, and here only bounded by
// the body.
// ---------------------------------------------------------------------

/// The byte string of a body `{key: bstr}` (one copy for every channel
/// message).
fn one_bstr<'a>(body: &'a [u8], key: &[&'static str; 1]) -> Result<&'a [u8], Error> {
    let mut m = &[][..];
    let seen = cbor::read_body(body, key, &mut |_, name, r| {
        m = field(r.bytes(), name, "a byte string")?;
        Ok(())
    })?;
    cbor::require(seen, 1, key)?;
    Ok(m)
}

macro_rules! one_bstr {
    ($(#[$m:meta])* $name:ident, $key:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name<'a> {
            #[doc = concat!("The `", $key, "` byte string: the channel's message.")]
            pub msg: &'a [u8],
        }

        impl<'a> Message<'a> for $name<'a> {
            fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
                w.map(1)?;
                w.entry_bytes($key, self.msg)
            }
            fn decode(body: &'a [u8]) -> Result<Self, Error> {
                Ok($name {
                    msg: one_bstr(body, &[$key])?,
                })
            }
        }
    };
}

one_bstr!(
    /// `pake` read answer (id 11, read): `{"params": bstr}`, the lock's
    /// PBKDF parameters (`keyway-channel` `Params`, 21 bytes).
    PakeParams,
    "params"
);
one_bstr!(
    /// `pake` write request (id 11): `{"pake1": bstr}`, the client's
    /// SPAKE2+ share (`Pake1`, 32 bytes).
    PakeStart,
    "pake1"
);
one_bstr!(
    /// Answer to [`PakeStart`]: `{"pake2": bstr}` (`Pake2`, 64 bytes).
    PakeStartRsp,
    "pake2"
);
one_bstr!(
    /// `pake finish` request (id 12): `{"pake3": bstr}` (`Pake3`, 113
    /// bytes: the confirmation and the owner's key and name, sealed).
    PakeFinish,
    "pake3"
);
one_bstr!(
    /// `session` request (id 13): `{"msg1": bstr}` (33 bytes).
    SessionStart,
    "msg1"
);
one_bstr!(
    /// Answer to [`SessionStart`]: `{"msg2": bstr}` (124 bytes).
    SessionStartRsp,
    "msg2"
);
one_bstr!(
    /// `session finish` request (id 14): `{"msg3": bstr}` (92 bytes).
    SessionFinish,
    "msg3"
);
one_bstr!(
    /// Answer to [`SessionFinish`]: `{"msg4": bstr}` (29 bytes).
    SessionFinishRsp,
    "msg4"
);
one_bstr!(
    /// `sealed` request and answer (id 15): `{"rec": bstr}`, a channel
    /// record whose plaintext is a whole SMP request frame (request) or
    /// the whole answer frame (answer).
    Sealed,
    "rec"
);

/// Answer to [`PakeFinish`]: `{"pake4": bstr, "key_id": 8 bytes,
/// "owners"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PakeFinishRsp<'a> {
    /// `Pake4` (48 bytes: the lock's device key, sealed).
    pub msg: &'a [u8],
    /// The new owner's key id.
    pub key_id: [u8; 8],
    /// Owners now paired.
    pub owners: u64,
}

impl<'a> Message<'a> for PakeFinishRsp<'a> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(3)?;
        w.entry_bytes("pake4", self.msg)?;
        w.entry_bytes("key_id", &self.key_id)?;
        w.entry_u64("owners", self.owners)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut m, mut id, mut o) = (None, None, None);
        cbor::read_body(body, &["pake4", "key_id", "owners"], &mut |i, name, r| {
            match i {
                0 => m = Some(field(r.bytes(), name, "a byte string")?),
                1 => id = Some(fixed(r, name, "8 bytes")?),
                _ => o = Some(uint(r, name)?),
            }
            Ok(())
        })?;
        Ok(PakeFinishRsp {
            msg: cbor::need(m, "pake4")?,
            key_id: cbor::need(id, "key_id")?,
            owners: cbor::need(o, "owners")?,
        })
    }
}

/// One paired owner in an `owners` answer:
/// `{"name", "key_id": 8 bytes, "paired"?}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerEntry<'a> {
    /// The owner's key id: the first 8 bytes of SHA-256 of its Ed25519
    /// public key (what `unpair` names).
    pub key_id: [u8; 8],
    /// The name given at pairing (may be empty; untrusted text: escape
    /// before printing), at most [`MAX_OWNER_NAME`] bytes.
    pub name: &'a str,
    /// When the owner was paired, Unix time in seconds, if the lock knew
    /// the time then.
    pub paired: Option<u64>,
}

impl<'a> Item<'a> for OwnerEntry<'a> {
    fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(2 + usize::from(self.paired.is_some()))?;
        w.entry_text("name", self.name)?;
        w.entry_bytes("key_id", &self.key_id)?;
        if let Some(p) = self.paired {
            w.entry_u64("paired", p)?;
        }
        Ok(())
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, Error> {
        let (mut id, mut name, mut paired) = (None, None, None);
        let names = ["owners.key_id", "owners.name", "owners.paired"];
        let mut e = |i, field_name, r: &mut Reader<'a>| {
            match i {
                0 => id = Some(fixed(r, field_name, "8 bytes")?),
                1 => {
                    let n = txt(r, field_name)?;
                    if n.len() > MAX_OWNER_NAME {
                        return Err(Error::Invalid {
                            field: field_name,
                            expected: "at most 64 bytes",
                        });
                    }
                    name = Some(n);
                }
                _ => paired = Some(uint(r, field_name)?),
            }
            Ok(())
        };
        field(
            cbor::read_fields(r, &names, 7, &mut e),
            "owners",
            "an array of maps",
        )?;
        Ok(OwnerEntry {
            key_id: cbor::need(id, "owners.key_id")?,
            name: cbor::need(name, "owners.name")?,
            paired,
        })
    }
}

/// `owners` answer: `{"owners": [owner, ...]}`, in pairing order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OwnersRsp<'a> {
    /// The paired owners (at most [`MAX_OWNERS`]).
    pub owners: Seq<'a, OwnerEntry<'a>>,
}

impl<'a> Message<'a> for OwnersRsp<'a> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(1)?;
        w.text("owners")?;
        self.owners.write(w)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let mut owners = None;
        cbor::read_body(body, &["owners"], &mut |_, name, r| {
            owners = Some(Seq::read(r, name, MAX_OWNERS)?);
            Ok(())
        })?;
        Ok(OwnersRsp {
            owners: cbor::need(owners, "owners")?,
        })
    }
}

/// `unpair` request: `{"key_id": 8 bytes, "auth"?}`: removes the owner
/// with that key id (an owner's signed request; an owner may remove
/// itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unpair {
    /// The key id of the owner to remove.
    pub key_id: [u8; 8],
    /// An owner's authentication.
    pub auth: Option<Auth>,
}

impl<'a> Message<'a> for Unpair {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(1 + usize::from(self.auth.is_some()))?;
        if let Some(a) = &self.auth {
            w.text("auth")?;
            a.write(w)?;
        }
        w.entry_bytes("key_id", &self.key_id)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut key_id, mut auth) = ([0; 8], None);
        let names = ["key_id", "auth"];
        let seen = cbor::read_body(body, &names, &mut |i, name, r| {
            match i {
                0 => cbor::fill(r, name, "8 bytes", &mut key_id)?,
                _ => auth = Some(Auth::read(r)?),
            }
            Ok(())
        })?;
        cbor::require(seen, 0b1, &names)?;
        Ok(Unpair { key_id, auth })
    }
}

/// `unpair` answer: `{"key_id": 8 bytes, "owners"}`: the owner removed
/// and how many remain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnpairRsp {
    /// The key id of the owner removed.
    pub key_id: [u8; 8],
    /// Owners that remain.
    pub owners: u64,
}

impl<'a> Message<'a> for UnpairRsp {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(2)?;
        w.entry_bytes("key_id", &self.key_id)?;
        w.entry_u64("owners", self.owners)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut o, mut id) = (None, None);
        cbor::read_body(body, &["owners", "key_id"], &mut |i, name, r| {
            match i {
                0 => o = Some(uint(r, name)?),
                _ => id = Some(fixed(r, name, "8 bytes")?),
            }
            Ok(())
        })?;
        Ok(UnpairRsp {
            key_id: cbor::need(id, "key_id")?,
            owners: cbor::need(o, "owners")?,
        })
    }
}
