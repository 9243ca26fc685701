//! Owner authentication of a request (FORMAT.md, "Owner authentication"):
//! the request body carries `auth` = `{key, nonce, sig}`, an Ed25519
//! signature by a paired owner key over
//!
//! ```text
//! "keyway-smp-auth-v1" || group (u16 BE) || command id || nonce (16) || body
//! ```
//!
//! where `body` is the CBOR encoding of the request body without its
//! `auth` entry: its other entries in the order they were sent. The nonce
//! comes from the Keyway group's `challenge`. Pure bytes: the signature
//! itself is made and checked by the caller's Ed25519 implementation.

use crate::cbor::{self, Error, Reader, Writer, fill, set};

/// The domain-separation prefix of the signed message.
pub const AUTH_CONTEXT: &[u8] = b"keyway-smp-auth-v1";
/// The length of the signed message before the body.
pub const PREFIX_LEN: usize = AUTH_CONTEXT.len() + 2 + 1 + 16;

/// An owner's `auth` map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Auth {
    /// The owner's Ed25519 public key.
    pub key: [u8; 32],
    /// The challenge nonce.
    pub nonce: [u8; 16],
    /// The Ed25519 signature over [`message_into`]'s message.
    pub sig: [u8; 64],
}

impl Auth {
    /// Writes the `auth` map (keys in deterministic order).
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(3)?;
        w.entry_bytes("key", &self.key)?;
        w.entry_bytes("sig", &self.sig)?;
        w.entry_bytes("nonce", &self.nonce)
    }

    /// Writes the entry `"auth": {…}` of a request body when `auth` is
    /// present; nothing when it is absent (the presence window).
    pub fn write_entry(auth: Option<&Auth>, w: &mut Writer<'_>) -> Result<(), Error> {
        match auth {
            Some(a) => {
                w.text("auth")?;
                a.write(w)
            }
            None => Ok(()),
        }
    }

    /// Reads an `auth` map: every field present, with its exact length.
    pub fn read(r: &mut Reader<'_>) -> Result<Auth, Error> {
        let mut a = Auth {
            key: [0; 32],
            nonce: [0; 16],
            sig: [0; 64],
        };
        let names = ["auth.key", "auth.nonce", "auth.sig"];
        let mut value = |i, name, r: &mut Reader<'_>| match i {
            0 => fill(r, name, "32 bytes", &mut a.key),
            1 => fill(r, name, "16 bytes", &mut a.nonce),
            _ => fill(r, name, "64 bytes", &mut a.sig),
        };
        let seen = cbor::field(
            cbor::read_fields(r, &names, 5, &mut value),
            "auth",
            "a map {key, nonce, sig}",
        )?;
        cbor::require(seen, 0b111, &names)?;
        Ok(a)
    }
}

/// The signed message's first [`PREFIX_LEN`] bytes.
pub fn prefix(group: u16, id: u8, nonce: &[u8; 16]) -> [u8; PREFIX_LEN] {
    let mut p = [0u8; PREFIX_LEN];
    let (ctx, rest) = p.split_at_mut(AUTH_CONTEXT.len());
    ctx.copy_from_slice(AUTH_CONTEXT);
    let [g0, g1] = group.to_be_bytes();
    rest[0] = g0;
    rest[1] = g1;
    rest[2] = id;
    rest[3..].copy_from_slice(nonce);
    p
}

/// Writes the signed message into `out`; returns its length.
pub fn message_into(
    out: &mut [u8],
    group: u16,
    id: u8,
    nonce: &[u8; 16],
    body_without_auth: &[u8],
) -> Result<usize, Error> {
    let mut w = Writer::new(out);
    w.raw(&prefix(group, id, nonce))?;
    w.raw(body_without_auth)?;
    Ok(w.len())
}

/// Copies the body map `body` into `out` without its `auth` entry (the
/// other entries byte for byte, in their order); returns the `auth` (if
/// any, decoded) and the length written. This is what the owner signed.
pub fn strip(body: &[u8], out: &mut [u8]) -> Result<(Option<Auth>, usize), Error> {
    let mut w = Writer::new(out);
    if body.is_empty() {
        w.map(0)?;
        return Ok((None, w.len()));
    }
    let mut r = Reader::new(body);
    let n = r.map()?;
    let mut auth = None;
    // First pass: find `auth` (and check every key).
    let mut scan = r.clone();
    for _ in 0..n {
        let k = scan.text()?;
        if k == "auth" {
            set(&mut auth, "auth", Auth::read(&mut scan)?)?;
        } else {
            scan.skip()?;
        }
    }
    scan.finish()?;
    w.map(n - usize::from(auth.is_some()))?;
    for _ in 0..n {
        let start = r.position();
        let k = r.text()?;
        let value = r.raw()?;
        if k != "auth" {
            let key = body
                .get(start..start + (r.position() - start - value.len()))
                .unwrap_or(&[]);
            w.raw(key)?;
            w.raw(value)?;
        }
    }
    Ok((auth, w.len()))
}
