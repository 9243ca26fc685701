//! Who may do what: one table, consulted for every request before its
//! command runs (issue 12, "Authority"). This is the single source: the
//! simulated lock's `authority.rs` is its older copy, for the signed
//! requests the channel replaces.
//!
//! | need | commands |
//! |---|---|
//! | anyone ([`Need::Open`]) | OS echo, MCUmgr parameters, image state read |
//! | the channel itself ([`Need::Channel`]) | session start and finish, sealed records: each carries its own proof, and they are never sealed |
//! | the presence window ([`Need::Pairing`]) | pairing by PAKE (parameters, first message, confirmation): the setup code is proven by the PAKE; never sealed |
//! | the window, or an owner's session ([`Need::WindowOrOwner`]) | image upload, image state write (test, confirm), image erase, OS reset, OS info, presence |
//! | the window and the long press ([`Need::WindowAndLongPress`]) | factory reset |
//! | an owner's session ([`Need::Owner`]) | status, lock, unlock, notes, consent, log export, settings, owners, unpair |
//! | nothing ([`Need::Unknown`]) | everything else, including the old unauthenticated `pair` (id 8) and `challenge` (id 7), which sessions replace |
//!
//! The presence window alone never unlocks the door: it stands for a
//! person at the lock, which stock MCUmgr tools need for an update, not
//! for the door's owner. Status and the log export show who came and went,
//! so they are for owners only. An owner's authority comes only from a
//! session: a plain request is judged by the window, whatever `auth`
//! field it carries.

use keyway_smp::{Op, Refusal, group, img, keyway_group, os};

use crate::store::KeyId;

/// Who a request comes from, as far as the lock can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Authority {
    /// Anyone in radio range: a plain request while the window is closed.
    Anyone,
    /// A plain request while the presence window is open: a person is at
    /// the lock (or someone near it at that moment).
    Window,
    /// A sealed request in a session of the paired owner with this key id.
    Owner(KeyId),
}

impl Authority {
    /// The owner's key id, for a request sealed in an owner's session.
    pub const fn owner(self) -> Option<KeyId> {
        match self {
            Self::Owner(k) => Some(k),
            _ => None,
        }
    }
}

/// What a request needs (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Need {
    /// Nothing: anyone may ask.
    Open,
    /// A channel message (session handshake, sealed record): plain only.
    Channel,
    /// Pairing by PAKE: the presence window, plain only.
    Pairing,
    /// The presence window, or an owner's session.
    WindowOrOwner,
    /// The presence window and the long press within it.
    WindowAndLongPress,
    /// An owner's session.
    Owner,
    /// Not a command the lock serves.
    Unknown,
}

/// Why [`permits`] said no.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Denial {
    /// Not a command the lock serves this way (`ENOTSUP`).
    NotSupported,
    /// Refused, with the typed reason.
    Refused(Refusal),
}

/// What the request (`op`, `group`, `id`) needs.
pub fn need(op: Op, group: u16, id: u8) -> Need {
    use Need::*;
    use Op::{Read as R, Write as W};
    match (op, group, id) {
        (W, group::OS, os::cmd::ECHO) => Open,
        (R, group::OS, os::cmd::PARAMS) => Open,
        (R, group::OS, os::cmd::INFO) => WindowOrOwner,
        (W, group::OS, os::cmd::RESET) => WindowOrOwner,
        (R, group::IMAGE, img::cmd::STATE) => Open,
        (W, group::IMAGE, img::cmd::STATE) => WindowOrOwner,
        (W, group::IMAGE, img::cmd::UPLOAD) => WindowOrOwner,
        (W, group::IMAGE, img::cmd::ERASE) => WindowOrOwner,
        (R, group::KEYWAY, keyway_group::cmd::PRESENCE) => WindowOrOwner,
        (R | W, group::KEYWAY, keyway_group::cmd::PAKE_START)
        | (W, group::KEYWAY, keyway_group::cmd::PAKE_FINISH) => Pairing,
        (
            W,
            group::KEYWAY,
            keyway_group::cmd::SESSION_START
            | keyway_group::cmd::SESSION_FINISH
            | keyway_group::cmd::SEALED,
        ) => Channel,
        (W, group::KEYWAY, keyway_group::cmd::FACTORY_RESET) => WindowAndLongPress,
        (
            R,
            group::KEYWAY,
            keyway_group::cmd::STATUS
            | keyway_group::cmd::NOTES
            | keyway_group::cmd::LOG
            | keyway_group::cmd::OWNERS,
        ) => Owner,
        (
            W,
            group::KEYWAY,
            keyway_group::cmd::LOCK
            | keyway_group::cmd::UNLOCK
            | keyway_group::cmd::CONSENT
            | keyway_group::cmd::SETTINGS
            | keyway_group::cmd::UNPAIR,
        ) => Owner,
        _ => Unknown,
    }
}

/// Whether `who` may run a request that needs `need`; `long_press` is
/// whether the button's long press was given in the open window.
pub fn permits(need: Need, who: Authority, long_press: bool) -> Result<(), Denial> {
    use Authority::*;
    let refuse = |r| Err(Denial::Refused(r));
    match (need, who) {
        (Need::Unknown, _) => Err(Denial::NotSupported),
        (Need::Open, _) => Ok(()),
        // Channel and pairing messages are never sealed.
        (Need::Channel | Need::Pairing, Owner(_)) => Err(Denial::NotSupported),
        (Need::Channel, _) => Ok(()),
        (Need::Pairing, Window) => Ok(()),
        (Need::Pairing, Anyone) => refuse(Refusal::NoPresenceWindow),
        (Need::WindowOrOwner, Window | Owner(_)) => Ok(()),
        (Need::WindowOrOwner, Anyone) => refuse(Refusal::NoPresenceWindow),
        (Need::WindowAndLongPress, Window) if long_press => Ok(()),
        (Need::WindowAndLongPress, Window) => refuse(Refusal::LongPressNeeded),
        (Need::WindowAndLongPress, _) => refuse(Refusal::NoPresenceWindow),
        (Need::Owner, Owner(_)) => Ok(()),
        (Need::Owner, _) => refuse(Refusal::SessionRequired),
    }
}
