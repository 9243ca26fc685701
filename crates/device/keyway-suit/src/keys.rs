//! Public keys, key ids, and signature verification for the two algorithms
//! Keyway accepts: Ed25519 (COSE -8 and -19) and ECDSA P-256 (COSE -7).

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
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The family of a signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Ed25519 (COSE -8 EdDSA, or -19 Ed25519).
    Ed25519,
    /// ECDSA over P-256 with SHA-256 (COSE -7, ES256).
    Es256,
}

impl Algorithm {
    /// Maps a COSE algorithm label to the family Keyway verifies.
    pub fn from_cose(alg: i64) -> Result<Self, Error> {
        match alg {
            COSE_ALG_EDDSA | COSE_ALG_ED25519 => Ok(Algorithm::Ed25519),
            COSE_ALG_ES256 => Ok(Algorithm::Es256),
            other => Err(Error::UnsupportedAlgorithm(other)),
        }
    }
}

/// A public key, stored raw so that it costs no heap and compares bytewise.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PublicKey {
    /// A 32-byte Ed25519 public key.
    Ed25519([u8; 32]),
    /// A P-256 point in uncompressed SEC1 form (`0x04 || x || y`).
    P256([u8; 65]),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alg = match self {
            PublicKey::Ed25519(_) => "Ed25519",
            PublicKey::P256(_) => "P-256",
        };
        write!(f, "{alg} key {:?}", self.key_id())
    }
}

impl PublicKey {
    /// Builds a key from raw bytes: 32 bytes is Ed25519, 65 bytes starting
    /// with 0x04 is an uncompressed P-256 point. The point is validated.
    pub fn from_raw(raw: &[u8]) -> Result<Self, Error> {
        let key = match raw.len() {
            32 => PublicKey::Ed25519(raw.try_into().map_err(|_| Error::InvalidKey)?),
            65 if raw[0] == 0x04 => PublicKey::P256(raw.try_into().map_err(|_| Error::InvalidKey)?),
            _ => return Err(Error::InvalidKey),
        };
        key.validate()?;
        Ok(key)
    }

    fn validate(&self) -> Result<(), Error> {
        match self {
            PublicKey::Ed25519(k) => ed25519_dalek::VerifyingKey::from_bytes(k)
                .map(|_| ())
                .map_err(|_| Error::InvalidKey),
            PublicKey::P256(k) => p256::ecdsa::VerifyingKey::from_sec1_bytes(k)
                .map(|_| ())
                .map_err(|_| Error::InvalidKey),
        }
    }

    /// The raw key bytes (see [`KeyId`]).
    pub fn raw(&self) -> &[u8] {
        match self {
            PublicKey::Ed25519(k) => k,
            PublicKey::P256(k) => k,
        }
    }

    /// The algorithm family this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Ed25519(_) => Algorithm::Ed25519,
            PublicKey::P256(_) => Algorithm::Es256,
        }
    }

    /// This key's identifier.
    pub fn key_id(&self) -> KeyId {
        let d = Sha256::digest(self.raw());
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        KeyId(id)
    }

    /// Verifies `signature` over `message`. Ed25519 uses the strict check
    /// (no small-order points, no malleable signatures); ES256 takes the
    /// 64-byte `r || s` form that COSE uses.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(k) => {
                let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(k) else {
                    return false;
                };
                let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
                    return false;
                };
                vk.verify_strict(message, &sig).is_ok()
            }
            PublicKey::P256(k) => {
                use p256::ecdsa::signature::Verifier;
                let Ok(vk) = p256::ecdsa::VerifyingKey::from_sec1_bytes(k) else {
                    return false;
                };
                let Ok(sig) = p256::ecdsa::Signature::from_slice(signature) else {
                    return false;
                };
                vk.verify(message, &sig).is_ok()
            }
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
            (COSE_KTY_EC2, COSE_CRV_P256) => {
                let y = y.ok_or(missing("y (-3)"))?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(Error::InvalidKey);
                }
                let mut raw = [0u8; 65];
                raw[0] = 0x04;
                raw[1..33].copy_from_slice(x);
                raw[33..].copy_from_slice(y);
                PublicKey::from_raw(&raw)
            }
            _ => Err(Error::InvalidKey),
        }
    }
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
