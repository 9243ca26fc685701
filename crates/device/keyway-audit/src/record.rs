//! The record format: header, body, CRC; the hash chain; the signed
//! message of checkpoints and export heads.
//!
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 4 | magic `KWA1` |
//! | 4 | 1 | kind: 1 event, 2 checkpoint, 3 export head |
//! | 5 | 1 | body length `n` (1..=[`MAX_BODY_LEN`]) |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 4 | sequence number, u32 LE |
//! | 12 | 8 | RTC value, u64 LE |
//! | 20 | 4 | boot counter, u32 LE |
//! | 24 | 32 | SHA-256 of the previous record's bytes (zeros before record 0) |
//! | 56 | n | body: an [`Event`], or a [`Signed`] body |
//! | 56+n | 4 | CRC-32 (ISO-HDLC) of bytes 0..56+n, LE |
//!
//! A record's hash is SHA-256 over exactly these `60 + n` bytes (never the
//! padding a flash write adds).

use core::fmt;

use sha2::{Digest as _, Sha256};

use crate::event::{Event, MAX_EVENT_LEN};

/// The record magic.
pub const MAGIC: [u8; 4] = *b"KWA1";
/// Header bytes before the body.
pub const HEADER_LEN: usize = 56;
/// A [`Signed`] body: count, retained sequence, key id, signature.
pub const SIGNED_LEN: usize = 4 + 4 + 8 + 64;
/// The longest body (a [`Signed`] one).
pub const MAX_BODY_LEN: usize = SIGNED_LEN;
/// CRC bytes after the body.
pub const CRC_LEN: usize = 4;
/// The longest record.
pub const MAX_RECORD_LEN: usize = HEADER_LEN + MAX_BODY_LEN + CRC_LEN;
/// The shortest record (a one-byte event body).
pub const MIN_RECORD_LEN: usize = HEADER_LEN + 1 + CRC_LEN;
/// The domain separator at the start of every signed message.
pub const DOMAIN: &[u8; 15] = b"keyway-audit-v1";
/// The length of [`signing_message`]'s output.
pub const MESSAGE_LEN: usize = DOMAIN.len() + 1 + 4 + 8 + 4 + 32 + 4 + 4 + 8;

use keyway_ring::CRC;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The device's time when a record was written: its RTC value (which may
/// be wrong or reset) and its monotonic boot counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Time {
    /// The RTC value (seconds since 1970 on a set clock).
    pub rtc: u64,
    /// The boot counter, which never goes down.
    pub boot: u32,
}

/// What a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// An [`Event`].
    Event = 1,
    /// A signed checkpoint, written before a page holding records is erased.
    Checkpoint = 2,
    /// The signed head that ends an export (never stored in flash).
    ExportHead = 3,
}

impl Kind {
    /// A short lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Checkpoint => "checkpoint",
            Kind::ExportHead => "export head",
        }
    }
}

/// The body of a checkpoint or an export head. The record's `prev` field
/// is the chain head the signature covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Signed {
    /// Records appended before this one (equals its sequence number).
    pub count: u32,
    /// The first sequence number kept: for a checkpoint, the oldest record
    /// that remains after the next page erase; for an export head, the
    /// first record of the export.
    pub retained: u32,
    /// The signing key's id: SHA-256 of its 32-byte public key, first 8 bytes.
    pub key_id: [u8; 8],
    /// Ed25519 over [`signing_message`].
    pub signature: [u8; 64],
}

/// What a record carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// An event.
    Event(Event),
    /// A checkpoint.
    Checkpoint(Signed),
    /// An export head.
    ExportHead(Signed),
}

/// A decoded record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    /// The sequence number: 0 for the first record ever, one more for each.
    pub seq: u32,
    /// When it was written.
    pub time: Time,
    /// SHA-256 of the previous record's bytes (zeros for record 0).
    pub prev: Hash,
    /// The event or signed body.
    pub body: Body,
}

/// Why bytes are not a valid record. Every variant names what was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// Fewer bytes than the record needs.
    Truncated {
        /// Bytes the record needs (or the header, if that is what is missing).
        needed: usize,
        /// Bytes there are.
        got: usize,
    },
    /// The first four bytes are not `KWA1`.
    BadMagic,
    /// The kind byte is not 1, 2 or 3.
    UnknownKind(u8),
    /// The body length is 0 or above [`MAX_BODY_LEN`].
    BodyLength(u8),
    /// The reserved bytes are not zero.
    Reserved,
    /// The stored CRC does not match the bytes.
    Crc {
        /// The CRC in the record.
        stored: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// An event body with no code byte.
    EmptyEvent,
    /// A code that names no known value.
    UnknownCode {
        /// What the code was for: "event", "reject reason", "revert reason", "lock method".
        field: &'static str,
        /// The code.
        code: u8,
    },
    /// An event body whose length is not its code's.
    EventLength {
        /// The event code.
        code: u8,
        /// Its body length.
        expected: usize,
        /// The stored length.
        got: usize,
    },
    /// A signed body whose length is not [`SIGNED_LEN`].
    SignedLength(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { needed, got } => {
                write!(f, "truncated: needs {needed} bytes, {got} left")
            }
            DecodeError::BadMagic => f.write_str("no record magic KWA1"),
            DecodeError::UnknownKind(k) => write!(f, "unknown record kind {k}"),
            DecodeError::BodyLength(n) => write!(f, "body length {n} out of range"),
            DecodeError::Reserved => f.write_str("reserved bytes not zero"),
            DecodeError::Crc { stored, computed } => {
                write!(
                    f,
                    "CRC mismatch: stored {stored:08x}, computed {computed:08x}"
                )
            }
            DecodeError::EmptyEvent => f.write_str("event body has no code"),
            DecodeError::UnknownCode { field, code } => {
                write!(f, "unknown {field} code {code:#04x}")
            }
            DecodeError::EventLength {
                code,
                expected,
                got,
            } => write!(
                f,
                "event {code:#04x} body is {got} bytes, expected {expected}"
            ),
            DecodeError::SignedLength(n) => {
                write!(f, "signed body is {n} bytes, expected {SIGNED_LEN}")
            }
        }
    }
}

impl Record {
    /// The record's kind.
    pub const fn kind(&self) -> Kind {
        match self.body {
            Body::Event(_) => Kind::Event,
            Body::Checkpoint(_) => Kind::Checkpoint,
            Body::ExportHead(_) => Kind::ExportHead,
        }
    }

    /// Encodes the record into `out`; returns its length (60 + body).
    pub fn encode(&self, out: &mut [u8; MAX_RECORD_LEN]) -> usize {
        let mut body = [0u8; MAX_BODY_LEN];
        let n = match &self.body {
            Body::Event(e) => {
                let mut b = [0u8; MAX_EVENT_LEN];
                let n = e.encode(&mut b);
                body[..n].copy_from_slice(&b[..n]);
                n
            }
            Body::Checkpoint(s) | Body::ExportHead(s) => {
                body[0..4].copy_from_slice(&s.count.to_le_bytes());
                body[4..8].copy_from_slice(&s.retained.to_le_bytes());
                body[8..16].copy_from_slice(&s.key_id);
                body[16..80].copy_from_slice(&s.signature);
                SIGNED_LEN
            }
        };
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = self.kind() as u8;
        out[5] = n as u8;
        out[6..8].copy_from_slice(&[0, 0]);
        out[8..12].copy_from_slice(&self.seq.to_le_bytes());
        out[12..20].copy_from_slice(&self.time.rtc.to_le_bytes());
        out[20..24].copy_from_slice(&self.time.boot.to_le_bytes());
        out[24..56].copy_from_slice(&self.prev);
        out[HEADER_LEN..HEADER_LEN + n].copy_from_slice(&body[..n]);
        let end = HEADER_LEN + n;
        let crc = CRC.checksum(&out[..end]);
        out[end..end + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
        end + CRC_LEN
    }

    /// Decodes the record at the start of `bytes` (anything after it is
    /// ignored); returns it and its length. Every length is checked
    /// against [`MAX_BODY_LEN`] and the bytes given.
    pub fn decode(bytes: &[u8]) -> Result<(Record, usize), DecodeError> {
        let len = record_len(bytes)?;
        let r = bytes.get(..len).ok_or(DecodeError::Truncated {
            needed: len,
            got: bytes.len(),
        })?;
        let end = len - CRC_LEN;
        let stored = u32::from_le_bytes(le4(&r[end..]));
        let computed = CRC.checksum(&r[..end]);
        if stored != computed {
            return Err(DecodeError::Crc { stored, computed });
        }
        if r[6..8] != [0, 0] {
            return Err(DecodeError::Reserved);
        }
        let body = &r[HEADER_LEN..end];
        let signed = || -> Result<Signed, DecodeError> {
            if body.len() != SIGNED_LEN {
                return Err(DecodeError::SignedLength(body.len()));
            }
            let mut key_id = [0u8; 8];
            key_id.copy_from_slice(&body[8..16]);
            let mut signature = [0u8; 64];
            signature.copy_from_slice(&body[16..80]);
            Ok(Signed {
                count: u32::from_le_bytes(le4(&body[0..4])),
                retained: u32::from_le_bytes(le4(&body[4..8])),
                key_id,
                signature,
            })
        };
        let body = match r[4] {
            1 => Body::Event(Event::decode(body)?),
            2 => Body::Checkpoint(signed()?),
            3 => Body::ExportHead(signed()?),
            k => return Err(DecodeError::UnknownKind(k)),
        };
        let mut prev = [0u8; 32];
        prev.copy_from_slice(&r[24..56]);
        let mut rtc = [0u8; 8];
        rtc.copy_from_slice(&r[12..20]);
        Ok((
            Record {
                seq: u32::from_le_bytes(le4(&r[8..12])),
                time: Time {
                    rtc: u64::from_le_bytes(rtc),
                    boot: u32::from_le_bytes(le4(&r[20..24])),
                },
                prev,
                body,
            },
            len,
        ))
    }
}

/// The first four bytes of `b` (zeros past its end).
fn le4(b: &[u8]) -> [u8; 4] {
    let mut out = [0u8; 4];
    for (o, i) in out.iter_mut().zip(b) {
        *o = *i;
    }
    out
}

/// The length of the record starting at `bytes`, from its header (magic,
/// kind and body length checked; the CRC is not).
pub fn record_len(bytes: &[u8]) -> Result<usize, DecodeError> {
    let h = bytes.get(..8).ok_or(DecodeError::Truncated {
        needed: HEADER_LEN + CRC_LEN,
        got: bytes.len(),
    })?;
    if h[0..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if !(1..=3).contains(&h[4]) {
        return Err(DecodeError::UnknownKind(h[4]));
    }
    let n = h[5];
    if n == 0 || usize::from(n) > MAX_BODY_LEN {
        return Err(DecodeError::BodyLength(n));
    }
    Ok(HEADER_LEN + usize::from(n) + CRC_LEN)
}

/// SHA-256 of a record's bytes: what the next record stores as `prev`.
pub fn record_hash(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// The key id of a 32-byte Ed25519 public key: SHA-256 of it, first 8
/// bytes (as `keyway keygen` prints it).
pub fn key_id(public_key: &[u8; 32]) -> [u8; 8] {
    let d = Sha256::digest(public_key);
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    id
}

/// The message a checkpoint or export head signs:
/// `"keyway-audit-v1" || kind || seq u32 || rtc u64 || boot u32 || head [32]
/// || count u32 || retained u32 || key id [8]` (integers little-endian),
/// where `head` is the record's `prev` field.
pub fn signing_message(
    kind: Kind,
    seq: u32,
    time: Time,
    head: &Hash,
    body: &Signed,
) -> [u8; MESSAGE_LEN] {
    let mut m = [0u8; MESSAGE_LEN];
    let mut at = 0;
    let mut put = |b: &[u8]| {
        m[at..at + b.len()].copy_from_slice(b);
        at += b.len();
    };
    put(DOMAIN);
    put(&[kind as u8]);
    put(&seq.to_le_bytes());
    put(&time.rtc.to_le_bytes());
    put(&time.boot.to_le_bytes());
    put(head);
    put(&body.count.to_le_bytes());
    put(&body.retained.to_le_bytes());
    put(&body.key_id);
    m
}

impl Record {
    /// For a checkpoint or export head, the message its signature covers.
    pub fn signed_message(&self) -> Option<([u8; MESSAGE_LEN], &Signed)> {
        match &self.body {
            Body::Event(_) => None,
            Body::Checkpoint(s) | Body::ExportHead(s) => Some((
                signing_message(self.kind(), self.seq, self.time, &self.prev, s),
                s,
            )),
        }
    }
}
