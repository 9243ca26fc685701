//! What the agent tells the shell after a frame: [`Outcome`] and its [`Event`].

use super::*;

/// What happened, for the shell to act on (after sending the answer) and
/// to record in the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing to act on.
    None,
    /// An owner's session unlocked the door.
    Unlocked {
        /// The owner.
        by: KeyId,
    },
    /// An owner's session locked the door.
    Locked {
        /// The owner.
        by: KeyId,
    },
    /// Reset the lock (after sending the answer).
    Reset {
        /// Who asked.
        by: Authority,
    },
    /// A new owner paired with the setup code.
    OwnerPaired {
        /// Its key id.
        key_id: KeyId,
    },
    /// An owner removed an owner.
    OwnerRemoved {
        /// The removed owner.
        key_id: KeyId,
        /// The owner who removed it.
        by: KeyId,
    },
    /// An owner accepted or refused the pending update.
    Consent {
        /// Accepted (install) or refused (erase).
        accept: bool,
        /// The owner.
        by: KeyId,
    },
    /// An owner changed the settings.
    Settings {
        /// The owner.
        by: KeyId,
    },
    /// A factory reset: the owners, consent and settings are gone; the
    /// shell erases what else it keeps and resets.
    FactoryReset,
    /// A pairing attempt was charged (a guess at the setup code).
    PairingAttempt {
        /// Attempts not yet confirmed by a right code.
        failures: u32,
    },
    /// An owner opened a session.
    SessionOpened {
        /// The owner.
        owner: KeyId,
    },
}

/// What [`Agent::handle`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The answer's length in the output buffer (0: send nothing).
    pub len: usize,
    /// What the shell acts on or records.
    pub event: Event,
}

impl Outcome {
    /// An answer of `len` bytes with nothing for the shell to act on.
    pub(super) const fn answer(len: usize) -> Self {
        Self {
            len,
            event: Event::None,
        }
    }

    /// A typed refusal `r` of the request `hdr`, written to `out`.
    pub(super) fn refused(out: &mut [u8], hdr: &Header, r: Refusal) -> Self {
        Self::answer(refuse_frame(out, hdr, r, true))
    }
}
