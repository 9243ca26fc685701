//! What the hub asks of a lock, over the lock's secure local channel.
//!
//! The `keyway` command implements [`LockLink`] with `keyway device`'s
//! client (SMP over UDP, the owner's sealed session); tests implement it
//! with locks that fail or lie. Every answer a link returns came sealed
//! from the lock (authenticated with its device key): the hub acts only
//! on those.

use crate::model::{Digest, LockSnapshot, Postponement};

/// Why a call to a lock failed (typed: the hub decides on the variant,
/// never on words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The lock did not answer (off, out of range, rebooting).
    #[error("the lock at {address} did not answer: is it powered and in range?")]
    Unreachable {
        /// Its address.
        address: String,
    },
    /// The setup code was wrong (the lock counts the try).
    #[error("the lock refused the setup code: check the code on the lock's label")]
    WrongSetupCode,
    /// Pairing needs the lock's presence window: press its button.
    #[error(
        "the lock's presence window is closed: press the lock's button, then pair within its window"
    )]
    NoPresence,
    /// The lock's identity did not match its paired device key, or an
    /// answer did not open under the session: a different device or an
    /// attacker.
    #[error(
        "the lock at {address} did not prove its device key: not the paired lock, or an attacker in between"
    )]
    NotAuthenticated {
        /// Its address.
        address: String,
    },
    /// The lock refused the command, with its typed reason.
    #[error("the lock refused: {reason}")]
    Refused {
        /// In words (rendered from the lock's typed refusal).
        reason: String,
        /// The SMP `rc`.
        rc: u64,
    },
    /// The lock's answer was malformed or contradicted itself.
    #[error("the lock's answer makes no sense: {0}")]
    Malformed(String),
    /// None of the envelopes offered fits the lock: it holds them (or a
    /// newer release), or none applies to its image. Nothing was sent.
    #[error("nothing to push: {reason}")]
    NothingToPush {
        /// Why, in words.
        reason: String,
    },
    /// The audit log's export did not verify with the paired device key.
    #[error("the lock's audit log does not verify with its device key ({kind:?}): {reason}")]
    LogBroken {
        /// The verifier's first finding, typed.
        kind: LogBreak,
        /// Every finding, in words.
        reason: String,
    },
}

/// How an audit-log export failed verification: the kinds `keyway log
/// verify` tells apart, the verifier's own type. In JSON (a lock's
/// `log.kind` when broken) a snake-case code: `modified`, `deleted`,
/// `truncated`, `out_of_order`, `inserted`, `forged`, `other_device`,
/// `unreadable`, `no_head`.
pub use keyway_vendor::log::FindingKind as LogBreak;

/// What pairing learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paired {
    /// The lock's device key (raw Ed25519), proven by the pairing.
    pub device_key: [u8; 32],
}

/// How a push went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The envelope uploaded (a delta's or the full image's).
    pub release: Digest,
    /// Bytes sent.
    pub bytes: u64,
    /// Where the upload resumed (0: from the start).
    pub resumed_from: u64,
    /// Whether it was a delta.
    pub delta: bool,
}

/// What an install request led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallOutcome {
    /// The lock runs the release, confirmed.
    Running,
    /// The lock's policy postponed it; it installs by itself once the
    /// reason clears.
    Postponed(Postponement),
    /// The lock refused it or reverted the trial.
    Refused(String),
    /// No outcome within the wait.
    Pending,
}

/// An audit-log export, verified with the device key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedLog {
    /// The export as the lock sent it.
    pub bytes: Vec<u8>,
    /// The first record's sequence number.
    pub first_seq: u64,
    /// The last record's sequence number.
    pub last_seq: u64,
}

/// One lock, over its secure channel.
pub trait LockLink: Send {
    /// Pairs with the setup code, in the lock's presence window.
    fn pair(&mut self, setup_code: &str) -> Result<Paired, LinkError>;
    /// The lock's state (sealed).
    fn status(&mut self) -> Result<LockSnapshot, LinkError>;
    /// Uploads one of `candidates` (envelopes of one release: a delta for
    /// the running image if there is one, else the full image), with
    /// progress `(done, total)` bytes.
    fn push(
        &mut self,
        candidates: &[&[u8]],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Pushed, LinkError>;
    /// Gives the owner's consent to the uploaded release (or declines),
    /// then waits up to `wait_ms` for an outcome.
    fn consent(&mut self, accept: bool, wait_ms: u64) -> Result<InstallOutcome, LinkError>;
    /// Fetches the audit log from `since` (a sequence number), verified
    /// with the paired device key; a log that does not verify is an error
    /// carrying the verifier's reason.
    fn fetch_log(&mut self, since: Option<u64>) -> Result<FetchedLog, LinkError>;
}

/// Opens a [`LockLink`] to a lock the hub manages.
///
/// The `keyway` command implements it over `keyway device`'s client; tests
/// implement it with scripted locks. A lock whose record has no device key
/// yet (`device_key: None`) connects for pairing only: the link must refuse
/// every call but [`LockLink::pair`] until it is paired (the lock itself
/// refuses them: only an owner's sealed session may ask). A paired record's
/// link authenticates the lock with its `device_key`.
pub trait Connector: Send + Sync {
    /// Connects to `lock` at its address.
    fn connect(&self, lock: &crate::model::LockRecord) -> Result<Box<dyn LockLink>, LinkError>;
}
