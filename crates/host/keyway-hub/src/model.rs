//! What the hub knows, as typed values.
//!
//! Every value here is what the store keeps and what the JSON API shows
//! (serde). Digests are SHA-256, hex in JSON. Times are Unix seconds (UTC),
//! taken from the hub's clock by the shell and passed in: nothing in the
//! core reads a clock.

use serde::{Deserialize, Serialize};

/// Unix time in seconds.
pub type UnixSecs = i64;

/// A SHA-256 digest, shown as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        keyway_vendor::keys::hex(&self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Digest, BadDigest> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return Err(BadDigest { len: b.len() });
        }
        let mut out = [0u8; 32];
        for (i, pair) in b.chunks(2).enumerate() {
            let hi = (pair[0] as char)
                .to_digit(16)
                .ok_or(BadDigest { len: b.len() })?;
            let lo = (pair[1] as char)
                .to_digit(16)
                .ok_or(BadDigest { len: b.len() })?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Ok(Digest(out))
    }
}

/// A digest that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a digest is 64 hex digits (SHA-256); this one has {len} characters or a non-hex digit")]
pub struct BadDigest {
    /// The length given.
    pub len: usize,
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_hex()
    }
}

impl TryFrom<String> for Digest {
    type Error = BadDigest;
    fn try_from(s: String) -> Result<Digest, BadDigest> {
        Digest::from_hex(&s)
    }
}

/// A lock model: the trust anchors its locks hold, which the hub verifies
/// every envelope against with `keyway_suit::verify_envelope` (the same
/// function the lock runs) before it offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelAnchors {
    /// The model's class name (`keyway sign --class`), its key here.
    pub class: String,
    /// The vendor's domain (`--vendor-domain`): the vendor and class UUIDs
    /// derive from it.
    pub vendor_domain: String,
    /// The root public keys (SPKI PEM) the model's locks trust.
    pub trust_pems: Vec<String>,
    /// How many of them must sign (before a key set delegates).
    pub threshold: u8,
}

/// A CVE severity: the verifier's own type (`keyway_suit::Severity`), the
/// one the envelope's release notes carry, so the hub adds no copy of it.
/// The store and the API show it in lowercase (`"high"`), through
/// [`severity_serde`].
pub use keyway_suit::Severity;

/// Serde for [`Severity`] (lowercase names), for the fields that hold one.
pub mod severity_serde {
    use super::Severity;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(remote = "Severity", rename_all = "lowercase")]
    enum SeverityDef {
        Low,
        Medium,
        High,
        Critical,
    }

    /// Serializes a severity as its lowercase name.
    pub fn serialize<S: Serializer>(s: &Severity, ser: S) -> Result<S::Ok, S::Error> {
        SeverityDef::serialize(s, ser)
    }

    /// Deserializes a severity from its lowercase name.
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Severity, D::Error> {
        SeverityDef::deserialize(de)
    }

    /// The same for an optional severity.
    pub mod option {
        use super::{Severity, SeverityDef};
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        #[derive(Serialize, Deserialize)]
        struct Wrap(#[serde(with = "SeverityDef")] Severity);

        /// Serializes `None` as null, a severity as its name.
        pub fn serialize<S: Serializer>(s: &Option<Severity>, ser: S) -> Result<S::Ok, S::Error> {
            s.map(Wrap).serialize(ser)
        }

        /// Deserializes null or a severity's name.
        pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Severity>, D::Error> {
            Ok(Option::<Wrap>::deserialize(de)?.map(|Wrap(s)| s))
        }
    }
}

/// One vulnerability a release fixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CveFix {
    /// `CVE-YYYY-NNNN…`.
    pub id: String,
    /// Its severity.
    #[serde(with = "severity_serde")]
    pub severity: Severity,
}

/// Where a release came in from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReleaseOrigin {
    /// A TUF repository the hub syncs.
    Tuf {
        /// The repository's URL.
        url: String,
    },
    /// An offline bundle (a USB stick).
    Bundle {
        /// Where it was read.
        path: String,
    },
}

/// A release the hub holds: a signed envelope that verified against its
/// model's anchors, with what its notes say. `envelope` is the exact file
/// the lock receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// SHA-256 of the envelope: the release's id (and the image hash the
    /// lock reports once it holds it).
    pub digest: Digest,
    /// The TUF target path it came as.
    pub target: String,
    /// The model (class) it is for.
    pub class: String,
    /// The version its notes name (`suit-text-current-version`).
    pub version: String,
    /// `suit-manifest-sequence-number`: what anti-rollback compares.
    pub sequence: u64,
    /// For a delta: the SHA-256 of the image it applies to.
    pub delta_base: Option<Digest>,
    /// The release notes (Markdown, as signed).
    pub notes: String,
    /// The CVEs it fixes.
    pub cves: Vec<CveFix>,
    /// Where it came from.
    pub origin: ReleaseOrigin,
    /// When the hub took it in.
    pub added_at: UnixSecs,
    /// The signed envelope (not in JSON listings).
    #[serde(skip)]
    pub envelope: Vec<u8>,
}

impl Release {
    /// The highest severity among its CVEs.
    pub fn max_severity(&self) -> Option<Severity> {
        self.cves.iter().map(|c| c.severity).max()
    }
}

/// A lock's id in the hub's store.
pub type LockId = i64;

/// The pending update's state, as the lock reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UpdateState {
    /// Nothing pending: the running image is confirmed.
    Confirmed,
    /// An upload is in progress or complete, waiting for the owner's
    /// consent.
    AwaitingConsent {
        /// The envelope's digest.
        release: Digest,
    },
    /// Consented, postponed by the lock's policy until it allows.
    Postponed {
        /// The envelope's digest.
        release: Digest,
        /// Why (typed).
        reason: Postponement,
    },
    /// Consented and installing.
    Installing {
        /// The envelope's digest.
        release: Digest,
    },
    /// The new image runs on trial: it confirms after its self-test, or
    /// the lock reverts.
    Trial {
        /// The version on trial.
        version: String,
    },
    /// The owner declined it.
    Declined {
        /// The envelope's digest.
        release: Digest,
    },
}

/// Why a lock's policy postponed an install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum Postponement {
    /// The bolt is thrown: the lock installs once it is withdrawn.
    BoltLocked,
    /// Not enough battery for the install.
    BatteryLow {
        /// What it has.
        have_mwh: u64,
        /// What the install needs.
        need_mwh: u64,
    },
}

/// The door sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Door {
    /// Open.
    Open,
    /// Closed.
    Closed,
}

/// The bolt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bolt {
    /// Thrown.
    Locked,
    /// Withdrawn.
    Unlocked,
}

/// What a lock said about itself at its last contact (authenticated: it
/// came over the lock's secure channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockSnapshot {
    /// The lock model's name (its battery model, e.g. `nrf52840`).
    pub model: String,
    /// The running version.
    pub version: String,
    /// The running image's SHA-256 (what a delta's base must be).
    pub image: Option<Digest>,
    /// The pending update.
    pub update: UpdateState,
    /// Battery, mWh.
    pub battery_mwh: u64,
    /// The door.
    pub door: Door,
    /// The bolt.
    pub bolt: Bolt,
    /// The tamper switch.
    pub tamper: bool,
}

/// The state of a lock's audit log as the hub last checked it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LogHealth {
    /// Never fetched.
    Unknown,
    /// Fetched and verified with the device key; continuous with what the
    /// hub kept before.
    Intact {
        /// The last record's sequence number.
        last_seq: u64,
        /// When it was verified.
        at: UnixSecs,
    },
    /// A record is missing between what the hub kept and what the lock
    /// sent (records lost, or the ring wrapped between fetches).
    Gap {
        /// The last sequence number the hub held.
        held_to: u64,
        /// The first sequence number the lock sent.
        resumed_at: u64,
        /// When it was seen.
        at: UnixSecs,
    },
    /// The log did not verify with the device key, or its hash chain
    /// broke: tampering, or a lock that lies.
    Broken {
        /// What failed (the verifier's typed reason, rendered).
        reason: String,
        /// The verifier's first finding, typed (a code in JSON); `None`
        /// when the lock's answer was not a log at all (and in rows stored
        /// before this field).
        #[serde(default)]
        kind: Option<crate::link::LogBreak>,
        /// When it was seen.
        at: UnixSecs,
    },
}

/// A lock the hub manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    /// Its id.
    pub id: LockId,
    /// The owner's name for it ("front door").
    pub name: String,
    /// Its SMP address (`udp:HOST:PORT`).
    pub address: String,
    /// The model (class) whose releases apply to it.
    pub class: String,
    /// Its device key (raw Ed25519), learned by pairing with the setup
    /// code; `None` until paired. Lower-case hex in JSON.
    #[serde(with = "hex_key")]
    pub device_key: Option<[u8; 32]>,
    /// The owner opted in to installing high and critical CVE fixes
    /// without asking each time.
    pub auto_install_critical: bool,
    /// What it said at its last contact.
    pub snapshot: Option<LockSnapshot>,
    /// When the hub last heard from it.
    pub last_contact: Option<UnixSecs>,
    /// Its audit log's state.
    pub log: LogHealth,
}

/// A lock to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLock {
    /// The owner's name for it.
    pub name: String,
    /// Its SMP address.
    pub address: String,
    /// Its model (class).
    pub class: String,
}

/// The owner's decision on one update for one lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Install it.
    Accept,
    /// Do not install it.
    Decline,
}

/// Who gave a consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum ConsentSource {
    /// The owner, through the API (or the web UI).
    Owner,
    /// The owner's standing opt-in for high and critical CVE fixes.
    AutoCritical,
    /// The owner pressed install in Home Assistant.
    HomeAssistant,
}

/// A consent, durable before it is acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// The lock.
    pub lock: LockId,
    /// The release.
    pub release: Digest,
    /// The decision.
    pub decision: Decision,
    /// Who decided.
    pub source: ConsentSource,
    /// When.
    pub at: UnixSecs,
}

/// An audit-log export the hub fetched and verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogExport {
    /// The lock.
    pub lock: LockId,
    /// When it was fetched.
    pub fetched_at: UnixSecs,
    /// The first record's sequence number in it.
    pub first_seq: u64,
    /// The last record's sequence number in it.
    pub last_seq: u64,
    /// The export as the lock sent it (verifiable again with the device
    /// key: `keyway log verify`).
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// A rollout's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RolloutState {
    /// Waves are going out.
    Running {
        /// The wave in progress (0-based).
        wave: u32,
    },
    /// Stopped: a wave's failures passed the threshold.
    Stopped {
        /// The wave that stopped it.
        wave: u32,
        /// Its failures.
        failed: u32,
        /// Its locks.
        of: u32,
    },
    /// Every wave went.
    Done,
}

/// One lock's part in a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RolloutOutcome {
    /// Not reached yet.
    Waiting,
    /// Its owner has not consented: the hub never installs without it.
    NeedsConsent,
    /// Uploaded and consented; the lock installs when its policy allows.
    Postponed {
        /// Why.
        reason: Postponement,
    },
    /// Runs the release, confirmed.
    Updated,
    /// Failed.
    Failed {
        /// Why, in words.
        reason: String,
        /// Why, as a stable code clients decide on: a hub error code
        /// (`lock_unreachable`, `lock_refused`, `lock_lied`, …, as the API
        /// returns them), `install_refused` (the lock refused the install
        /// or reverted its trial) or `no_outcome` (none within the wait).
        /// Empty in rows stored before this field.
        #[serde(default)]
        code: String,
    },
}

/// A rollout of one release across many locks, in waves, after hawkBit:
/// the next wave starts only while failures stay under the threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// Its id.
    pub id: i64,
    /// The release.
    pub release: Digest,
    /// Locks per wave.
    pub wave_size: u32,
    /// The share of a wave's locks (percent) whose failure stops the
    /// rollout.
    pub error_threshold_pct: u8,
    /// Its state.
    pub state: RolloutState,
    /// Each lock's outcome, in wave order.
    pub locks: Vec<(LockId, RolloutOutcome)>,
    /// When it started.
    pub started_at: UnixSecs,
}

/// How loud an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventLevel {
    /// Something happened.
    Info,
    /// The owner should look (a stale view, a postponed install).
    Warning,
    /// The owner must look (a broken audit log, a lock that lied).
    Alert,
}

/// Something the hub did or saw, kept for the owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Its id (increasing).
    pub id: i64,
    /// When.
    pub at: UnixSecs,
    /// The lock it is about, if any.
    pub lock: Option<LockId>,
    /// How loud.
    pub level: EventLevel,
    /// A stable machine name (`log_gap`, `tuf_stale`, `install_postponed`,
    /// …): what clients decide on.
    pub kind: String,
    /// In words, for the owner.
    pub message: String,
}

/// An event to record ([`crate::store::Store::add_event`]): an [`Event`]
/// before the store gives it its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewEvent<'a> {
    /// When.
    pub at: UnixSecs,
    /// The lock it is about, if any.
    pub lock: Option<LockId>,
    /// How loud.
    pub level: EventLevel,
    /// A stable machine name (see [`Event::kind`]).
    pub kind: &'a str,
    /// In words, for the owner.
    pub message: &'a str,
}

impl NewEvent<'_> {
    /// The event as recorded under `id`.
    pub fn with_id(&self, id: i64) -> Event {
        Event {
            id,
            at: self.at,
            lock: self.lock,
            level: self.level,
            kind: self.kind.into(),
            message: self.message.into(),
        }
    }
}

/// A hub's claim on a named lease ([`crate::store::Store::try_lease`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseClaim<'a> {
    /// The lease (`rollout:ID`, `push:LOCK`, …).
    pub name: &'a str,
    /// The hub that claims it.
    pub holder: &'a str,
    /// The time now: a lease held by another hub until then or earlier is free.
    pub now: UnixSecs,
    /// Until when the claim holds it.
    pub until: UnixSecs,
}

/// What the hub last knew of its TUF repository's freshness.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Freshness {
    /// The repository's URL, if one is configured.
    pub url: Option<String>,
    /// When the hub last verified a timestamp that had not expired.
    pub last_fresh_at: Option<UnixSecs>,
    /// That timestamp's version.
    pub timestamp_version: Option<u64>,
    /// When that timestamp expires.
    pub timestamp_expires: Option<UnixSecs>,
    /// The last sync's failure, if the last sync failed.
    pub last_error: Option<String>,
}

/// A device key as 64 lower-case hex digits in JSON (`null` when absent).
mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match key {
            Some(k) => s.serialize_some(&super::Digest(*k).to_hex()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
        let hex: Option<String> = Option::deserialize(d)?;
        hex.map(|h| {
            super::Digest::from_hex(&h)
                .map(|k| k.0)
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_key_is_hex_in_json_and_reads_back() {
        let lock = LockRecord {
            id: 1,
            name: "front door".into(),
            address: "udp:127.0.0.1:1".into(),
            class: "deadbolt".into(),
            device_key: Some([0xab; 32]),
            auto_install_critical: false,
            snapshot: None,
            last_contact: None,
            log: LogHealth::Unknown,
        };
        let json = serde_json::to_value(&lock).unwrap();
        assert_eq!(json["device_key"], serde_json::json!("ab".repeat(32)));
        let back: LockRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, lock);
        let unpaired = LockRecord {
            device_key: None,
            ..lock
        };
        let json = serde_json::to_value(&unpaired).unwrap();
        assert!(json["device_key"].is_null());
        let mut bad = json.clone();
        bad["device_key"] = serde_json::json!("zz");
        assert!(serde_json::from_value::<LockRecord>(bad).is_err());
    }
}
