//! The hub's engine: the decisions ([`decide`], [`intake`]) and the
//! orchestration ([`Hub`]) that carries them out over the store, the locks'
//! links and a clock.
//!
//! Design (functional core, imperative shell):
//! * [`decide`] and [`intake`] are pure: which updates apply to a lock and
//!   which envelopes to offer, upgrade, auto-consent, a rollout's waves
//!   and stop rule, freshness, log continuity, lying-lock detection, and
//!   the verification of an incoming envelope.
//! * [`Hub`] reads what they need from the [`Store`], a lock's
//!   [`LockLink`] (through the [`Connector`]) and the [`Clock`], calls
//!   them, and writes the outcome back; every step writes an [`Event`].
//!   It is synchronous (the API calls it from blocking tasks) and shared
//!   (`Arc<Hub>`): a rollout runs its waves on a pool of threads.
//! * Nothing that must survive a power cut lives only in the hub: a
//!   consent is durable in the store before anything is sent, a rollout
//!   is saved after each wave (and resumes where it stopped). The progress
//!   table and the image cache are in memory: progress is live only, the
//!   cache is derived from stored envelopes.
//! * A lock's answer that contradicts itself or what the hub knows (a
//!   [`decide::Lie`]) raises an `Alert` event and is not acted on: the
//!   hub keeps the record it had and counts the install as failed.
//!
//! [`Event`]: crate::model::Event

pub mod decide;
pub mod intake;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::link::{Connector, InstallOutcome, LinkError, LockLink};
use crate::model::{
    Consent, ConsentSource, Decision, Digest, EventLevel, Freshness, LockId, LockRecord,
    LockSnapshot, LogExport, LogHealth, ModelAnchors, NewLock, Postponement, ReleaseOrigin,
    Rollout, RolloutOutcome, RolloutState, UnixSecs, UpdateState,
};
use crate::store::{Store, StoreError};
use decide::{Continuity, FreshnessState, Known, Lie, Offer};

/// The hub's clock (Unix seconds). The shell passes the system clock;
/// tests pass a fake one.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> UnixSecs;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixSecs {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}

/// The hub's tunables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// The view of the TUF repository is stale when its last fresh
    /// timestamp is older than this (seconds).
    pub stale_after_secs: i64,
    /// How often [`Hub::tick`] fetches each lock's audit log (seconds).
    pub log_interval_secs: i64,
    /// How long a consent waits on the lock for the install's outcome (ms).
    pub install_wait_ms: u64,
    /// Locks a rollout wave (or a tick) updates at once.
    pub concurrency: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            stale_after_secs: 24 * 3600,
            log_interval_secs: 3600,
            install_wait_ms: 30_000,
            concurrency: 8,
        }
    }
}

/// One envelope handed to [`Hub::ingest`] (from a TUF sync or a bundle;
/// the TUF layer has verified the metadata, the hub verifies the envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Its TUF target path.
    pub target: String,
    /// The envelope.
    pub bytes: Vec<u8>,
    /// Where it came from.
    pub origin: ReleaseOrigin,
}

/// One release taken in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Imported {
    /// Its target path.
    pub target: String,
    /// Its digest.
    pub digest: Digest,
    /// Its model.
    pub class: String,
    /// Its version.
    pub version: String,
    /// Its sequence.
    pub sequence: u64,
}

/// One envelope refused, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// Its target path.
    pub target: String,
    /// Why (typed: `reason.code`).
    pub reason: intake::Refusal,
    /// In words.
    pub message: String,
}

/// What [`Hub::ingest`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct IngestReport {
    /// Verified and stored.
    pub imported: Vec<Imported>,
    /// Target paths of envelopes the hub already held.
    pub already_held: Vec<String>,
    /// Refused, with why.
    pub refused: Vec<Refused>,
}

/// Where a push is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Connecting and reading the lock's status.
    Connecting,
    /// Uploading the envelope.
    Uploading,
    /// Uploaded; consent given, waiting for the install.
    Installing,
    /// The lock's policy postponed the install.
    Postponed,
    /// The lock runs the release.
    Done,
    /// It failed.
    Failed,
}

/// A push's live progress (in memory: the API reads it while it runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// The lock.
    pub lock: LockId,
    /// The release being installed.
    pub release: Digest,
    /// Where it is.
    pub phase: Phase,
    /// Bytes uploaded.
    pub done: u64,
    /// Bytes to upload.
    pub total: u64,
    /// Whether a delta goes.
    pub delta: bool,
    /// A postponement's reason.
    pub postponed: Option<Postponement>,
    /// A failure, in words.
    pub error: Option<String>,
    /// When it last changed.
    pub updated_at: UnixSecs,
}

/// How an install went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum InstallReport {
    /// The lock runs it, confirmed.
    Running,
    /// Uploaded and consented; the lock's policy postponed it.
    Postponed {
        /// Why.
        reason: Postponement,
    },
    /// The lock refused it or reverted the trial.
    Refused {
        /// Its reason, in words.
        reason: String,
    },
    /// No outcome within the wait; the hub re-checks on later ticks.
    Pending,
    /// The lock already runs it (or a newer release).
    AlreadyRunning,
}

/// Why a hub call failed (typed; [`HubError::code`] is the stable name the
/// API returns).
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such lock.
    #[error("no lock with id {0}")]
    NoLock(LockId),
    /// No such release.
    #[error("the hub holds no release {0}")]
    NoRelease(Digest),
    /// No such rollout.
    #[error("no rollout with id {0}")]
    NoRollout(i64),
    /// The release does not apply to the lock (another model, not above
    /// what it runs, or a delta for another image).
    #[error(
        "release {release} is not an update for lock {lock}: list the lock's updates and consent to one of those"
    )]
    NotApplicable {
        /// The lock.
        lock: LockId,
        /// The release.
        release: Digest,
    },
    /// The lock is not paired yet.
    #[error("lock {0} is not paired: pair it with its setup code first")]
    NotPaired(LockId),
    /// The lock is already paired.
    #[error("lock {0} is already paired")]
    AlreadyPaired(LockId),
    /// No accepted consent for this release on this lock: nothing
    /// installs without one.
    #[error(
        "the owner has not accepted release {release} for lock {lock}: nothing installs without consent"
    )]
    NoConsent {
        /// The lock.
        lock: LockId,
        /// The release.
        release: Digest,
    },
    /// A push to this lock is already running.
    #[error("an update is already being pushed to lock {0}")]
    Busy(LockId),
    /// The lock's channel failed.
    #[error("lock {lock}: {source}")]
    Link {
        /// The lock.
        lock: LockId,
        /// What failed.
        source: LinkError,
    },
    /// The lock contradicted itself; the hub did not act on it.
    #[error("lock {lock} lied: {}", lie.sentence())]
    LockLied {
        /// The lock.
        lock: LockId,
        /// The contradiction.
        lie: Lie,
    },
    /// A model's anchors do not load.
    #[error("{0}")]
    BadModel(intake::Refusal),
    /// A request's value is out of range.
    #[error("{0}")]
    Invalid(String),
}

impl HubError {
    /// The stable machine code clients decide on.
    pub fn code(&self) -> &'static str {
        match self {
            HubError::Store(StoreError::Full(_)) => "store_full",
            HubError::Store(StoreError::NoLock(_)) | HubError::NoLock(_) => "unknown_lock",
            HubError::Store(StoreError::NoRelease(_)) | HubError::NoRelease(_) => "unknown_release",
            HubError::Store(StoreError::NoRollout(_)) | HubError::NoRollout(_) => "unknown_rollout",
            HubError::Store(_) => "store_failed",
            HubError::NotApplicable { .. } => "release_not_applicable",
            HubError::NotPaired(_) => "lock_not_paired",
            HubError::AlreadyPaired(_) => "lock_already_paired",
            HubError::NoConsent { .. } => "consent_required",
            HubError::Busy(_) => "lock_busy",
            HubError::Link { source, .. } => match source {
                LinkError::Unreachable { .. } => "lock_unreachable",
                LinkError::WrongSetupCode => "wrong_setup_code",
                LinkError::NoPresence => "presence_window_closed",
                LinkError::NotAuthenticated { .. } => "lock_not_authenticated",
                LinkError::Refused { .. } => "lock_refused",
                LinkError::Malformed(_) => "lock_answer_malformed",
                LinkError::NothingToPush { .. } => "nothing_to_push",
                LinkError::LogBroken { .. } => "log_broken",
            },
            HubError::LockLied { .. } => "lock_lied",
            HubError::BadModel(_) => "bad_model",
            HubError::Invalid(_) => "invalid_value",
        }
    }
}

/// What the hub says about its TUF view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FreshnessReport {
    /// The stored record.
    #[serde(flatten)]
    pub record: Freshness,
    /// Its state now.
    pub status: FreshnessState,
    /// Whether the owner should be warned (never a block).
    pub warning: bool,
    /// The bound (seconds).
    pub stale_after_secs: i64,
}

/// What one [`Hub::tick`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct TickReport {
    /// Locks whose status was re-read (pending installs, due logs).
    pub rechecked: u32,
    /// Audit logs fetched.
    pub logs_fetched: u32,
    /// Auto-consented installs started.
    pub auto_installs: u32,
    /// Locks that did not answer.
    pub unreachable: u32,
}

/// The hub: its store, its locks' links, its clock.
pub struct Hub {
    store: Arc<dyn Store>,
    connector: Arc<dyn Connector>,
    clock: Arc<dyn Clock>,
    config: HubConfig,
    progress: Mutex<HashMap<LockId, Progress>>,
    images: Mutex<HashMap<Digest, Option<Digest>>>,
    busy: Mutex<HashSet<LockId>>,
    rolling: Mutex<HashSet<i64>>,
    last_freshness: Mutex<Option<&'static str>>,
}

/// Releases the lock's busy mark when a push ends, however it ends.
struct BusyGuard<'a> {
    hub: &'a Hub,
    lock: LockId,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut b) = self.hub.busy.lock() {
            b.remove(&self.lock);
        }
    }
}

fn lock_err(lock: LockId) -> impl Fn(LinkError) -> HubError {
    move |source| HubError::Link { lock, source }
}

impl Hub {
    /// A hub over this store, connector and clock.
    pub fn new(
        store: Arc<dyn Store>,
        connector: Arc<dyn Connector>,
        clock: Arc<dyn Clock>,
        config: HubConfig,
    ) -> Hub {
        Hub {
            store,
            connector,
            clock,
            config,
            progress: Mutex::new(HashMap::new()),
            images: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
            rolling: Mutex::new(HashSet::new()),
            last_freshness: Mutex::new(None),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Now, by the hub's clock.
    pub fn now(&self) -> UnixSecs {
        self.clock.now()
    }

    fn event(
        &self,
        lock: Option<LockId>,
        level: EventLevel,
        kind: &str,
        message: &str,
    ) -> Result<(), HubError> {
        self.store
            .add_event(self.now(), lock, level, kind, message)?;
        Ok(())
    }

    // ----- models and releases -------------------------------------------

    /// Adds or replaces a model's anchors (they must load).
    pub fn put_model(&self, model: &ModelAnchors) -> Result<(), HubError> {
        intake::anchors(model).map_err(HubError::BadModel)?;
        self.store.put_model(model)?;
        self.event(
            None,
            EventLevel::Info,
            "model_added",
            &format!("lock model {} ({})", model.class, model.vendor_domain),
        )
    }

    /// Verifies each envelope against its model's anchors and keeps the
    /// ones that verify; says what it refused and why.
    pub fn ingest(&self, targets: Vec<Incoming>) -> Result<IngestReport, HubError> {
        let models = self.store.models()?;
        // Key sets carried by this batch's envelopes, and (read only when an
        // envelope needs one) by the stored ones.
        let mut keysets = intake::KeySets::new();
        let mut stored: Option<intake::KeySets> = None;
        let mut report = IngestReport::default();
        for inc in targets {
            let now = self.now();
            let mut r = intake::verify(
                &inc.target,
                &inc.bytes,
                inc.origin.clone(),
                &models,
                &keysets,
                now,
            );
            if let Err(intake::Refusal::Verification { check, .. }) = &r
                && (check == "signatures" || check == "key set")
            {
                if stored.is_none() {
                    stored = Some(self.keysets(&models)?);
                }
                let mut all = stored.clone().unwrap_or_default();
                for (class, ks) in &keysets {
                    if all.get(class).is_none_or(|k| k.version < ks.version) {
                        all.insert(class.clone(), ks.clone());
                    }
                }
                if let Ok(acc) =
                    intake::verify(&inc.target, &inc.bytes, inc.origin, &models, &all, now)
                {
                    r = Ok(acc);
                }
            }
            match r {
                Ok(acc) => {
                    let digest = acc.release.digest;
                    if let Some(ks) = acc.keyset
                        && keysets
                            .get(&acc.release.class)
                            .is_none_or(|k| k.version < ks.version)
                    {
                        keysets.insert(acc.release.class.clone(), ks);
                    }
                    if self.store.put_release(&acc.release)? {
                        self.images
                            .lock()
                            .map_err(|_| HubError::Invalid("poisoned".into()))?
                            .insert(digest, Some(acc.image));
                        self.event(
                            None,
                            EventLevel::Info,
                            "release_imported",
                            &format!(
                                "release {} of {} (sequence {}) from {}",
                                acc.release.version,
                                acc.release.class,
                                acc.release.sequence,
                                inc.target
                            ),
                        )?;
                        report.imported.push(Imported {
                            target: inc.target,
                            digest,
                            class: acc.release.class,
                            version: acc.release.version,
                            sequence: acc.release.sequence,
                        });
                    } else {
                        report.already_held.push(inc.target);
                    }
                }
                Err(reason) => {
                    let message = reason.to_string();
                    self.event(
                        None,
                        EventLevel::Warning,
                        "release_refused",
                        &format!("{}: {message}", inc.target),
                    )?;
                    report.refused.push(Refused {
                        target: inc.target,
                        reason,
                        message,
                    });
                }
            }
        }
        Ok(report)
    }

    /// The newest root-signed key set each model's stored envelopes carry
    /// (read from the stored envelopes: the store holds no other copy).
    fn keysets(&self, models: &[ModelAnchors]) -> Result<intake::KeySets, HubError> {
        let mut out = intake::KeySets::new();
        for m in models {
            let Ok(anchors) = intake::anchors(m) else {
                continue;
            };
            for r in self.store.releases(Some(&m.class))? {
                let Some(full) = self.store.release(&r.digest)? else {
                    continue;
                };
                if let Some(ks) = intake::carried_keyset(&full.envelope, &anchors)
                    && out.get(&m.class).is_none_or(|k| k.version < ks.version)
                {
                    out.insert(m.class.clone(), ks);
                }
            }
        }
        Ok(out)
    }

    /// The image a stored release installs (cached; read from its envelope
    /// the first time).
    fn image(&self, digest: &Digest) -> Result<Option<Digest>, HubError> {
        if let Some(i) = self.images.lock().ok().and_then(|m| m.get(digest).copied()) {
            return Ok(i);
        }
        let img = self
            .store
            .release(digest)?
            .and_then(|r| intake::image_of(&r.envelope));
        if let Ok(mut m) = self.images.lock() {
            m.insert(*digest, img);
        }
        Ok(img)
    }

    /// The releases of a class with their images, for the decisions.
    fn known(&self, class: &str) -> Result<Vec<Known>, HubError> {
        let mut out = Vec::new();
        for release in self.store.releases(Some(class))? {
            if let Some(image) = self.image(&release.digest)? {
                out.push(Known { release, image });
            }
        }
        Ok(out)
    }

    // ----- locks ---------------------------------------------------------

    /// Adds a lock by address (not paired yet).
    pub fn add_lock(&self, new: &NewLock) -> Result<LockRecord, HubError> {
        if new.name.trim().is_empty() || new.address.trim().is_empty() || new.class.is_empty() {
            return Err(HubError::Invalid(
                "a lock needs a name, an address and a model (class)".into(),
            ));
        }
        let id = self.store.add_lock(new)?;
        self.event(
            Some(id),
            EventLevel::Info,
            "lock_added",
            &format!("{} at {}", new.name, new.address),
        )?;
        self.lock(id)
    }

    /// One lock.
    pub fn lock(&self, id: LockId) -> Result<LockRecord, HubError> {
        self.store.lock(id)?.ok_or(HubError::NoLock(id))
    }

    /// Every lock.
    pub fn locks(&self) -> Result<Vec<LockRecord>, HubError> {
        Ok(self.store.locks()?)
    }

    /// Removes a lock.
    pub fn remove_lock(&self, id: LockId) -> Result<(), HubError> {
        let lock = self.lock(id)?;
        self.store.remove_lock(id)?;
        if let Ok(mut p) = self.progress.lock() {
            p.remove(&id);
        }
        // Not tied to the lock's id: the lock is gone from the store.
        self.event(
            None,
            EventLevel::Info,
            "lock_removed",
            &format!("lock {id} ({}, {}) removed", lock.name, lock.address),
        )
    }

    /// Pairs a lock with its setup code; the owner must have opened its
    /// presence window (the button press is theirs).
    pub fn pair(&self, id: LockId, setup_code: &str) -> Result<LockRecord, HubError> {
        let mut lock = self.lock(id)?;
        if lock.device_key.is_some() {
            return Err(HubError::AlreadyPaired(id));
        }
        let result = self
            .connector
            .connect(&lock)
            .and_then(|mut link| link.pair(setup_code));
        let paired = match result {
            Ok(p) => p,
            Err(e) => {
                self.event(Some(id), EventLevel::Warning, "pair_failed", &e.to_string())?;
                return Err(lock_err(id)(e));
            }
        };
        lock.device_key = Some(paired.device_key);
        self.store.save_lock(&lock)?;
        self.event(Some(id), EventLevel::Info, "lock_paired", "paired")?;
        // Its first status, best effort: pairing stands without it.
        match self.refresh(id) {
            Ok(l) => Ok(l),
            Err(_) => self.lock(id),
        }
    }

    /// Checks a status against what the hub knows; on a lie, alerts and
    /// returns it (the record is left as it was).
    fn accept_status(
        &self,
        lock: &mut LockRecord,
        snap: LockSnapshot,
        expect: Option<(&Digest, &Digest)>,
    ) -> Result<(), HubError> {
        let known = self.known(&lock.class)?;
        let lies = decide::status_lies(&known, lock.snapshot.as_ref(), &snap, expect);
        let now = self.now();
        if let Some(lie) = lies.into_iter().next() {
            lock.last_contact = Some(now);
            self.store.save_lock(lock)?;
            self.event(
                Some(lock.id),
                EventLevel::Alert,
                "lock_lied",
                &lie.sentence(),
            )?;
            return Err(HubError::LockLied { lock: lock.id, lie });
        }
        lock.snapshot = Some(snap);
        lock.last_contact = Some(now);
        self.store.save_lock(lock)?;
        Ok(())
    }

    fn connect(&self, lock: &LockRecord) -> Result<Box<dyn LockLink>, HubError> {
        if lock.device_key.is_none() {
            return Err(HubError::NotPaired(lock.id));
        }
        self.connector.connect(lock).map_err(lock_err(lock.id))
    }

    /// Reads a lock's status and keeps it (unless it lies).
    pub fn refresh(&self, id: LockId) -> Result<LockRecord, HubError> {
        let mut lock = self.lock(id)?;
        let snap = self
            .connect(&lock)
            .and_then(|mut l| l.status().map_err(lock_err(id)));
        let snap = match snap {
            Ok(s) => s,
            Err(e) => {
                if let HubError::Link { source, .. } = &e {
                    self.event(
                        Some(id),
                        EventLevel::Warning,
                        "lock_unreachable",
                        &source.to_string(),
                    )?;
                }
                return Err(e);
            }
        };
        let prev = lock.snapshot.clone();
        self.accept_status(&mut lock, snap, None)?;
        self.note_transition(&lock, prev.as_ref())?;
        Ok(lock)
    }

    /// Events for what changed between two statuses (a postponed install
    /// that went through, a trial that reverted).
    fn note_transition(
        &self,
        lock: &LockRecord,
        prev: Option<&LockSnapshot>,
    ) -> Result<(), HubError> {
        let (Some(prev), Some(now)) = (prev, lock.snapshot.as_ref()) else {
            return Ok(());
        };
        let pending = match &prev.update {
            UpdateState::Postponed { release, .. }
            | UpdateState::Installing { release }
            | UpdateState::AwaitingConsent { release } => Some(*release),
            _ => None,
        };
        if let Some(release) = pending
            && now.update == UpdateState::Confirmed
        {
            let image = self.image(&release)?;
            if image.is_some() && image == now.image {
                self.set_progress(lock.id, release, |p| p.phase = Phase::Done);
                self.event(
                    Some(lock.id),
                    EventLevel::Info,
                    "update_confirmed",
                    &format!("now runs version {}", now.version),
                )?;
            } else {
                self.event(
                    Some(lock.id),
                    EventLevel::Warning,
                    "update_not_installed",
                    &format!("the lock still runs version {}", now.version),
                )?;
            }
        }
        Ok(())
    }

    /// Sets the owner's standing opt-in for high and critical CVE fixes.
    pub fn set_auto_install(&self, id: LockId, enabled: bool) -> Result<LockRecord, HubError> {
        let mut lock = self.lock(id)?;
        lock.auto_install_critical = enabled;
        self.store.save_lock(&lock)?;
        self.event(
            Some(id),
            EventLevel::Info,
            "auto_install_set",
            if enabled {
                "high and critical CVE fixes install automatically"
            } else {
                "every update asks first"
            },
        )?;
        Ok(lock)
    }

    // ----- updates and consent -------------------------------------------

    /// The updates available to a lock, newest first.
    pub fn updates(&self, id: LockId) -> Result<Vec<Offer>, HubError> {
        let lock = self.lock(id)?;
        Ok(decide::offers(&self.known(&lock.class)?, &lock))
    }

    /// Records the owner's decision on an update for a lock (durable before
    /// anything is sent). The release must be one of the lock's updates:
    /// a consent for anything else is refused and nothing changes.
    pub fn consent(
        &self,
        id: LockId,
        release: Digest,
        decision: Decision,
        source: ConsentSource,
    ) -> Result<Consent, HubError> {
        let lock = self.lock(id)?;
        if self.store.release(&release)?.is_none() {
            return Err(HubError::NoRelease(release));
        }
        let offers = decide::offers(&self.known(&lock.class)?, &lock);
        if !offers.iter().any(|o| o.release == release) {
            return Err(HubError::NotApplicable { lock: id, release });
        }
        let c = Consent {
            lock: id,
            release,
            decision,
            source: source.clone(),
            at: self.now(),
        };
        self.store.put_consent(&c)?;
        let (kind, words) = match (decision, &source) {
            (Decision::Accept, ConsentSource::AutoCritical) => (
                "auto_consent",
                "accepted by the owner's opt-in for high and critical fixes",
            ),
            (Decision::Accept, _) => ("consent_accepted", "the owner accepted"),
            (Decision::Decline, _) => ("consent_declined", "the owner declined"),
        };
        self.event(
            Some(id),
            EventLevel::Info,
            kind,
            &format!("{words} release {}…", &release.to_hex()[..16]),
        )?;
        Ok(c)
    }

    /// The live progress of pushes.
    pub fn progress(&self) -> Vec<Progress> {
        let mut v: Vec<Progress> = self
            .progress
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by_key(|p| p.lock);
        v
    }

    /// One lock's push progress.
    pub fn progress_of(&self, id: LockId) -> Option<Progress> {
        self.progress.lock().ok().and_then(|p| p.get(&id).cloned())
    }

    fn set_progress(&self, lock: LockId, release: Digest, f: impl FnOnce(&mut Progress)) {
        let now = self.now();
        if let Ok(mut table) = self.progress.lock() {
            let p = table.entry(lock).or_insert_with(|| Progress {
                lock,
                release,
                phase: Phase::Connecting,
                done: 0,
                total: 0,
                delta: false,
                postponed: None,
                error: None,
                updated_at: now,
            });
            if p.release != release {
                *p = Progress {
                    release,
                    phase: Phase::Connecting,
                    done: 0,
                    total: 0,
                    delta: false,
                    postponed: None,
                    error: None,
                    ..p.clone()
                };
            }
            f(p);
            p.updated_at = now;
        }
    }

    /// Pushes a release the owner accepted to a lock and gives the lock
    /// the consent: refused without an accepted consent in the store.
    pub fn install(&self, id: LockId, release: Digest) -> Result<InstallReport, HubError> {
        let lock = self.lock(id)?;
        if lock.device_key.is_none() {
            return Err(HubError::NotPaired(id));
        }
        if self.store.release(&release)?.is_none() {
            return Err(HubError::NoRelease(release));
        }
        if decide::decision(&self.store.consents(id)?, &release) != Some(Decision::Accept) {
            return Err(HubError::NoConsent { lock: id, release });
        }
        {
            let mut busy = self
                .busy
                .lock()
                .map_err(|_| HubError::Invalid("poisoned".into()))?;
            if !busy.insert(id) {
                return Err(HubError::Busy(id));
            }
        }
        let _guard = BusyGuard {
            hub: self,
            lock: id,
        };
        self.set_progress(id, release, |p| {
            p.phase = Phase::Connecting;
            p.error = None;
        });
        let r = self.install_locked(lock, release);
        if let Err(e) = &r {
            let msg = e.to_string();
            self.set_progress(id, release, |p| {
                p.phase = Phase::Failed;
                p.error = Some(msg.clone());
            });
            if !matches!(e, HubError::LockLied { .. }) {
                self.event(Some(id), EventLevel::Warning, "install_failed", &msg)?;
            }
        }
        r
    }

    fn install_locked(
        &self,
        mut lock: LockRecord,
        release: Digest,
    ) -> Result<InstallReport, HubError> {
        let id = lock.id;
        let mut link = self.connect(&lock)?;
        let snap = link.status().map_err(lock_err(id))?;
        self.accept_status(&mut lock, snap, None)?;
        let known = self.known(&lock.class)?;
        let Some(offer) = decide::offers(&known, &lock)
            .into_iter()
            .find(|o| o.release == release)
        else {
            let target = known.iter().find(|k| k.release.digest == release);
            let running = lock
                .snapshot
                .as_ref()
                .and_then(|s| decide::running_sequence(&known, s));
            if let (Some(t), Some(r)) = (target, running)
                && r >= t.release.sequence
            {
                self.set_progress(id, release, |p| p.phase = Phase::Done);
                return Ok(InstallReport::AlreadyRunning);
            }
            return Err(HubError::NotApplicable { lock: id, release });
        };
        let mut envelopes = Vec::new();
        for d in &offer.envelopes {
            envelopes.push(
                self.store
                    .release(d)?
                    .ok_or(HubError::NoRelease(*d))?
                    .envelope,
            );
        }
        let refs: Vec<&[u8]> = envelopes.iter().map(Vec::as_slice).collect();
        self.event(
            Some(id),
            EventLevel::Info,
            "push_started",
            &format!(
                "pushing version {} ({})",
                offer.version,
                if offer.delta {
                    "delta, then the full image if refused"
                } else {
                    "full image"
                }
            ),
        )?;
        self.set_progress(id, release, |p| {
            p.phase = Phase::Uploading;
            p.delta = offer.delta;
            p.total = refs.first().map_or(0, |e| e.len() as u64);
        });
        let pushed = link
            .push(&refs, &mut |done, total| {
                self.set_progress(id, release, |p| {
                    p.done = done;
                    p.total = total;
                })
            })
            .map_err(lock_err(id))?;
        self.event(
            Some(id),
            EventLevel::Info,
            "push_done",
            &format!(
                "uploaded {} bytes ({}{})",
                pushed.bytes,
                if pushed.delta { "delta" } else { "full image" },
                if pushed.resumed_from > 0 {
                    format!(", resumed at byte {}", pushed.resumed_from)
                } else {
                    String::new()
                }
            ),
        )?;
        self.set_progress(id, release, |p| {
            p.phase = Phase::Installing;
            p.delta = pushed.delta;
        });
        let outcome = link
            .consent(true, self.config.install_wait_ms)
            .map_err(lock_err(id))?;
        match outcome {
            InstallOutcome::Running => {
                let snap = link.status().map_err(lock_err(id))?;
                self.accept_status(&mut lock, snap, Some((&release, &offer.image)))?;
                self.set_progress(id, release, |p| p.phase = Phase::Done);
                self.event(
                    Some(id),
                    EventLevel::Info,
                    "install_running",
                    &format!("runs version {}", offer.version),
                )?;
                Ok(InstallReport::Running)
            }
            InstallOutcome::Postponed(reason) => {
                if let Ok(snap) = link.status() {
                    // Best effort: the postponement stands without it.
                    let _ = self.accept_status(&mut lock, snap, None);
                }
                let words = match &reason {
                    Postponement::BoltLocked => {
                        "the bolt is thrown; it installs once it is withdrawn".to_string()
                    }
                    Postponement::BatteryLow { have_mwh, need_mwh } => format!(
                        "battery low ({have_mwh} of {need_mwh} mWh); it installs once charged"
                    ),
                };
                self.set_progress(id, release, |p| {
                    p.phase = Phase::Postponed;
                    p.postponed = Some(reason.clone());
                });
                self.event(Some(id), EventLevel::Warning, "install_postponed", &words)?;
                Ok(InstallReport::Postponed { reason })
            }
            InstallOutcome::Refused(why) => {
                self.set_progress(id, release, |p| {
                    p.phase = Phase::Failed;
                    p.error = Some(why.clone());
                });
                self.event(Some(id), EventLevel::Warning, "install_refused", &why)?;
                Ok(InstallReport::Refused { reason: why })
            }
            InstallOutcome::Pending => {
                self.event(
                    Some(id),
                    EventLevel::Info,
                    "install_pending",
                    "no outcome yet; the hub checks again on its next tick",
                )?;
                Ok(InstallReport::Pending)
            }
        }
    }

    // ----- audit logs ----------------------------------------------------

    /// The last sequence number the hub holds of a lock's log.
    fn held_to(&self, lock: &LockRecord) -> Result<Option<u64>, HubError> {
        Ok(match &lock.log {
            LogHealth::Intact { last_seq, .. } => Some(*last_seq),
            LogHealth::Unknown => None,
            _ => self.store.logs(lock.id)?.iter().map(|e| e.last_seq).max(),
        })
    }

    /// Fetches a lock's audit log from where the hub's copy ends, keeps it,
    /// and sets its health; alerts on a break, a gap or a log that went
    /// backwards (which is not kept).
    pub fn fetch_log(&self, id: LockId) -> Result<LogHealth, HubError> {
        let mut lock = self.lock(id)?;
        let held = self.held_to(&lock)?;
        let mut link = self.connect(&lock)?;
        let now = self.now();
        let fetched = match link.fetch_log(held.map(|h| h.saturating_add(1))) {
            Ok(f) => f,
            Err(e @ (LinkError::LogBroken { .. } | LinkError::Malformed(_))) => {
                let reason = match e {
                    LinkError::LogBroken { kind, reason } => format!("{kind:?}: {reason}"),
                    other => other.to_string(),
                };
                lock.log = LogHealth::Broken {
                    reason: reason.clone(),
                    at: now,
                };
                self.store.save_lock(&lock)?;
                self.event(
                    Some(id),
                    EventLevel::Alert,
                    "log_broken",
                    &format!("the audit log did not verify: {reason}"),
                )?;
                return Ok(lock.log);
            }
            Err(e) => return Err(lock_err(id)(e)),
        };
        let health = match decide::log_continuity(held, fetched.first_seq, fetched.last_seq) {
            Continuity::Backwards {
                held_to,
                first,
                last,
            } => {
                let lie = Lie::LogBackwards {
                    held_to,
                    first,
                    last,
                };
                self.event(Some(id), EventLevel::Alert, "lock_lied", &lie.sentence())?;
                return Err(HubError::LockLied { lock: id, lie });
            }
            Continuity::Gap {
                held_to,
                resumed_at,
            } => {
                self.event(
                    Some(id),
                    EventLevel::Alert,
                    "log_gap",
                    &format!(
                        "audit-log records {}..{} are missing (lost, or the ring wrapped between fetches)",
                        held_to + 1,
                        resumed_at
                    ),
                )?;
                LogHealth::Gap {
                    held_to,
                    resumed_at,
                    at: now,
                }
            }
            Continuity::Intact => LogHealth::Intact {
                last_seq: fetched.last_seq.max(held.unwrap_or(0)),
                at: now,
            },
        };
        // New records only (a link may send the whole ring each time).
        let records = fetched.last_seq + 1 - fetched.first_seq;
        if records > 0 && held.is_none_or(|h| fetched.last_seq > h) {
            self.store.put_log(&LogExport {
                lock: id,
                fetched_at: now,
                first_seq: fetched.first_seq,
                last_seq: fetched.last_seq,
                bytes: fetched.bytes,
            })?;
        }
        lock.log = health;
        lock.last_contact = Some(now);
        self.store.save_lock(&lock)?;
        self.event(
            Some(id),
            EventLevel::Info,
            "log_fetched",
            &if records > 0 {
                format!(
                    "audit-log records {}..={}",
                    fetched.first_seq, fetched.last_seq
                )
            } else {
                "no new audit-log records".to_string()
            },
        )?;
        Ok(lock.log)
    }

    // ----- freshness -----------------------------------------------------

    /// Records a TUF sync that verified a fresh timestamp.
    pub fn record_tuf_fresh(
        &self,
        url: &str,
        timestamp_version: u64,
        expires: UnixSecs,
    ) -> Result<(), HubError> {
        let f = Freshness {
            url: Some(url.to_string()),
            last_fresh_at: Some(self.now()),
            timestamp_version: Some(timestamp_version),
            timestamp_expires: Some(expires),
            last_error: None,
        };
        self.store.set_freshness(&f)?;
        self.check_freshness()?;
        Ok(())
    }

    /// Records a TUF sync that failed (the last fresh timestamp stands).
    pub fn record_tuf_error(&self, url: &str, error: &str) -> Result<(), HubError> {
        let mut f = self.store.freshness()?;
        f.url = Some(url.to_string());
        f.last_error = Some(error.to_string());
        self.store.set_freshness(&f)?;
        self.event(None, EventLevel::Warning, "tuf_sync_failed", error)?;
        self.check_freshness()?;
        Ok(())
    }

    /// The hub's view of its repository's freshness.
    pub fn freshness(&self) -> Result<FreshnessReport, HubError> {
        let record = self.store.freshness()?;
        let status = decide::freshness(&record, self.now(), self.config.stale_after_secs);
        Ok(FreshnessReport {
            warning: status.is_warning(),
            record,
            status,
            stale_after_secs: self.config.stale_after_secs,
        })
    }

    /// Writes an event when freshness changes state (stale/expired warn).
    fn check_freshness(&self) -> Result<FreshnessReport, HubError> {
        let r = self.freshness()?;
        let code = r.status.code();
        let changed = {
            let mut last = self
                .last_freshness
                .lock()
                .map_err(|_| HubError::Invalid("poisoned".into()))?;
            let changed = *last != Some(code);
            *last = Some(code);
            changed
        };
        if changed {
            match &r.status {
                FreshnessState::Stale { age_secs } => self.event(
                    None,
                    EventLevel::Warning,
                    "tuf_stale",
                    &format!(
                        "no fresh TUF timestamp for {age_secs} s: the internet is down, or someone withholds updates (a freeze attack); what the hub holds still installs"
                    ),
                )?,
                FreshnessState::Expired { expired_at } => self.event(
                    None,
                    EventLevel::Warning,
                    "tuf_expired",
                    &format!("the TUF timestamp expired at {expired_at}; what the hub holds still installs"),
                )?,
                FreshnessState::Fresh { .. } => {
                    self.event(None, EventLevel::Info, "tuf_fresh", "the TUF view is fresh")?
                }
                FreshnessState::Never => {}
            }
        }
        Ok(r)
    }

    // ----- rollouts ------------------------------------------------------

    /// Creates a rollout of a release across locks (every paired lock of
    /// its model, or the given ones), in waves of `wave_size`, stopping
    /// when a wave's failures exceed `error_threshold_pct`.
    pub fn create_rollout(
        &self,
        release: Digest,
        wave_size: u32,
        error_threshold_pct: u8,
        only: Option<&[LockId]>,
    ) -> Result<Rollout, HubError> {
        if wave_size == 0 {
            return Err(HubError::Invalid("a wave needs at least one lock".into()));
        }
        if error_threshold_pct > 100 {
            return Err(HubError::Invalid(
                "the error threshold is a percentage (0 to 100)".into(),
            ));
        }
        let rel = self
            .store
            .release(&release)?
            .ok_or(HubError::NoRelease(release))?;
        if rel.delta_base.is_some() {
            return Err(HubError::Invalid(
                "a rollout names the full release; the hub picks a delta per lock when one fits"
                    .into(),
            ));
        }
        let locks = self.store.locks()?;
        let ids = decide::rollout_locks(&locks, &rel.class, only).map_err(|id| {
            HubError::Invalid(format!("lock {id} is not a lock of model {}", rel.class))
        })?;
        let mut r = Rollout {
            id: 0,
            release,
            wave_size,
            error_threshold_pct,
            state: RolloutState::Running { wave: 0 },
            locks: ids
                .into_iter()
                .map(|l| (l, RolloutOutcome::Waiting))
                .collect(),
            started_at: self.now(),
        };
        r.id = self.store.create_rollout(&r)?;
        self.event(
            None,
            EventLevel::Info,
            "rollout_started",
            &format!(
                "rollout {} of version {} to {} locks in waves of {wave_size}",
                r.id,
                rel.version,
                r.locks.len()
            ),
        )?;
        Ok(r)
    }

    /// One rollout.
    pub fn rollout(&self, id: i64) -> Result<Rollout, HubError> {
        self.store.rollout(id)?.ok_or(HubError::NoRollout(id))
    }

    /// One lock's part in a rollout: installs only with an accepted consent.
    fn rollout_one(&self, lock: LockId, release: Digest) -> RolloutOutcome {
        match self.install(lock, release) {
            Ok(InstallReport::Running) | Ok(InstallReport::AlreadyRunning) => {
                RolloutOutcome::Updated
            }
            Ok(InstallReport::Postponed { reason }) => RolloutOutcome::Postponed { reason },
            Ok(InstallReport::Refused { reason }) => RolloutOutcome::Failed { reason },
            Ok(InstallReport::Pending) => RolloutOutcome::Failed {
                reason: "no outcome within the wait".into(),
            },
            Err(HubError::NoConsent { .. }) => RolloutOutcome::NeedsConsent,
            Err(e) => RolloutOutcome::Failed {
                reason: e.to_string(),
            },
        }
    }

    /// Runs a rollout's remaining waves (resuming where it was saved),
    /// `config.concurrency` locks at a time; saves it after each wave.
    ///
    /// A rollout already running in this hub is not run twice: the call
    /// returns its saved state.
    pub fn run_rollout(&self, id: i64) -> Result<Rollout, HubError> {
        let mut r = self.rollout(id)?;
        {
            let mut rolling = self
                .rolling
                .lock()
                .map_err(|_| HubError::Invalid("poisoned".into()))?;
            if !rolling.insert(id) {
                return Ok(r);
            }
        }
        struct Rolling<'a>(&'a Mutex<HashSet<i64>>, i64);
        impl Drop for Rolling<'_> {
            fn drop(&mut self) {
                if let Ok(mut s) = self.0.lock() {
                    s.remove(&self.1);
                }
            }
        }
        let _rolling = Rolling(&self.rolling, id);
        let waves = decide::wave_count(r.locks.len(), r.wave_size);
        loop {
            let RolloutState::Running { wave } = r.state else {
                return Ok(r);
            };
            if wave >= waves {
                r.state = RolloutState::Done;
                self.store.save_rollout(&r)?;
                self.event(
                    None,
                    EventLevel::Info,
                    "rollout_done",
                    &format!("rollout {id}: every wave went"),
                )?;
                return Ok(r);
            }
            let range = decide::wave_range(r.locks.len(), r.wave_size, wave);
            let todo: Vec<(usize, LockId)> = range
                .clone()
                .filter(|i| r.locks[*i].1 == RolloutOutcome::Waiting)
                .map(|i| (i, r.locks[i].0))
                .collect();
            let results = self.run_parallel(&todo, r.release);
            for (i, outcome) in results {
                r.locks[i].1 = outcome;
            }
            let outcomes: Vec<RolloutOutcome> =
                r.locks[range].iter().map(|(_, o)| o.clone()).collect();
            r.state = match decide::wave_verdict(&outcomes, r.error_threshold_pct) {
                decide::WaveVerdict::Continue => RolloutState::Running { wave: wave + 1 },
                decide::WaveVerdict::Stop { failed, of } => {
                    RolloutState::Stopped { wave, failed, of }
                }
            };
            self.store.save_rollout(&r)?;
            match r.state {
                RolloutState::Stopped { failed, of, .. } => self.event(
                    None,
                    EventLevel::Alert,
                    "rollout_stopped",
                    &format!(
                        "rollout {id} stopped at wave {wave}: {failed} of {of} locks failed (threshold {}%)",
                        r.error_threshold_pct
                    ),
                )?,
                _ => self.event(
                    None,
                    EventLevel::Info,
                    "rollout_wave",
                    &format!("rollout {id}: wave {wave} went ({} locks)", outcomes.len()),
                )?,
            }
        }
    }

    /// Runs every rollout left running (a hub that stopped mid-rollout
    /// resumes it at the wave it saved); the shell calls it at start.
    pub fn resume_rollouts(&self) -> Result<Vec<Rollout>, HubError> {
        let mut out = Vec::new();
        for r in self.store.rollouts()? {
            if matches!(r.state, RolloutState::Running { .. }) {
                out.push(self.run_rollout(r.id)?);
            }
        }
        Ok(out)
    }

    /// Runs `rollout_one` over `todo` on `config.concurrency` threads.
    fn run_parallel(
        &self,
        todo: &[(usize, LockId)],
        release: Digest,
    ) -> Vec<(usize, RolloutOutcome)> {
        let next = AtomicUsize::new(0);
        let out = Mutex::new(Vec::with_capacity(todo.len()));
        let workers = self.config.concurrency.max(1).min(todo.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(i, lock)) = todo.get(n) else {
                            break;
                        };
                        let o = self.rollout_one(lock, release);
                        if let Ok(mut v) = out.lock() {
                            v.push((i, o));
                        }
                    }
                });
            }
        });
        out.into_inner().unwrap_or_default()
    }

    // ----- the schedule --------------------------------------------------

    /// The shell calls this on a schedule: checks freshness (a change to
    /// stale or expired is a warning event), re-reads the status of each
    /// lock with a pending install (a postponed one shows its reason until
    /// it goes through) or whose audit log is due, fetches the due logs
    /// (every `log_interval_secs`), and installs high and critical fixes
    /// where the owner opted in.
    pub fn tick(&self) -> Result<TickReport, HubError> {
        let mut report = TickReport::default();
        self.check_freshness()?;
        let now = self.now();
        for lock in self.store.locks()? {
            if lock.device_key.is_none() {
                continue;
            }
            let pending = lock.snapshot.as_ref().is_some_and(|s| {
                matches!(
                    s.update,
                    UpdateState::Postponed { .. }
                        | UpdateState::Installing { .. }
                        | UpdateState::AwaitingConsent { .. }
                        | UpdateState::Trial { .. }
                )
            });
            let last_log = match lock.log {
                LogHealth::Unknown => None,
                LogHealth::Intact { at, .. }
                | LogHealth::Gap { at, .. }
                | LogHealth::Broken { at, .. } => Some(at),
            };
            let due =
                last_log.is_none_or(|at| now.saturating_sub(at) >= self.config.log_interval_secs);
            if pending || due || lock.snapshot.is_none() {
                report.rechecked += 1;
                match self.refresh(lock.id) {
                    Err(HubError::Link { .. }) => {
                        report.unreachable += 1;
                        continue;
                    }
                    Err(HubError::LockLied { .. }) => continue,
                    r => {
                        r?;
                    }
                }
            }
            if due {
                match self.fetch_log(lock.id) {
                    Ok(_) => report.logs_fetched += 1,
                    Err(HubError::Link { .. }) => report.unreachable += 1,
                    Err(HubError::LockLied { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            if lock.auto_install_critical {
                report.auto_installs += self.auto_install(lock.id)?;
            }
        }
        Ok(report)
    }

    /// Consents (as the owner's opt-in) to and installs each high or
    /// critical fix the lock has no decision on yet.
    fn auto_install(&self, id: LockId) -> Result<u32, HubError> {
        let lock = self.lock(id)?;
        if busy_or(&self.busy, id) {
            return Ok(0);
        }
        let consents = self.store.consents(id)?;
        let mut n = 0;
        for offer in decide::offers(&self.known(&lock.class)?, &lock) {
            if !decide::auto_consent(&lock, &offer)
                || decide::decision(&consents, &offer.release).is_some()
            {
                continue;
            }
            self.consent(
                id,
                offer.release,
                Decision::Accept,
                ConsentSource::AutoCritical,
            )?;
            n += 1;
            match self.install(id, offer.release) {
                Ok(_)
                | Err(HubError::Link { .. })
                | Err(HubError::LockLied { .. })
                | Err(HubError::Busy(_)) => {}
                Err(e) => return Err(e),
            }
            // The newest applicable fix is enough: it supersedes the rest.
            break;
        }
        Ok(n)
    }

    /// A lock's kept audit-log exports (with their bytes).
    pub fn logs(&self, id: LockId) -> Result<Vec<LogExport>, HubError> {
        self.lock(id)?;
        Ok(self.store.logs(id)?)
    }
}

fn busy_or(busy: &Mutex<HashSet<LockId>>, id: LockId) -> bool {
    busy.lock().map(|b| b.contains(&id)).unwrap_or(true)
}

/// Re-exported for the API's documentation.
pub use intake::Refusal;
