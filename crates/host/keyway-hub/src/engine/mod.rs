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
//!   [`LockLink`](crate::link::LockLink) (through the [`Connector`]) and the [`Clock`], calls
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
//! The [`Hub`]'s methods live by job: `ingest` (releases and the mirror's
//! freshness), `locks` (pairing, refresh, consent, logs), `install` (one
//! push and its progress), `rollout` (waves), `tick` (retries and
//! auto-install).
//!
//! [`Event`]: crate::model::Event

pub mod decide;
mod ingest;
mod install;
pub mod intake;
mod locks;
mod rollout;
mod tick;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::link::{Connector, LinkError};
use crate::model::{
    Digest, EventLevel, Freshness, LeaseClaim, LockId, NewEvent, Postponement, ReleaseOrigin,
    UnixSecs,
};
use crate::store::{Store, StoreError};
use decide::{FreshnessState, Lie};

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
    pub reason: intake::IntakeRefusal,
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
    BadModel(intake::IntakeRefusal),
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
        self.store.add_event(&NewEvent {
            at: self.now(),
            lock,
            level,
            kind,
            message,
        })?;
        Ok(())
    }

    /// Takes (or renews) a lease for `config.lease_secs`.
    fn take_lease(&self, name: &str) -> Result<bool, HubError> {
        let now = self.now();
        Ok(self.store.try_lease(&LeaseClaim {
            name,
            holder: &self.config.hub_id,
            now,
            until: now.saturating_add(self.config.lease_secs.max(1)),
        })?)
    }

    /// Whether this hub acts on a paired lock: it paired it (or, for a
    /// lock paired before hubs recorded that, it is the first to ask).
    fn owns(&self, lock: LockId) -> Result<bool, HubError> {
        if self.owned.lock().is_ok_and(|o| o.contains(&lock)) {
            return Ok(true);
        }
        let now = self.now();
        let mine = self.store.try_lease(&LeaseClaim {
            name: &owner_lease(lock),
            holder: &self.config.hub_id,
            now,
            until: i64::MAX,
        })?;
        if mine && let Ok(mut o) = self.owned.lock() {
            o.insert(lock);
        }
        Ok(mine)
    }
}

fn busy_or(busy: &Mutex<HashSet<LockId>>, id: LockId) -> bool {
    busy.lock().map(|b| b.contains(&id)).unwrap_or(true)
}

/// Re-exported for the API's documentation.
pub use intake::IntakeRefusal;
