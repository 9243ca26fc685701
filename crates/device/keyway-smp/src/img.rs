//! The image group (1): state read and write (test, confirm), upload and
//! erase (Zephyr, "SMP Group 1"). Keyway's image hash is the SHA-256 of
//! the whole envelope.

use crate::Message;
use crate::auth::Auth;
use crate::cbor::{self, Error, Reader, Writer, field};
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
        w.map(
            usize::from(self.kw)
                + usize::from(self.hash.is_some())
                + usize::from(self.confirm.is_some())
                + usize::from(self.auth.is_some()),
        )?;
        write_kw(w, self.kw)?;
        // Deterministic order: "kw", "auth", "hash", "confirm".
        Auth::write_entry(self.auth.as_ref(), w)?;
        if let Some(h) = self.hash {
            w.entry_bytes("hash", h)?;
        }
        if let Some(c) = self.confirm {
            w.entry_bool("confirm", c)?;
        }
        Ok(())
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut hash, mut confirm, mut kw, mut auth) = (None, None, false, None);
        let names = ["kw", "hash", "confirm", "auth"];
        cbor::read_body(body, &names, &mut |i, name, r| {
            match i {
                0 => kw = flag(r, name)?,
                1 => hash = Some(field(r.bytes(), name, "a byte string")?),
                2 => confirm = Some(flag(r, name)?),
                _ => auth = Some(Auth::read(r)?),
            }
            Ok(())
        })?;
        Ok(StateWrite {
            hash,
            confirm,
            kw,
            auth,
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
        w.map(8 + usize::from(self.image.is_some()))?;
        w.entry_bytes("hash", self.hash)?;
        w.entry_u64("slot", self.slot)?;
        if let Some(i) = self.image {
            w.entry_u64("image", i)?;
        }
        w.entry_bool("active", self.active)?;
        w.entry_bool("pending", self.pending)?;
        w.entry_text("version", self.version)?;
        w.entry_bool("bootable", self.bootable)?;
        w.entry_bool("confirmed", self.confirmed)?;
        w.entry_bool("permanent", self.permanent)
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, Error> {
        let (mut image, mut slot, mut version, mut hash) = (None, None, None, None);
        // The flags first: index i < 5 is flag bit i.
        let names = [
            "bootable",
            "pending",
            "confirmed",
            "active",
            "permanent",
            "image",
            "slot",
            "version",
            "hash",
        ];
        let mut flags = 0u8;
        let mut value = |i: usize, name, r: &mut Reader<'a>| {
            match i {
                0..5 => flags |= u8::from(flag(r, name)?) << i,
                5 => image = Some(uint(r, name)?),
                6 => slot = Some(uint(r, name)?),
                7 => version = Some(field(r.text(), name, "a text string")?),
                _ => hash = Some(field(r.bytes(), name, "a byte string")?),
            }
            Ok(())
        };
        cbor::field(
            cbor::read_fields(r, &names, 0, &mut value),
            "images",
            "an array of maps",
        )?;
        let [bootable, pending, confirmed, active, permanent] =
            [0, 1, 2, 3, 4].map(|i| flags >> i & 1 == 1);
        Ok(ImageSlot {
            image,
            slot: cbor::need(slot, "slot")?,
            version: version.unwrap_or(""),
            hash: hash.unwrap_or(&[]),
            bootable,
            pending,
            confirmed,
            active,
            permanent,
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
        w.map(1)?;
        w.text("images")?;
        self.images.write(w)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        Ok(StateRsp {
            images: cbor::read_required(body, "images", |r, name| Seq::read(r, name, MAX_SLOTS))?,
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
        w.map(
            2 + usize::from(self.kw)
                + usize::from(self.len.is_some())
                + usize::from(self.sha.is_some())
                + usize::from(self.image.is_some())
                + usize::from(self.upgrade.is_some())
                + usize::from(self.auth.is_some()),
        )?;
        write_kw(w, self.kw)?;
        if let Some(l) = self.len {
            w.entry_u64("len", l)?;
        }
        w.entry_u64("off", self.off)?;
        if let Some(s) = self.sha {
            w.entry_bytes("sha", s)?;
        }
        Auth::write_entry(self.auth.as_ref(), w)?;
        w.entry_bytes("data", self.data)?;
        if let Some(i) = self.image {
            w.entry_u64("image", i)?;
        }
        if let Some(u) = self.upgrade {
            w.entry_bool("upgrade", u)?;
        }
        Ok(())
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut off, mut data, mut len, mut sha) = (0, &[][..], None, None);
        let (mut image, mut upgrade, mut auth, mut kw) = (None, None, None, false);
        let names = [
            "kw", "off", "data", "len", "sha", "image", "upgrade", "auth",
        ];
        let seen = cbor::read_body(body, &names, &mut |i, name, r| {
            match i {
                0 => kw = flag(r, name)?,
                1 => off = uint(r, name)?,
                2 => data = field(r.bytes(), name, "a byte string")?,
                3 => len = Some(uint(r, name)?),
                4 => sha = Some(field(r.bytes(), name, "a byte string")?),
                5 => image = Some(uint(r, name)?),
                6 => upgrade = Some(flag(r, name)?),
                _ => auth = Some(Auth::read(r)?),
            }
            Ok(())
        })?;
        cbor::require(seen, 0b110, &names)?;
        Ok(Upload {
            off,
            data,
            len,
            sha,
            image,
            upgrade,
            auth,
            kw,
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
        w.map(1 + usize::from(self.matched.is_some()))?;
        w.entry_u64("off", self.off)?;
        if let Some(m) = self.matched {
            w.entry_bool("match", m)?;
        }
        Ok(())
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut off, mut m) = (None, None);
        cbor::read_body(body, &["off", "match"], &mut |i, name, r| {
            match i {
                0 => off = Some(uint(r, name)?),
                _ => m = Some(flag(r, name)?),
            }
            Ok(())
        })?;
        Ok(UploadRsp {
            off: cbor::need(off, "off")?,
            matched: m,
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
        w.map(
            usize::from(self.kw)
                + usize::from(self.slot.is_some())
                + usize::from(self.auth.is_some()),
        )?;
        write_kw(w, self.kw)?;
        Auth::write_entry(self.auth.as_ref(), w)?;
        if let Some(s) = self.slot {
            w.entry_u64("slot", s)?;
        }
        Ok(())
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut slot, mut auth, mut kw) = (None, None, false);
        cbor::read_body(body, &["kw", "slot", "auth"], &mut |i, name, r| {
            match i {
                0 => kw = flag(r, name)?,
                1 => slot = Some(uint(r, name)?),
                _ => auth = Some(Auth::read(r)?),
            }
            Ok(())
        })?;
        Ok(Erase { slot, auth, kw })
    }
}

/// Writes `"kw": true` when the client asks for typed refusals.
fn write_kw(w: &mut Writer<'_>, kw: bool) -> Result<(), Error> {
    if kw {
        w.entry_bool("kw", true)?;
    }
    Ok(())
}

/// A field's unsigned integer.
fn uint(r: &mut Reader<'_>, name: &'static str) -> Result<u64, Error> {
    field(r.u64(), name, "an unsigned integer")
}

/// A field's bool.
fn flag(r: &mut Reader<'_>, name: &'static str) -> Result<bool, Error> {
    field(r.bool(), name, "a bool")
}
