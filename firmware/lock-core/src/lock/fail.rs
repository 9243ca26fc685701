//! What failed in a step of the lock outside the agent.

use keyway_agent::store;
use keyway_device::journal;

use super::SharedError;

/// What failed in a step outside the agent (`E`: the flash driver's
/// error).
#[derive(Debug)]
pub enum Fail<E> {
    /// The owner store.
    Store(store::Error<SharedError<E>>),
    /// The audit log.
    Audit(keyway_audit::Error<SharedError<E>>),
    /// The journal.
    Journal(journal::JournalError<SharedError<E>>),
    /// The verifier.
    Suit(keyway_suit::Error),
    /// A state the step needs is missing.
    State(&'static str),
}

macro_rules! from {
    ($($v:ident($t:ty)),*) => {$(
        impl<E> From<$t> for Fail<E> {
            fn from(e: $t) -> Self {
                Fail::$v(e)
            }
        }
    )*};
}
from!(
    Store(store::Error<SharedError<E>>),
    Audit(keyway_audit::Error<SharedError<E>>),
    Journal(journal::JournalError<SharedError<E>>),
    Suit(keyway_suit::Error)
);
