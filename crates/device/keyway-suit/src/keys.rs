//! Public keys, key ids, and signature verification for the two algorithms
//! Keyway accepts: Ed25519 (COSE -8 and -19) and ECDSA P-256 (COSE -7 and -9).

use core::fmt;

use sha2::{Digest, Sha256};

use crate::cbor::{Key, Reader};
use crate::error::{Error, Limit, Part};
use crate::labels::*;

/// Most keys in a trust-anchor set or a key set.
pub const MAX_KEYS: usize = 8;

/// A key identifier: the first 8 bytes of SHA-256 over the raw public key
/// (32 bytes for Ed25519, the 65-byte uncompressed SEC1 point for P-256).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, self.0.get(..4).unwrap_or(&[]))?;
        f.write_str("…")
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// Lower-case hex without the integer-formatting machinery.
pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        let pair = [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]];
        f.write_str(core::str::from_utf8(&pair).unwrap_or("??"))?;
    }
    Ok(())
}

/// The family of a signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Ed25519 (COSE -8 EdDSA, or -19 Ed25519).
    Ed25519,
    /// ECDSA over P-256 with SHA-256 (COSE -7 ES256, or -9 ESP256).
    Es256,
}

impl Algorithm {
    /// Maps a COSE algorithm label to the family Keyway verifies. An
    /// algorithm whose cargo feature (`ed25519`, `es256`) is off is
    /// [`Error::UnsupportedAlgorithm`].
    pub fn from_cose(alg: i64) -> Result<Self, Error> {
        match alg {
            #[cfg(feature = "ed25519")]
            COSE_ALG_EDDSA | COSE_ALG_ED25519 => Ok(Algorithm::Ed25519),
            #[cfg(feature = "es256")]
            COSE_ALG_ES256 | COSE_ALG_ESP256 => Ok(Algorithm::Es256),
            other => Err(Error::UnsupportedAlgorithm(other)),
        }
    }
}

/// A public key, stored raw so that it costs no heap and compares bytewise.
///
/// Each variant exists only with its cargo feature (`ed25519`, `es256`;
/// both are default), so a single-algorithm build also stores smaller keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PublicKey {
    /// A 32-byte Ed25519 public key (feature `ed25519`).
    #[cfg(feature = "ed25519")]
    Ed25519([u8; 32]),
    /// A P-256 point in uncompressed SEC1 form (`0x04 || x || y`; feature
    /// `es256`).
    #[cfg(feature = "es256")]
    P256([u8; 65]),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.algorithm() {
            Algorithm::Ed25519 => "Ed25519 key ",
            Algorithm::Es256 => "P-256 key ",
        })?;
        fmt::Debug::fmt(&self.key_id(), f)
    }
}

impl PublicKey {
    /// Builds a key from raw bytes: 32 bytes is Ed25519, 65 bytes starting
    /// with 0x04 is an uncompressed P-256 point. The point is validated. A
    /// key of an algorithm this build does not verify (cargo feature off)
    /// is [`Error::UnsupportedAlgorithm`].
    pub fn from_raw(raw: &[u8]) -> Result<Self, Error> {
        match (raw.len(), raw.first()) {
            (32, _) => Self::from_raw_ed25519(raw),
            (65, Some(0x04)) => Self::from_raw_p256(raw),
            _ => Err(Error::InvalidKey),
        }
    }

    // Not inlined: the key is copied once, into the result (inlined, the
    // copy chain from the envelope into a key list became a memmove, which
    // pulled in 1.5 KB of compiler_builtins).
    #[cfg(feature = "ed25519")]
    #[inline(never)]
    fn from_raw_ed25519(raw: &[u8]) -> Result<Self, Error> {
        let k: [u8; 32] = raw.try_into().map_err(|_| Error::InvalidKey)?;
        if !ed25519_valid(&k) {
            return Err(Error::InvalidKey);
        }
        Ok(PublicKey::Ed25519(k))
    }

    #[cfg(not(feature = "ed25519"))]
    fn from_raw_ed25519(_: &[u8]) -> Result<Self, Error> {
        Err(Error::UnsupportedAlgorithm(COSE_ALG_EDDSA))
    }

    #[cfg(feature = "es256")]
    fn from_raw_p256(raw: &[u8]) -> Result<Self, Error> {
        let k: [u8; 65] = raw.try_into().map_err(|_| Error::InvalidKey)?;
        if !p256_valid(&k) {
            return Err(Error::InvalidKey);
        }
        Ok(PublicKey::P256(k))
    }

    #[cfg(not(feature = "es256"))]
    fn from_raw_p256(_: &[u8]) -> Result<Self, Error> {
        Err(Error::UnsupportedAlgorithm(COSE_ALG_ES256))
    }

    /// The raw key bytes (see [`KeyId`]).
    pub fn raw(&self) -> &[u8] {
        match *self {
            #[cfg(feature = "ed25519")]
            PublicKey::Ed25519(ref k) => k,
            #[cfg(feature = "es256")]
            PublicKey::P256(ref k) => k,
        }
    }

    /// The algorithm family this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        match *self {
            #[cfg(feature = "ed25519")]
            PublicKey::Ed25519(_) => Algorithm::Ed25519,
            #[cfg(feature = "es256")]
            PublicKey::P256(_) => Algorithm::Es256,
        }
    }

    /// This key's identifier.
    pub fn key_id(&self) -> KeyId {
        let d = Sha256::digest(self.raw());
        let mut id = [0u8; 8];
        for (o, i) in id.iter_mut().zip(d.iter()) {
            *o = *i;
        }
        KeyId(id)
    }

    /// Verifies `signature` over `message`. Ed25519 uses the strict check
    /// (no small-order points, no malleable signatures); ES256 takes the
    /// 64-byte `r || s` form that COSE uses.
    #[cfg_attr(
        not(any(feature = "ed25519", feature = "es256")),
        allow(unused_variables)
    )]
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        // One non-inlined function per algorithm: their large frames are
        // never on the stack together, nor summed with the caller's.
        match *self {
            #[cfg(feature = "ed25519")]
            PublicKey::Ed25519(ref k) => ed25519_verify(k, message, signature),
            #[cfg(feature = "es256")]
            PublicKey::P256(ref k) => p256_verify(k, message, signature),
        }
    }

    /// Decodes a COSE_Key map (OKP/Ed25519 or EC2/P-256).
    pub(crate) fn decode_cose(r: &mut Reader<'_>) -> Result<Self, Error> {
        let n = r.map()?;
        let (mut kty, mut crv, mut x, mut y) = (None, None, None, None);
        for _ in 0..n {
            match r.key()? {
                Key::Int(COSE_KEY_KTY) => kty = Some(r.i64()?),
                Key::Int(COSE_KEY_CRV) => crv = Some(r.i64()?),
                Key::Int(COSE_KEY_X) => x = Some(r.bytes()?),
                Key::Int(COSE_KEY_Y) => y = Some(r.bytes()?),
                _ => r.skip()?,
            }
        }
        let missing = |what| Error::Missing {
            part: Part::Key,
            what,
        };
        let x = x.ok_or(missing("x (-2)"))?;
        match (
            kty.ok_or(missing("kty (1)"))?,
            crv.ok_or(missing("crv (-1)"))?,
        ) {
            (COSE_KTY_OKP, COSE_CRV_ED25519) if x.len() == 32 => PublicKey::from_raw(x),
            #[cfg(not(feature = "es256"))]
            (COSE_KTY_EC2, COSE_CRV_P256) => {
                // As from_raw would say, without building the point.
                let _ = y;
                Err(Error::UnsupportedAlgorithm(COSE_ALG_ES256))
            }
            #[cfg(feature = "es256")]
            (COSE_KTY_EC2, COSE_CRV_P256) => {
                let y = y.ok_or(missing("y (-3)"))?;
                let mut raw = [0u8; 65];
                match (x.len(), y.len(), raw.split_first_mut()) {
                    (32, 32, Some((tag, xy))) => {
                        *tag = 0x04;
                        for (o, i) in xy.iter_mut().zip(x.iter().chain(y.iter())) {
                            *o = *i;
                        }
                    }
                    _ => return Err(Error::InvalidKey),
                }
                PublicKey::from_raw(&raw)
            }
            _ => Err(Error::InvalidKey),
        }
    }
}

#[cfg(feature = "ed25519")]
#[inline(never)]
fn ed25519_valid(k: &[u8; 32]) -> bool {
    // Rejects encodings that are not points and small-order points.
    ed25519_compact::PublicKey::new(*k).validate().is_ok()
}

#[cfg(feature = "ed25519")]
#[inline(never)]
fn ed25519_verify(k: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    // RFC 8032 verification that also rejects a non-canonical S and
    // small-order A or R (the same refusals as ed25519-dalek's
    // `verify_strict`; the equation is checked with the cofactor).
    //
    // Split in two non-inlined steps so that the point decoding (first)
    // and the double scalar multiplication (second) never have their large
    // frames on the stack together: only the ~0.6 KB state is live across.
    let Some(mut st) = ed25519_start(k, signature) else {
        return false;
    };
    st.absorb(message);
    ed25519_finish(&st)
}

/// Checks S and decodes -A and -R: the verifying state, or `None`.
#[cfg(feature = "ed25519")]
#[inline(never)]
fn ed25519_start(k: &[u8; 32], signature: &[u8]) -> Option<ed25519_compact::VerifyingState> {
    let sig = ed25519_compact::Signature::from_slice(signature).ok()?;
    ed25519_compact::PublicKey::new(*k)
        .verify_incremental(&sig)
        .ok()
}

/// The verification equation.
#[cfg(feature = "ed25519")]
#[inline(never)]
fn ed25519_finish(st: &ed25519_compact::VerifyingState) -> bool {
    st.verify().is_ok()
}

#[cfg(feature = "es256")]
#[inline(never)]
fn p256_valid(k: &[u8; 65]) -> bool {
    p256::ecdsa::VerifyingKey::from_sec1_bytes(k).is_ok()
}

#[cfg(feature = "es256")]
#[inline(never)]
fn p256_verify(k: &[u8; 65], message: &[u8], signature: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier;
    let Ok(vk) = p256::ecdsa::VerifyingKey::from_sec1_bytes(k) else {
        return false;
    };
    let Ok(sig) = p256::ecdsa::Signature::from_slice(signature) else {
        return false;
    };
    vk.verify(message, &sig).is_ok()
}

/// A bounded list of distinct public keys.
pub type KeyList = heapless::Vec<PublicKey, MAX_KEYS>;

/// Pushes a key, failing on overflow or on a duplicate.
pub(crate) fn push_distinct(list: &mut KeyList, key: PublicKey) -> Result<(), Error> {
    if list.iter().any(|k| k == &key) {
        return Err(Error::DuplicateSigner { key: key.key_id() });
    }
    list.push(key).map_err(|_| Error::TooMany {
        what: Limit::Keys,
        max: MAX_KEYS,
    })
}

/// The device's immutable root of trust: root keys and how many of them must
/// sign a key set (or, before any key set, a manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchors {
    keys: KeyList,
    threshold: u8,
}

impl TrustAnchors {
    /// Builds the anchors. The keys must be distinct and the threshold
    /// between 1 and the number of keys.
    pub fn new(keys: &[PublicKey], threshold: u8) -> Result<Self, Error> {
        let mut list = KeyList::new();
        for k in keys {
            push_distinct(&mut list, *k)?;
        }
        if threshold == 0 || usize::from(threshold) > list.len() {
            return Err(Error::KeySetThreshold {
                threshold: u32::from(threshold),
                signers: list.len(),
            });
        }
        Ok(TrustAnchors {
            keys: list,
            threshold,
        })
    }

    /// The root keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Root signatures required.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }
}
