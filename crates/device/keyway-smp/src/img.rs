//! The image group (1): state read and write (test, confirm), upload and
//! erase (Zephyr, "SMP Group 1"). Keyway's image hash is the SHA-256 of
//! the whole envelope.

use crate::auth::Auth;
use crate::fields::{bytes, flag, owner_auth, text, uint};
use crate::seq::Seq;

/// Image group command ids.
pub mod cmd {
    /// Read: the slots; write: mark an image for test or confirm it.
    pub const STATE: u8 = 0;
    /// Write: one upload chunk.
    pub const UPLOAD: u8 = 1;
    /// Write: erase a slot.
    pub const ERASE: u8 = 5;
}

/// The most slots a state answer may list.
pub const MAX_SLOTS: usize = 16;

message! {
    /// State write: `{"hash"?: bstr, "confirm"?: bool}`: test the image with
    /// `hash`, or confirm (`hash` absent: the running one).
    pub struct StateWrite<'a> {
        /// The image hash.
        pub hash: Option<&'a [u8]> = "hash" => bytes,
        /// Confirm instead of test.
        pub confirm: Option<bool> = "confirm" => flag,
        /// The client decides on Keyway's typed refusals: the lock adds them
        /// (`kw-rc`, FORMAT.md, "Refusals") to an error answer (`"kw": true`).
        /// Stock tools leave it out and get the standard error body only.
        pub kw: bool = "kw" or false => flag,
        /// An owner's authentication (a Keyway extension; stock tools use the
        /// presence window).
        pub auth: Option<Auth> = "auth" => owner_auth,
    }
    encode(m) {
        "kw" => m.kw.then_some(true),
        "auth" => m.auth,
        "hash" => m.hash,
        "confirm" => m.confirm,
    }
}

message! {
    /// One slot of a state answer.
    item(0, "images", "an array of maps")
    pub struct ImageSlot<'a> {
        /// The image number (Keyway has one: 0).
        pub image: Option<u64> = "image" => uint,
        /// The slot.
        pub slot: u64 = "slot" => uint,
        /// The release version.
        pub version: &'a str = "version" or "" => text,
        /// The image hash.
        pub hash: &'a [u8] = "hash" or &[] => bytes,
        /// Verifies and may boot.
        pub bootable: bool = "bootable" or false => flag,
        /// Marked for a test boot at the next reset.
        pub pending: bool = "pending" or false => flag,
        /// Confirmed.
        pub confirmed: bool = "confirmed" or false => flag,
        /// Running now.
        pub active: bool = "active" or false => flag,
        /// Marked permanently (Keyway never does).
        pub permanent: bool = "permanent" or false => flag,
    }
    encode(m) {
        "hash" => m.hash,
        "slot" => m.slot,
        "image" => m.image,
        "active" => m.active,
        "pending" => m.pending,
        "version" => m.version,
        "bootable" => m.bootable,
        "confirmed" => m.confirmed,
        "permanent" => m.permanent,
    }
}

message! {
    /// State answer: `{"images": [slot…]}` (at most [`MAX_SLOTS`]).
    pub struct StateRsp<'a> {
        /// The slots.
        pub images: Seq<'a, ImageSlot<'a>> = "images" => |r, name| Seq::read(r, name, MAX_SLOTS),
    }
    encode(m) { "images" => m.images }
}

message! {
    /// One upload chunk: `off` and `data`; with `off` 0 also `len`, and
    /// optionally `sha` (the whole file's SHA-256), `image`, `upgrade`, and an
    /// owner's `auth`.
    pub struct Upload<'a> {
        /// The chunk's offset in the file.
        pub off: u64 = "off" => uint,
        /// The chunk.
        pub data: &'a [u8] = "data" => bytes,
        /// The file's length (first chunk).
        pub len: Option<u64> = "len" => uint,
        /// The file's SHA-256 (first chunk; MCUmgr allows a truncated one).
        pub sha: Option<&'a [u8]> = "sha" => bytes,
        /// The image number.
        pub image: Option<u64> = "image" => uint,
        /// Only newer versions (MCUmgr; Keyway's anti-rollback applies anyway).
        pub upgrade: Option<bool> = "upgrade" => flag,
        /// An owner's authentication (first chunk).
        pub auth: Option<Auth> = "auth" => owner_auth,
        /// The client decides on Keyway's typed refusals: the lock adds them
        /// (`kw-rc`, FORMAT.md, "Refusals") to an error answer (`"kw": true`).
        /// Stock tools leave it out and get the standard error body only.
        pub kw: bool = "kw" or false => flag,
    }
    encode(m) {
        "kw" => m.kw.then_some(true),
        "len" => m.len,
        "off" => m.off,
        "sha" => m.sha,
        "auth" => m.auth,
        "data" => m.data,
        "image" => m.image,
        "upgrade" => m.upgrade,
    }
}

message! {
    /// Upload answer: `{"off", "match"?}`: where to continue, and with the
    /// last chunk whether the file's SHA-256 matched `sha`.
    pub struct UploadRsp {
        /// The next offset the device wants.
        pub off: u64 = "off" => uint,
        /// The file's hash matched (complete uploads).
        pub matched: Option<bool> = "match" => flag,
    }
    encode(m) { "off" => m.off, "match" => m.matched }
}

message! {
    /// Erase: `{"slot"?, "auth"?}`.
    pub struct Erase {
        /// The slot (absent: the inactive one).
        pub slot: Option<u64> = "slot" => uint,
        /// An owner's authentication.
        pub auth: Option<Auth> = "auth" => owner_auth,
        /// The client decides on Keyway's typed refusals: the lock adds them
        /// (`kw-rc`, FORMAT.md, "Refusals") to an error answer (`"kw": true`).
        /// Stock tools leave it out and get the standard error body only.
        pub kw: bool = "kw" or false => flag,
    }
    encode(m) { "kw" => m.kw.then_some(true), "auth" => m.auth, "slot" => m.slot }
}
