//! Who may do what: one table, sans-IO, consulted for every request
//! before its command runs (issue 12, "Authority").
//!
//! | authority | commands |
//! |---|---|
//! | anyone | OS echo, MCUmgr parameters, image state read, `challenge` |
//! | the presence window, or an owner's signed request | image upload, image state write (test, confirm), image erase, OS reset, OS info, `presence` |
//! | the presence window | `pair` |
//! | the presence window and the long press | `factory reset` |
//! | an owner's signed request | `status`, `lock`, `unlock`, `notes`, `consent`, `log` (export), `settings`, `owners`, `unpair` |
//!
//! The presence window alone never unlocks the door: it stands for a
//! person at the lock, which stock MCUmgr tools need for an update, not
//! for the door's owner. `status` and the log export show who came and
//! went, so they are for owners only; so is the list of owners, and only
//! an owner removes one (`unpair`: the presence window alone never
//! does, or a passer-by could lock the owners out). `challenge` is open because an
//! owner needs a nonce to sign anything. A request that carries `auth` is
//! judged by it, even with the window open. Chunks after the first belong
//! to the peer that began the upload or the export (`crate::peers`).

use crate::keyway_group::cmd;
use crate::smp::group;

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: anyone may ask.
    Open,
    /// The presence window or an owner's signed request.
    WindowOrOwner,
    /// The presence window.
    Window,
    /// The presence window and the long press within it.
    WindowAndLongPress,
    /// An owner's signed request.
    Owner,
    /// Nothing the lock answers (not supported): refused by dispatch.
    Unknown,
}

/// OS and image group command ids (keyway-smp).
pub(crate) use keyway_smp::{img::cmd as img_cmd, os::cmd as os_cmd};

/// What the request `group`/`id` (a write if `write`) needs.
pub fn need(group: u16, id: u8, write: bool) -> Need {
    use Need::*;
    match (group, id, write) {
        (group::OS, os_cmd::ECHO, _) => Open,
        (group::OS, os_cmd::PARAMS, false) => Open,
        (group::OS, os_cmd::INFO, false) => WindowOrOwner,
        (group::OS, os_cmd::RESET, true) => WindowOrOwner,
        (group::IMAGE, img_cmd::STATE, false) => Open,
        (group::IMAGE, img_cmd::STATE, true) => WindowOrOwner,
        (group::IMAGE, img_cmd::UPLOAD, true) => WindowOrOwner,
        (group::IMAGE, img_cmd::ERASE, true) => WindowOrOwner,
        (group::KEYWAY, cmd::CHALLENGE, false) => Open,
        (group::KEYWAY, cmd::PRESENCE, false) => WindowOrOwner,
        (group::KEYWAY, cmd::PAIR, true) => Window,
        (group::KEYWAY, cmd::FACTORY_RESET, true) => WindowAndLongPress,
        (group::KEYWAY, cmd::STATUS | cmd::NOTES | cmd::LOG | cmd::OWNERS, false) => Owner,
        (
            group::KEYWAY,
            cmd::LOCK | cmd::UNLOCK | cmd::CONSENT | cmd::SETTINGS | cmd::UNPAIR,
            true,
        ) => Owner,
        _ => Unknown,
    }
}

/// A name for people of the request `group`/`id`.
pub fn name(group: u16, id: u8) -> &'static str {
    match (group, id) {
        (group::OS, os_cmd::ECHO) => "echo",
        (group::OS, os_cmd::RESET) => "reset",
        (group::OS, os_cmd::PARAMS) => "MCUmgr parameters",
        (group::OS, os_cmd::INFO) => "OS info",
        (group::IMAGE, img_cmd::STATE) => "image state write (test, confirm)",
        (group::IMAGE, img_cmd::UPLOAD) => "image upload",
        (group::IMAGE, img_cmd::ERASE) => "image erase",
        (group::KEYWAY, cmd::STATUS) => "status",
        (group::KEYWAY, cmd::LOCK) => "lock",
        (group::KEYWAY, cmd::UNLOCK) => "unlock",
        (group::KEYWAY, cmd::PRESENCE) => "presence",
        (group::KEYWAY, cmd::NOTES) => "notes",
        (group::KEYWAY, cmd::CONSENT) => "consent",
        (group::KEYWAY, cmd::LOG) => "log export",
        (group::KEYWAY, cmd::CHALLENGE) => "challenge",
        (group::KEYWAY, cmd::PAIR) => "pairing",
        (group::KEYWAY, cmd::FACTORY_RESET) => "factory reset",
        (group::KEYWAY, cmd::SETTINGS) => "settings",
        (group::KEYWAY, cmd::OWNERS) => "the owner list",
        (group::KEYWAY, cmd::UNPAIR) => "unpair",
        _ => "this command",
    }
}
