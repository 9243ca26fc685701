//! The hub's store: the [`Store`] trait and its backends.
//!
//! Everything the hub must not lose (releases, locks, consents, audit
//! logs, rollouts, events, freshness) lives in the store, and a call
//! returns only once what it wrote is durable (committed): a SIGKILL at
//! any point loses nothing a call reported as done.
//!
//! The trait is synchronous: the hub's API calls it from blocking tasks.
//! Every method takes the time it needs as an argument (the core reads no
//! clock).
//!
//! Backends:
//!
//! * [`SqliteStore`] (`sqlite/`): one file, WAL journal,
//!   `synchronous=FULL`: the embedded default.
//! * [`PgStore`] (`postgres/`): PostgreSQL, for hubs that share one fleet
//!   view: ids from sequences, no in-process caches, a transaction wherever
//!   a call writes more than one row.
//!
//! Both keep the same schema (`schema_version` plus one table per kind of
//! value): typed columns for what the hub looks up or orders by (ids,
//! class, digest, sequence, times) and JSON for the nested enums (a
//! lock's snapshot and log health, a rollout's state and outcomes, a
//! release's CVEs and origin). Both migrate the schema forward on open, in
//! a transaction, and refuse a store written by a newer hub
//! ([`StoreError::TooNew`]). A value that does not decode is
//! [`StoreError::Corrupt`], never a panic; a full disk is
//! [`StoreError::Full`], with nothing written.
//!
//! What the backends share is in `codec` (how a value becomes a column)
//! and `decode` (how a row becomes the model's value again).

mod codec;
mod decode;
mod postgres;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::model::{
    Consent, Digest, Event, Freshness, LeaseClaim, LockId, LockRecord, LogExport, ModelAnchors,
    NewEvent, NewLock, Release, Rollout,
};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, the database's own error).
    #[error("the hub's store failed: {0}")]
    Backend(String),
    /// The disk (or the database) is full: nothing was written.
    #[error("the hub's store is full: nothing was written; free space and try again ({0})")]
    Full(String),
    /// No such lock.
    #[error("no lock with id {0}")]
    NoLock(LockId),
    /// No such release.
    #[error("no release {0}")]
    NoRelease(Digest),
    /// No such rollout.
    #[error("no rollout with id {0}")]
    NoRollout(i64),
    /// A text value holds a NUL character, which PostgreSQL's `text`
    /// cannot keep; both backends refuse it the same way, writing nothing.
    #[error("the hub's store cannot keep {what}: it contains a NUL character (U+0000)")]
    NulInText {
        /// Which value.
        what: String,
    },
    /// The store was written by a newer hub (its schema version is above
    /// the one this hub knows): nothing was changed.
    #[error(
        "the hub's store has schema version {found}, newer than this hub's {supported}: run a newer hub"
    )]
    TooNew {
        /// The store's schema version.
        found: i64,
        /// The newest version this hub knows.
        supported: i64,
    },
    /// A value in the store does not decode: the store was changed by
    /// something other than the hub.
    #[error("the hub's store holds a value it cannot read ({what}): {why}")]
    Corrupt {
        /// Which value.
        what: String,
        /// Why.
        why: String,
    },
}

/// The hub's durable state. Implementations: SQLite (the default, one
/// file) and PostgreSQL (hubs sharing one fleet view).
pub trait Store: Send + Sync {
    /// Adds or replaces a lock model's anchors.
    fn put_model(&self, model: &ModelAnchors) -> Result<(), StoreError>;
    /// The models, by class.
    fn models(&self) -> Result<Vec<ModelAnchors>, StoreError>;

    /// Adds a release; `Ok(false)` if the store already held it (same
    /// digest), which is not an error.
    fn put_release(&self, release: &Release) -> Result<bool, StoreError>;
    /// One release, with its envelope.
    fn release(&self, digest: &Digest) -> Result<Option<Release>, StoreError>;
    /// The releases for a class (every class with `None`), newest
    /// sequence first, without their envelopes (`envelope` empty).
    fn releases(&self, class: Option<&str>) -> Result<Vec<Release>, StoreError>;

    /// Adds a lock (not yet paired).
    fn add_lock(&self, lock: &NewLock) -> Result<LockId, StoreError>;
    /// One lock.
    fn lock(&self, id: LockId) -> Result<Option<LockRecord>, StoreError>;
    /// Every lock, by id.
    fn locks(&self) -> Result<Vec<LockRecord>, StoreError>;
    /// Replaces a lock's record (its id must exist: else
    /// [`StoreError::NoLock`]).
    fn save_lock(&self, lock: &LockRecord) -> Result<(), StoreError>;
    /// Removes a lock and what the store holds for it (its consents and
    /// kept logs), in one transaction; [`StoreError::NoLock`] if there is
    /// none. Events that name it stay (they are the owner's history), and
    /// its id is never given to another lock.
    fn remove_lock(&self, id: LockId) -> Result<(), StoreError>;

    /// Records a consent (replacing an earlier decision on the same lock
    /// and release). Durable before it returns: the hub acts on it after.
    /// [`StoreError::NoLock`] / [`StoreError::NoRelease`] when either is
    /// unknown.
    fn put_consent(&self, consent: &Consent) -> Result<(), StoreError>;
    /// A lock's consents.
    fn consents(&self, lock: LockId) -> Result<Vec<Consent>, StoreError>;

    /// Keeps an audit-log export ([`StoreError::NoLock`] for an unknown
    /// lock).
    fn put_log(&self, export: &LogExport) -> Result<(), StoreError>;
    /// A lock's kept exports, oldest first (with their bytes).
    fn logs(&self, lock: LockId) -> Result<Vec<LogExport>, StoreError>;

    /// Creates a rollout; returns its id (the record's `id` is ignored).
    /// [`StoreError::NoRelease`] for an unknown release.
    fn create_rollout(&self, rollout: &Rollout) -> Result<i64, StoreError>;
    /// Replaces a rollout's record ([`StoreError::NoRollout`] for an
    /// unknown id).
    fn save_rollout(&self, rollout: &Rollout) -> Result<(), StoreError>;
    /// One rollout.
    fn rollout(&self, id: i64) -> Result<Option<Rollout>, StoreError>;
    /// Every rollout, newest first.
    fn rollouts(&self) -> Result<Vec<Rollout>, StoreError>;

    /// Appends an event; returns its id.
    fn add_event(&self, event: &NewEvent<'_>) -> Result<i64, StoreError>;
    /// Events with an id above `after`, oldest first, at most `limit`.
    fn events(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError>;

    /// The TUF freshness record.
    fn freshness(&self) -> Result<Freshness, StoreError>;
    /// Replaces it.
    fn set_freshness(&self, f: &Freshness) -> Result<(), StoreError>;

    /// Takes the lease `claim.name` for `claim.holder` until `claim.until`
    /// (Unix seconds), in one atomic conditional upsert: when no one holds
    /// it, when its holder's lease ran out (`until <= claim.now`), or when
    /// `claim.holder` holds it already (a renewal). `true` when the holder
    /// holds it on return. Hubs
    /// that share one store use leases so that one of them acts on a
    /// rollout or a lock at a time (see the engine).
    fn try_lease(&self, claim: &LeaseClaim<'_>) -> Result<bool, StoreError>;
    /// Gives the lease `name` up if `holder` holds it (otherwise nothing
    /// changes).
    fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
}
