//! The image group (1): state read and write (test, confirm), upload and
//! erase (Zephyr, "SMP Group 1"). Keyway's image hash is the SHA-256 of
//! the whole envelope.

use crate::Message;
use crate::auth::Auth;
use crate::cbor::{Error, Reader, Writer};
use crate::fields::{bytes, flag, owner_auth, text, uint};
use crate::seq::{Item, Seq};

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

/// State write: `{"hash"?: bstr, "confirm"?: bool}`: test the image with
/// `hash`, or confirm (`hash` absent: the running one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateWrite<'a> {
    /// The image hash.
    pub hash: Option<&'a [u8]>,
    /// Confirm instead of test.
    pub confirm: Option<bool>,
    /// The client decides on Keyway's typed refusals: the lock adds them
    /// (`kw-rc`, FORMAT.md, "Refusals") to an error answer (`"kw": true`).
    /// Stock tools leave it out and get the standard error body only.
    pub kw: bool,
    /// An owner's authentication (a Keyway extension; stock tools use the
    /// presence window).
    pub auth: Option<Auth>,
}

impl<'a> Message<'a> for StateWrite<'a> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, {
            "kw" => self.kw.then_some(true),
            "auth" => self.auth,
            "hash" => self.hash,
            "confirm" => self.confirm,
        })
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        read_map!(body => StateWrite {
            kw(false): "kw" => flag,
            hash: "hash" => bytes,
            confirm: "confirm" => flag,
            auth: "auth" => owner_auth,
        })
    }
}

/// One slot of a state answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageSlot<'a> {
    /// The image number (Keyway has one: 0).
    pub image: Option<u64>,
    /// The slot.
    pub slot: u64,
    /// The release version.
    pub version: &'a str,
    /// The image hash.
    pub hash: &'a [u8],
    /// Verifies and may boot.
    pub bootable: bool,
    /// Marked for a test boot at the next reset.
    pub pending: bool,
    /// Confirmed.
    pub confirmed: bool,
    /// Running now.
    pub active: bool,
    /// Marked permanently (Keyway never does).
    pub permanent: bool,
}

impl<'a> Item<'a> for ImageSlot<'a> {
    fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, {
            "hash" => self.hash,
            "slot" => self.slot,
            "image" => self.image,
            "active" => self.active,
            "pending" => self.pending,
            "version" => self.version,
            "bootable" => self.bootable,
            "confirmed" => self.confirmed,
            "permanent" => self.permanent,
        })
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, Error> {
        read_map!(r, 0, ("images", "an array of maps") => ImageSlot {
            bootable(false): "bootable" => flag,
            pending(false): "pending" => flag,
            confirmed(false): "confirmed" => flag,
            active(false): "active" => flag,
            permanent(false): "permanent" => flag,
            image: "image" => uint,
            slot: "slot" => uint,
            version(""): "version" => text,
            hash(&[]): "hash" => bytes,
        })
    }
}

/// State answer: `{"images": [slot…]}` (at most [`MAX_SLOTS`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StateRsp<'a> {
    /// The slots.
    pub images: Seq<'a, ImageSlot<'a>>,
}

impl<'a> Message<'a> for StateRsp<'a> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, { "images" => self.images })
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        read_map!(body => StateRsp {
            images: "images" => |r, name| Seq::read(r, name, MAX_SLOTS),
        })
    }
}

/// One upload chunk: `off` and `data`; with `off` 0 also `len`, and
/// optionally `sha` (the whole file's SHA-256), `image`, `upgrade`, and an
/// owner's `auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upload<'a> {
    /// The chunk's offset in the file.
    pub off: u64,
    /// The chunk.
    pub data: &'a [u8],
    /// The file's length (first chunk).
    pub len: Option<u64>,
    /// The file's SHA-256 (first chunk; MCUmgr allows a truncated one).
    pub sha: Option<&'a [u8]>,
    /// The image number.
    pub image: Option<u64>,
    /// Only newer versions (MCUmgr; Keyway's anti-rollback applies anyway).
    pub upgrade: Option<bool>,
    /// An owner's authentication (first chunk).
    pub auth: Option<Auth>,
    /// The client decides on Keyway's typed refusals: the lock adds them
    /// (`kw-rc`, FORMAT.md, "Refusals") to an error answer (`"kw": true`).
    /// Stock tools leave it out and get the standard error body only.
    pub kw: bool,
}

impl<'a> Message<'a> for Upload<'a> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, {
            "kw" => self.kw.then_some(true),
            "len" => self.len,
            "off" => self.off,
            "sha" => self.sha,
            "auth" => self.auth,
            "data" => self.data,
            "image" => self.image,
            "upgrade" => self.upgrade,
        })
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        read_map!(body => Upload {
            kw(false): "kw" => flag,
            off: "off" => uint,
            data: "data" => bytes,
            len: "len" => uint,
            sha: "sha" => bytes,
            image: "image" => uint,
            upgrade: "upgrade" => flag,
            auth: "auth" => owner_auth,
        })
    }
}

/// Upload answer: `{"off", "match"?}`: where to continue, and with the
/// last chunk whether the file's SHA-256 matched `sha`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadRsp {
    /// The next offset the device wants.
    pub off: u64,
    /// The file's hash matched (complete uploads).
    pub matched: Option<bool>,
}

impl<'a> Message<'a> for UploadRsp {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, { "off" => self.off, "match" => self.matched })
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        read_map!(body => UploadRsp {
            off: "off" => uint,
            matched: "match" => flag,
        })
    }
}

/// Erase: `{"slot"?, "auth"?}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Erase {
    /// The slot (absent: the inactive one).
    pub slot: Option<u64>,
    /// An owner's authentication.
    pub auth: Option<Auth>,
    /// The client decides on Keyway's typed refusals: the lock adds them
    /// (`kw-rc`, FORMAT.md, "Refusals") to an error answer (`"kw": true`).
    /// Stock tools leave it out and get the standard error body only.
    pub kw: bool,
}

impl<'a> Message<'a> for Erase {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, {
            "kw" => self.kw.then_some(true),
            "auth" => self.auth,
            "slot" => self.slot,
        })
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        read_map!(body => Erase {
            kw(false): "kw" => flag,
            slot: "slot" => uint,
            auth: "auth" => owner_auth,
        })
    }
}
