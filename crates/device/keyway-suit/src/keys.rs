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
            #[cfg(feature = "ed25519")]
            (32, _) => Self::from_raw_ed25519(raw),
            #[cfg(not(feature = "ed25519"))]
            (32, _) => Err(Error::UnsupportedAlgorithm(COSE_ALG_EDDSA)),
            #[cfg(feature = "es256")]
            (65, Some(0x04)) => Self::from_raw_p256(raw),
            #[cfg(not(feature = "es256"))]
            (65, Some(0x04)) => Err(Error::UnsupportedAlgorithm(COSE_ALG_ES256)),
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

    #[cfg(feature = "es256")]
    fn from_raw_p256(raw: &[u8]) -> Result<Self, Error> {
        let k: [u8; 65] = raw.try_into().map_err(|_| Error::InvalidKey)?;
        if !p256_valid(&k) {
            return Err(Error::InvalidKey);
        }
        Ok(PublicKey::P256(k))
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

#[cfg(all(feature = "ed25519", not(feature = "curve25519")))]
#[inline(never)]
fn ed25519_valid(k: &[u8; 32]) -> bool {
    // Rejects encodings that are not points and small-order points.
    ed25519_compact::PublicKey::new(*k).validate().is_ok()
}

#[cfg(all(feature = "ed25519", not(feature = "curve25519")))]
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
#[cfg(all(feature = "ed25519", not(feature = "curve25519")))]
#[inline(never)]
fn ed25519_start(k: &[u8; 32], signature: &[u8]) -> Option<ed25519_compact::VerifyingState> {
    let sig = ed25519_compact::Signature::from_slice(signature).ok()?;
    ed25519_compact::PublicKey::new(*k)
        .verify_incremental(&sig)
        .ok()
}

/// The verification equation.
#[cfg(all(feature = "ed25519", not(feature = "curve25519")))]
#[inline(never)]
fn ed25519_finish(st: &ed25519_compact::VerifyingState) -> bool {
    st.verify().is_ok()
}

/// Ed25519 on curve25519-dalek's group (feature `curve25519`): the
/// backend of a curve25519-only lock core, where one curve implementation
/// serves the signatures, the session's X25519 and SPAKE2+.
///
/// Verification is written here on the group's public operations rather
/// than taken from ed25519-dalek, for the device's stack budget:
/// ed25519-dalek's double-base multiplication (with its run-time
/// base-point table) needs about 7.8 KB of stack on a Cortex-M4, which
/// leaves nothing of the verifier's 8 KiB; two single-scalar
/// multiplications need about 3.9 KB and link less code, at about twice
/// the instructions (`scripts/curve-probe.sh`). The refusals are
/// ed25519-compact's: an encoding of A or R that is not canonical or not
/// a point, A or R of small order, S not reduced; and the equation is the
/// cofactored one, `[8]([S]B - [k]A - R) = 0`, with `k = SHA-512(R || A ||
/// message)` reduced modulo the group order.
#[cfg(all(feature = "ed25519", feature = "curve25519"))]
pub mod ed25519_group {
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::IsIdentity;
    use sha2::{Digest, Sha512};

    /// The point `bytes` encodes, if it is a canonical encoding of a curve
    /// point not of small order (the public keys and `R`s Keyway accepts).
    pub fn point(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
        let p = CompressedEdwardsY(*bytes).decompress()?;
        // Decompression also takes y >= p and x = 0 with the sign bit set;
        // only the canonical encoding re-encodes to the same bytes.
        if p.compress().as_bytes() != bytes || p.is_small_order() {
            return None;
        }
        Some(p)
    }

    /// Whether `signature` is the Ed25519 signature of `message` by the
    /// public key `k`; see the module doc for the equation and refusals.
    pub fn verify(k: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
        let (Some(r_bytes), Some(s_bytes)) = (signature.get(..32), signature.get(32..)) else {
            return false;
        };
        let (Ok(r_bytes), Ok(s_bytes)) =
            (<[u8; 32]>::try_from(r_bytes), <[u8; 32]>::try_from(s_bytes))
        else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let (Some(a), Some(r)) = (point(k), point(&r_bytes)) else {
            return false;
        };
        let mut hash = Sha512::new();
        hash.update(r_bytes);
        hash.update(k);
        hash.update(message);
        let h = Scalar::from_bytes_mod_order_wide(&hash.finalize().into());
        (EdwardsPoint::mul_base(&s) - a * h - r)
            .mul_by_cofactor()
            .is_identity()
    }
}

#[cfg(all(feature = "ed25519", feature = "curve25519"))]
#[inline(never)]
fn ed25519_valid(k: &[u8; 32]) -> bool {
    ed25519_group::point(k).is_some()
}

#[cfg(all(feature = "ed25519", feature = "curve25519"))]
#[inline(never)]
fn ed25519_verify(k: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    ed25519_group::verify(k, message, signature)
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

/// Ed25519 acceptance, the same on both backends (ed25519-compact by
/// default, curve25519-dalek's group with `curve25519`): run with and
/// without the feature.
#[cfg(all(test, feature = "ed25519"))]
mod ed25519_tests {
    use super::*;

    fn h<const L: usize>(s: &str) -> [u8; L] {
        let v = hex::decode(s).expect("hex");
        v.try_into().expect("length")
    }

    /// RFC 8032, section 7.1, TEST 1, 2 and 3: (public key, message,
    /// signature).
    const RFC8032: [(&str, &str, &str); 3] = [
        (
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];

    /// The group order L, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    #[test]
    fn rfc8032_vectors_verify() {
        for (pk, msg, sig) in RFC8032 {
            let key = PublicKey::from_raw(&h::<32>(pk)).expect("an RFC 8032 key");
            let msg = hex::decode(msg).expect("hex");
            let sig = h::<64>(sig);
            assert!(key.verify(&msg, &sig), "RFC 8032 signature");
            let mut other = msg.clone();
            other.push(0);
            assert!(!key.verify(&other, &sig), "another message");
            let mut bad = sig;
            bad[5] ^= 1;
            assert!(!key.verify(&msg, &bad), "a flipped bit in R");
            assert!(!key.verify(&msg, &sig[..63]), "a short signature");
        }
    }

    /// S + L verifies under a check that reduces S: malleability.
    #[test]
    fn non_canonical_s_is_refused() {
        let (pk, msg, sig) = RFC8032[1];
        let key = PublicKey::from_raw(&h::<32>(pk)).expect("key");
        let msg = hex::decode(msg).expect("hex");
        let mut sig = h::<64>(sig);
        let mut carry = 0u16;
        for (s, l) in sig[32..].iter_mut().zip(L) {
            let t = u16::from(*s) + u16::from(l) + carry;
            *s = t as u8;
            carry = t >> 8;
        }
        assert_eq!(carry, 0);
        assert!(!key.verify(&msg, &sig));
    }

    /// The identity as A with R = identity and S = 0 satisfies the bare
    /// equation for every message: small-order keys must be refused, at
    /// parsing and at verification.
    #[test]
    fn small_order_keys_are_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut order2 = [0xffu8; 32];
        order2[0] = 0xec;
        order2[31] = 0x7f;
        for k in [identity, order2] {
            assert_eq!(PublicKey::from_raw(&k), Err(Error::InvalidKey));
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&identity);
            assert!(!PublicKey::Ed25519(k).verify(b"anything", &sig));
        }
    }

    /// A's y + p (the same point, non-canonical) and a y off the curve.
    #[test]
    fn non_canonical_and_off_curve_keys_are_refused() {
        let (pk, _, _) = RFC8032[0];
        let pk = h::<32>(pk);
        // y + p overflows 255 bits unless y < 19: build one that is a
        // point, from the small y values (sign bit 0).
        let found = (0u8..19).find_map(|y| {
            let mut canonical = [0u8; 32];
            canonical[0] = y;
            PublicKey::from_raw(&canonical).ok()?;
            let mut b = [0xffu8; 32];
            b[0] = 0xed + y;
            b[31] = 0x7f;
            Some(b)
        });
        let non_canonical = found.expect("a small y of a large-order point");
        assert_eq!(PublicKey::from_raw(&non_canonical), Err(Error::InvalidKey));
        let mut off_curve = pk;
        off_curve[0] = 2;
        off_curve[1..].fill(0);
        assert_eq!(PublicKey::from_raw(&off_curve), Err(Error::InvalidKey));
    }
}
