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
//! * The intent to install is the stored consent, not a call in flight:
//!   [`Hub::tick`] (re)starts the install of each lock's newest accepted
//!   update it does not run yet (a push cut by an unreachable lock, a busy
//!   lock, a killed hub), with a backoff per lock (`retry_base_secs`
//!   doubling to `retry_max_secs`) rebuilt from the stored events after a
//!   restart. A declined or no-longer-applicable release is never retried.
//! * A tick works on its locks on the rollouts' pool (`concurrency`), and
//!   one lock's error is an event (`tick_failed`, with its code), never the
//!   end of the tick for the others.
//! * Hubs may share one store (a fleet view on PostgreSQL). Store leases
//!   ([`Store::try_lease`]) make one of them act at a time: `push:LOCK`
//!   while a hub pushes to a lock, `rollout:ID` while it runs a rollout's
//!   waves (renewed each wave; both last `lease_secs` at most if a hub
//!   dies), and `owner:LOCK`, held for ever by the hub (`hub_id`) that
//!   paired the lock: only that hub ticks it (others leave it alone, with
//!   one `lock_of_another_hub` event).
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
    /// A failed push of an accepted update is retried by [`Hub::tick`]
    /// after this long (seconds), doubling with each further failure…
    pub retry_base_secs: i64,
    /// …up to this long (seconds).
    pub retry_max_secs: i64,
    /// This hub's name among hubs that share one store (a fleet view on
    /// one PostgreSQL database): the holder of its leases and the owner of
    /// the locks it pairs. Each hub needs its own (e.g. its owner key's
    /// id); one hub alone can keep the default.
    pub hub_id: String,
    /// How long a lease on a push or a rollout's wave lasts (seconds): a
    /// hub that dies holding one blocks the others that long at most.
    pub lease_secs: i64,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            stale_after_secs: 24 * 3600,
            log_interval_secs: 3600,
            install_wait_ms: 30_000,
            concurrency: 8,
            retry_base_secs: 60,
            retry_max_secs: 3600,
            hub_id: "local".into(),
            lease_secs: 900,
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
    /// A failure, as a stable code: a hub error code (as the API returns
    /// them) or `install_refused` (the lock refused the install or
    /// reverted its trial).
    pub error_code: Option<&'static str>,
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
        /// Always `install_refused` (a stable code beside the words).
        code: &'static str,
    },
    /// No outcome within the wait; the hub re-checks on later ticks.
    Pending,
    /// The lock already runs it (or a newer release).
    AlreadyRunning,
}

/// The code of an install the lock refused (or whose trial it reverted).
pub const INSTALL_REFUSED: &str = "install_refused";
/// The code of an install with no outcome within the wait.
pub const NO_OUTCOME: &str = "no_outcome";

/// A sync of the hub's release source on request (`POST /api/sync`): the
/// shell implements it (a TUF refresh of its mirror, then [`Hub::ingest`]
/// of what is new, recording freshness with [`Hub::record_tuf_fresh`] /
/// [`Hub::record_tuf_error`]) and hands it to [`Hub::set_sync`].
/// Blocking; the API calls it from a blocking task.
pub trait SyncNow: Send + Sync {
    /// Syncs now; what was taken in.
    fn sync_now(&self, hub: &Hub) -> Result<IngestReport, SyncError>;
}

/// Why a sync on request failed (typed; [`SyncError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The repository did not answer.
    #[error("the release repository did not answer: {0}; the hub keeps what it holds")]
    Unreachable(String),
    /// The repository answered with metadata TUF refused.
    #[error("the release repository's metadata was refused: {0}; nothing was taken in")]
    Refused(String),
    /// The hub failed taking it in.
    #[error(transparent)]
    Hub(#[from] HubError),
}

impl SyncError {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            SyncError::Unreachable(_) => "repository_unreachable",
            SyncError::Refused(_) => "repository_refused",
            SyncError::Hub(e) => e.code(),
        }
    }
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
            HubError::Store(StoreError::NulInText { .. }) => "invalid_text",
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
    /// Accepted updates whose install the tick (re)started.
    pub installs_retried: u32,
    /// Locks whose work failed with another error (each is an event
    /// `tick_failed` with the error's code; the tick went on).
    pub failed: u32,
    /// Locks another hub paired (sharing this store): left to that hub.
    pub other_hub: u32,
}

impl TickReport {
    fn add(&mut self, o: &TickReport) {
        self.rechecked += o.rechecked;
        self.logs_fetched += o.logs_fetched;
        self.auto_installs += o.auto_installs;
        self.unreachable += o.unreachable;
        self.installs_retried += o.installs_retried;
        self.failed += o.failed;
        self.other_hub += o.other_hub;
    }
}

/// A lock's failed pushes since its last success (for the retry backoff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Backoff {
    failures: u32,
    last_at: UnixSecs,
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
    /// Failed pushes per lock; `None` until seeded from the stored events
    /// (so a restarted hub keeps backing off).
    retry: Mutex<Option<HashMap<LockId, Backoff>>>,
    /// Locks of another hub this hub has said it leaves alone (once).
    foreign: Mutex<HashSet<LockId>>,
    /// Locks this hub owns (confirmed once: a lock's owner never changes).
    owned: Mutex<HashSet<LockId>>,
    /// How to sync on request, when the shell gave one.
    sync: Mutex<Option<Arc<dyn SyncNow>>>,
}

/// Releases the lock's busy mark (and its push lease, when taken) when a
/// push ends, however it ends.
struct BusyGuard<'a> {
    hub: &'a Hub,
    lock: LockId,
    leased: bool,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        if self.leased {
            // Best effort: an unreleased lease runs out by itself.
            let _ = self
                .hub
                .store
                .release_lease(&push_lease(self.lock), &self.hub.config.hub_id);
        }
        if let Ok(mut b) = self.hub.busy.lock() {
            b.remove(&self.lock);
        }
    }
}

/// The lease a hub holds while it pushes to a lock.
fn push_lease(lock: LockId) -> String {
    format!("push:{lock}")
}

/// The lease a hub holds while it runs a rollout's wave.
fn rollout_lease(id: i64) -> String {
    format!("rollout:{id}")
}

/// The lease (held for ever) naming the hub that paired a lock.
fn owner_lease(lock: LockId) -> String {
    format!("owner:{lock}")
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
            retry: Mutex::new(None),
            foreign: Mutex::new(HashSet::new()),
            owned: Mutex::new(HashSet::new()),
            sync: Mutex::new(None),
        }
    }

    /// Gives the hub a way to sync its release source on request.
    pub fn set_sync(&self, sync: Arc<dyn SyncNow>) {
        if let Ok(mut s) = self.sync.lock() {
            *s = Some(sync);
        }
    }

    /// Syncs the release source now; `Ok(None)` when the shell gave the
    /// hub no way to (see [`Hub::set_sync`]).
    pub fn sync_now(&self) -> Result<Option<IngestReport>, SyncError> {
        let sync = self.sync.lock().ok().and_then(|s| s.clone());
        match sync {
            None => Ok(None),
            Some(s) => s.sync_now(self).map(Some),
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

    /// Takes (or renews) a lease for `config.lease_secs`.
    fn take_lease(&self, name: &str) -> Result<bool, HubError> {
        let now = self.now();
        Ok(self.store.try_lease(
            name,
            &self.config.hub_id,
            now,
            now.saturating_add(self.config.lease_secs.max(1)),
        )?)
    }

    /// Whether this hub acts on a paired lock: it paired it (or, for a
    /// lock paired before hubs recorded that, it is the first to ask).
    fn owns(&self, lock: LockId) -> Result<bool, HubError> {
        if self.owned.lock().is_ok_and(|o| o.contains(&lock)) {
            return Ok(true);
        }
        let now = self.now();
        let mine = self
            .store
            .try_lease(&owner_lease(lock), &self.config.hub_id, now, i64::MAX)?;
        if mine && let Ok(mut o) = self.owned.lock() {
            o.insert(lock);
        }
        Ok(mine)
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
                && matches!(
                    check,
                    keyway_vendor::check::Check::Signatures | keyway_vendor::check::Check::KeySet
                )
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
        // This hub paired it: it acts on it (others sharing the store view it).
        self.owns(id)?;
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
                error_code: None,
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
                    error_code: None,
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
        let mut guard = BusyGuard {
            hub: self,
            lock: id,
            leased: false,
        };
        // Across hubs sharing the store: one push to a lock at a time.
        if !self.take_lease(&push_lease(id))? {
            return Err(HubError::Busy(id));
        }
        guard.leased = true;
        self.set_progress(id, release, |p| {
            p.phase = Phase::Connecting;
            p.error = None;
            p.error_code = None;
        });
        let r = self.install_locked(lock, release);
        match &r {
            Ok(InstallReport::Refused { .. }) | Err(_) => self.note_retry(id, false),
            Ok(_) => self.note_retry(id, true),
        }
        if let Err(e) = &r {
            let msg = e.to_string();
            let code = e.code();
            self.set_progress(id, release, |p| {
                p.phase = Phase::Failed;
                p.error = Some(msg.clone());
                p.error_code = Some(code);
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
                    p.error_code = Some(INSTALL_REFUSED);
                });
                self.event(Some(id), EventLevel::Warning, "install_refused", &why)?;
                Ok(InstallReport::Refused {
                    reason: why,
                    code: INSTALL_REFUSED,
                })
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
                let (reason, kind) = match e {
                    LinkError::LogBroken { kind, reason } => {
                        (format!("{kind:?}: {reason}"), Some(kind))
                    }
                    other => (other.to_string(), None),
                };
                lock.log = LogHealth::Broken {
                    reason: reason.clone(),
                    kind,
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
            url: Some(url.replace('\0', "\u{FFFD}")),
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
    /// NULs in the error's text (a server's words) become U+FFFD: the
    /// store keeps no NUL.
    pub fn record_tuf_error(&self, url: &str, error: &str) -> Result<(), HubError> {
        let error = &error.replace('\0', "\u{FFFD}");
        let mut f = self.store.freshness()?;
        f.url = Some(url.replace('\0', "\u{FFFD}"));
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
            Ok(InstallReport::Refused { reason, code }) => RolloutOutcome::Failed {
                reason,
                code: code.into(),
            },
            Ok(InstallReport::Pending) => RolloutOutcome::Failed {
                reason: "no outcome within the wait".into(),
                code: NO_OUTCOME.into(),
            },
            Err(HubError::NoConsent { .. }) => RolloutOutcome::NeedsConsent,
            Err(e) => RolloutOutcome::Failed {
                reason: e.to_string(),
                code: e.code().into(),
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
        // Across hubs sharing the store: one runs it; the lease is renewed
        // before each wave, given up at the end.
        struct Leased<'a>(&'a Hub, String);
        impl Drop for Leased<'_> {
            fn drop(&mut self) {
                let _ = self.0.store.release_lease(&self.1, &self.0.config.hub_id);
            }
        }
        if !self.take_lease(&rollout_lease(id))? {
            return Ok(r);
        }
        let _leased = Leased(self, rollout_lease(id));
        // What another hub saved before this one took the lease.
        r = self.rollout(id)?;
        let waves = decide::wave_count(r.locks.len(), r.wave_size);
        loop {
            let RolloutState::Running { wave } = r.state else {
                return Ok(r);
            };
            if !self.take_lease(&rollout_lease(id))? {
                return Ok(r);
            }
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

    /// Resumes a rollout its error threshold stopped: the owner has looked
    /// at the failures and chooses to go on. The stopped wave's outcomes
    /// stand (its failed locks keep their accepted consents, which
    /// [`Hub::tick`] retries); the rollout goes on at the next wave, runs
    /// its waves (blocking, like [`Hub::run_rollout`]) and may stop again.
    /// Only a stopped rollout resumes (`invalid_value` otherwise).
    pub fn resume_rollout(&self, id: i64) -> Result<Rollout, HubError> {
        let mut r = self.rollout(id)?;
        let RolloutState::Stopped { wave, .. } = r.state else {
            return Err(HubError::Invalid(format!(
                "rollout {id} is not stopped: only a rollout its error threshold stopped resumes"
            )));
        };
        r.state = RolloutState::Running { wave: wave + 1 };
        self.store.save_rollout(&r)?;
        self.event(
            None,
            EventLevel::Info,
            "rollout_resumed",
            &format!("rollout {id} resumed by the owner after wave {wave}"),
        )?;
        self.run_rollout(id)
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
        self.pool(todo, |&(i, lock)| (i, self.rollout_one(lock, release)))
    }

    /// Runs `f` over `items` on `config.concurrency` threads (the pool
    /// rollouts and ticks share); the results in the items' order.
    fn pool<T: Sync, R: Send>(&self, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
        let next = AtomicUsize::new(0);
        let out = Mutex::new(Vec::with_capacity(items.len()));
        let workers = self.config.concurrency.max(1).min(items.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(n) else {
                            break;
                        };
                        let r = f(item);
                        if let Ok(mut v) = out.lock() {
                            v.push((n, r));
                        }
                    }
                });
            }
        });
        let mut v = out.into_inner().unwrap_or_default();
        v.sort_by_key(|(n, _)| *n);
        v.into_iter().map(|(_, r)| r).collect()
    }

    // ----- the schedule --------------------------------------------------

    /// The shell calls this on a schedule: checks freshness (a change to
    /// stale or expired is a warning event), then for each paired lock, on
    /// `config.concurrency` threads (the rollouts' pool): re-reads the
    /// status of a lock with a pending install (a postponed one shows its
    /// reason until it goes through) or whose audit log is due, fetches the
    /// due logs (every `log_interval_secs`), consents to high and critical
    /// fixes where the owner opted in, and (re)starts the install of the
    /// newest accepted update the lock does not run yet, once its backoff
    /// allows and no rollout runs in this hub.
    ///
    /// One lock's failure never stops the others: it is counted, written
    /// as an event `tick_failed` (with the error's code), and the tick goes
    /// on. Only a store that cannot list the locks fails the tick.
    pub fn tick(&self) -> Result<TickReport, HubError> {
        let mut report = TickReport::default();
        if let Err(e) = self.check_freshness() {
            report.failed += 1;
            self.tick_failed(None, &e);
        }
        self.seed_retry();
        let now = self.now();
        let locks: Vec<LockRecord> = self
            .store
            .locks()?
            .into_iter()
            .filter(|l| l.device_key.is_some())
            .collect();
        for (lock, r) in locks
            .iter()
            .zip(self.pool(&locks, |l| self.tick_one(l, now)))
        {
            match r {
                Ok(one) => report.add(&one),
                Err(e) => {
                    report.failed += 1;
                    self.tick_failed(Some(lock.id), &e);
                }
            }
        }
        Ok(report)
    }

    /// Writes a tick's per-lock failure as an event (best effort: a store
    /// that cannot write it cannot be told either).
    fn tick_failed(&self, lock: Option<LockId>, e: &HubError) {
        let _ = self.event(
            lock,
            EventLevel::Warning,
            "tick_failed",
            &format!("{} ({})", e, e.code()),
        );
    }

    /// One lock's part of a tick.
    fn tick_one(&self, lock: &LockRecord, now: UnixSecs) -> Result<TickReport, HubError> {
        let mut report = TickReport::default();
        if !self.owns(lock.id)? {
            report.other_hub += 1;
            let first = self
                .foreign
                .lock()
                .map(|mut f| f.insert(lock.id))
                .unwrap_or(false);
            if first {
                self.event(
                    Some(lock.id),
                    EventLevel::Info,
                    "lock_of_another_hub",
                    &format!(
                        "another hub paired this lock; hub {} shows it and leaves it to that hub",
                        self.config.hub_id
                    ),
                )?;
            }
            return Ok(report);
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
        let due = last_log.is_none_or(|at| now.saturating_sub(at) >= self.config.log_interval_secs);
        if pending || due || lock.snapshot.is_none() {
            report.rechecked += 1;
            match self.refresh(lock.id) {
                Err(HubError::Link { .. }) => {
                    report.unreachable += 1;
                    return Ok(report);
                }
                Err(HubError::LockLied { .. }) => return Ok(report),
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
        match self.retry_install(lock.id) {
            Ok(true) => report.installs_retried += 1,
            Ok(false) => {}
            Err(HubError::Link { .. }) => {
                report.installs_retried += 1;
                report.unreachable += 1;
            }
            Err(HubError::LockLied { .. }) | Err(HubError::Busy(_)) => {
                report.installs_retried += 1;
            }
            Err(e) => return Err(e),
        }
        Ok(report)
    }

    /// Records an install's outcome for the retry backoff.
    fn note_retry(&self, lock: LockId, ok: bool) {
        let now = self.now();
        if let Ok(mut g) = self.retry.lock() {
            let map = g.get_or_insert_with(HashMap::new);
            if ok {
                map.remove(&lock);
            } else {
                let b = map.entry(lock).or_insert(Backoff {
                    failures: 0,
                    last_at: now,
                });
                b.failures = b.failures.saturating_add(1);
                b.last_at = now;
            }
        }
    }

    /// Rebuilds the backoff from the stored events, once per hub: per lock,
    /// the `install_failed` / `install_refused` events since its last
    /// success or consent (`install_running`, `install_postponed`,
    /// `install_pending`, `update_confirmed`, `consent_accepted`,
    /// `auto_consent`), and the time of the last one. A push cut by a
    /// crash left no failure event: it is retried at once.
    fn seed_retry(&self) {
        let Ok(mut g) = self.retry.lock() else {
            return;
        };
        if g.is_some() {
            return;
        }
        let mut map: HashMap<LockId, Backoff> = HashMap::new();
        let mut after = 0;
        while let Ok(page) = self.store.events(after, 1000) {
            let Some(last) = page.last() else {
                break;
            };
            after = last.id;
            for e in &page {
                let Some(lock) = e.lock else {
                    continue;
                };
                match e.kind.as_str() {
                    "install_failed" | "install_refused" => {
                        let b = map.entry(lock).or_insert(Backoff {
                            failures: 0,
                            last_at: e.at,
                        });
                        b.failures = b.failures.saturating_add(1);
                        b.last_at = e.at;
                    }
                    "install_running" | "install_postponed" | "install_pending"
                    | "update_confirmed" | "consent_accepted" | "auto_consent" => {
                        map.remove(&lock);
                    }
                    _ => {}
                }
            }
        }
        *g = Some(map);
    }

    /// Whether a lock's backoff lets the tick retry now.
    fn retry_due(&self, lock: LockId) -> bool {
        let now = self.now();
        let Ok(g) = self.retry.lock() else {
            return false;
        };
        let Some(b) = g.as_ref().and_then(|m| m.get(&lock)).copied() else {
            return true;
        };
        let base = self.config.retry_base_secs.max(1);
        let wait = base
            .saturating_mul(1i64 << (b.failures.saturating_sub(1)).min(30))
            .min(self.config.retry_max_secs.max(base));
        now.saturating_sub(b.last_at) >= wait
    }

    /// (Re)starts the install of the newest update this lock's owner
    /// accepted (the latest decision on it is Accept, it is still one of
    /// the lock's updates, the lock does not hold it pending already, no
    /// push to it is running) once its backoff allows. `Ok(true)` when an
    /// install was started (whatever its outcome).
    fn retry_install(&self, id: LockId) -> Result<bool, HubError> {
        // A rollout running in this hub pushes its locks itself: a retry
        // racing it would make its push `lock_busy` (a counted failure).
        if busy_or(&self.busy, id) || self.rolling.lock().map_or(true, |r| !r.is_empty()) {
            return Ok(false);
        }
        let lock = self.lock(id)?;
        let consents = self.store.consents(id)?;
        let offers = decide::offers(&self.known(&lock.class)?, &lock);
        let Some(offer) = offers
            .into_iter()
            .find(|o| decide::decision(&consents, &o.release) == Some(Decision::Accept))
        else {
            return Ok(false);
        };
        let held = lock.snapshot.as_ref().and_then(|s| match &s.update {
            UpdateState::Postponed { release, .. } | UpdateState::Installing { release } => {
                Some(*release)
            }
            _ => None,
        });
        if held.is_some_and(|h| h == offer.release || offer.envelopes.contains(&h))
            || lock
                .snapshot
                .as_ref()
                .is_some_and(|s| matches!(s.update, UpdateState::Trial { .. }))
        {
            return Ok(false);
        }
        if !self.retry_due(id) {
            return Ok(false);
        }
        self.event(
            Some(id),
            EventLevel::Info,
            "install_retry",
            &format!(
                "installing version {} the owner accepted (not installed yet)",
                offer.version
            ),
        )?;
        match self.install(id, offer.release) {
            Ok(_) => Ok(true),
            Err(HubError::Busy(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Consents (as the owner's opt-in) to each high or critical fix the
    /// lock has no decision on yet; `retry_install` installs it (and
    /// retries it, like any accepted update).
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
