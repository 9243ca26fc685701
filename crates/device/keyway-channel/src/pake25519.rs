//! SPAKE2+ (RFC 9383) over edwards25519, both roles: the pairing suite of
//! the curve25519-only lock core.
//!
//! # Why this is here
//!
//! The lock core's code budget (issue 12: 128 KiB) does not hold two curve
//! implementations. With P-256 for SPAKE2+ and the session and
//! ed25519-compact for signatures, the core measured 144.8 KB; the same
//! operations on one curve25519 implementation (curve25519-dalek, with
//! ed25519-dalek on it) measured 26.5 KB smaller (`scripts/curve-probe.sh`).
//! The `spake2plus` crate implements the RFC's P-256 suites only (its suite
//! trait is sealed), so this module writes the protocol layer over
//! curve25519-dalek's group, on the `sha2`, `hkdf` and `hmac` the channel
//! already links. The group arithmetic is the crate's; only the protocol
//! (RFC 9383, sections 3.3 and 3.4) is written here.
//!
//! # The suite
//!
//! edwards25519 (cofactor `h = 8`), SHA-256, HKDF-SHA256, HMAC-SHA256: the
//! group of RFC 9383's edwards25519 ciphersuite, with `M` and `N` of
//! RFC 9382, section 6. Points are RFC 8032 encodings (32 bytes); a point
//! is accepted only in its canonical encoding, on the curve and not of
//! small order. Scalars use the group's integer encoding (RFC 8032,
//! little-endian) everywhere: `w0s`/`w1s` of the PBKDF output, `w0` in the
//! record and in the transcript. RFC 9383 has test vectors for its P-256
//! suites only; the transcript and key schedule here are checked against
//! its P256-SHA256 vector byte for byte (the layout does not depend on the
//! group), `M` and `N` are regenerated from RFC 9382's seeds, and a whole
//! run is checked against a vector made with libsodium's edwards25519
//! (`scripts/pake25519-vector.py`). RFC 9383 does not spell out the scalar
//! byte order for edwards25519; Keyway fixes it as little-endian, the
//! group's own integer encoding (RFC 8032, section 5.1.2; RFC 7748), as
//! the libsodium vector's script does (FORMAT.md, "Secure local channel").
//!
//! * prover: `X = x*P + w0*M`; `Z = h*x*(Y - w0*N)`, `V = h*w1*(Y - w0*N)`;
//! * verifier: `Y = y*P + w0*N`; `Z = h*y*(X - w0*M)`, `V = h*y*L`;
//! * `TT` = each of context, idProver, idVerifier, `M`, `N`, shareP,
//!   shareV, `Z`, `V`, `w0` prefixed with its length (8 bytes,
//!   little-endian); `K_main = SHA-256(TT)`;
//!   `K_confirmP || K_confirmV = HKDF(nil, K_main, "ConfirmationKeys")`,
//!   `K_shared = HKDF(nil, K_main, "SharedKey")`;
//!   `confirmP = HMAC(K_confirmP, shareV)`, `confirmV = HMAC(K_confirmV, shareP)`.
//!
//! A share whose unmasked point (`X - w0*M`, `Y - w0*N`) is of small order
//! is refused ([`PakeError::DegenerateShare`]): `Z` would then hold nothing
//! secret. Randomness comes in as 64 uniform bytes (or a caller's RNG).

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::rand_core::CryptoRng;

/// A share (`shareP`, `shareV`) or `L`: an RFC 8032 point encoding.
pub const POINT_LEN: usize = 32;
/// A verifier record: `w0` (32 bytes, little-endian) then `L`.
pub const RECORD_LEN: usize = 64;
/// The PBKDF output registration takes: `w0s || w1s`, 40 bytes each
/// (the order's 253 bits and 64 more, so the reduction's bias is
/// negligible, RFC 9383 section 3.2).
pub const PBKDF_LEN: usize = 80;
/// A key confirmation (`confirmP`, `confirmV`): one HMAC-SHA256 tag.
pub const CONFIRM_LEN: usize = 32;
/// The shared key `K_shared`.
pub const KEY_LEN: usize = 32;

/// RFC 9382's `M` for edwards25519 (section 6; seed "edwards25519 point
/// generation seed (M)").
pub const M: [u8; POINT_LEN] = [
    0xd0, 0x48, 0x03, 0x2c, 0x6e, 0xa0, 0xb6, 0xd6, 0x97, 0xdd, 0xc2, 0xe8, 0x6b, 0xda, 0x85, 0xa3,
    0x3a, 0xda, 0xc9, 0x20, 0xf1, 0xbf, 0x18, 0xe1, 0xb0, 0xc6, 0xd1, 0x66, 0xa5, 0xce, 0xcd, 0xaf,
];

/// RFC 9382's `N` for edwards25519 (seed "edwards25519 point generation
/// seed (N)").
pub const N: [u8; POINT_LEN] = [
    0xd3, 0xbf, 0xb5, 0x18, 0xf4, 0x4f, 0x34, 0x30, 0xf2, 0x9d, 0x0c, 0x92, 0xaf, 0x50, 0x38, 0x65,
    0xa1, 0xed, 0x32, 0x81, 0xdc, 0x69, 0xb3, 0x5d, 0xd8, 0x68, 0xba, 0x85, 0xf8, 0x86, 0xc4, 0xab,
];

/// What SPAKE2+ refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PakeError {
    /// A share or the record's `L` is not the canonical encoding of a
    /// curve point, or is a point of small order (the identity included).
    InvalidPoint,
    /// A share that only unmasks to a point of small order (`shareP` was
    /// `w0*M` plus torsion): `Z` and `V` would hold nothing secret.
    DegenerateShare,
    /// A scalar is zero or, in a stored record, not reduced modulo the
    /// group order.
    InvalidScalar,
    /// The PBKDF output is not [`PBKDF_LEN`] bytes.
    Length {
        /// The bytes expected.
        expected: usize,
        /// The bytes given.
        actual: usize,
    },
    /// The peer's key confirmation does not match: another setup code, or
    /// altered messages.
    ConfirmationFailed,
}

/// The context and identities bound into the transcript.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The application's context string.
    pub context: &'a [u8],
    /// The prover's identity (may be empty).
    pub prover_id: &'a [u8],
    /// The verifier's identity (may be empty).
    pub verifier_id: &'a [u8],
}

fn decode(bytes: &[u8; POINT_LEN]) -> Result<EdwardsPoint, PakeError> {
    let point = CompressedEdwardsY(*bytes)
        .decompress()
        .ok_or(PakeError::InvalidPoint)?;
    // Canonical encodings only (decompression also takes y >= p and the
    // sign bit of x = 0); no small-order points.
    if point.compress().as_bytes() != bytes || point.is_small_order() {
        return Err(PakeError::InvalidPoint);
    }
    Ok(point)
}

fn encode(point: &EdwardsPoint) -> [u8; POINT_LEN] {
    point.compress().to_bytes()
}

/// A 40-byte little-endian integer modulo the group order; zero refused.
fn reduce(bytes: &[u8]) -> Result<Scalar, PakeError> {
    let mut wide = [0u8; 64];
    wide[..bytes.len()].copy_from_slice(bytes);
    let scalar = Scalar::from_bytes_mod_order_wide(&wide);
    wide.zeroize();
    if scalar == Scalar::ZERO {
        return Err(PakeError::InvalidScalar);
    }
    Ok(scalar)
}

/// A scalar from 64 uniform bytes (never zero: a zero maps to one).
fn random_scalar(wide: &[u8; 64]) -> Scalar {
    let s = Scalar::from_bytes_mod_order_wide(wide);
    if s == Scalar::ZERO { Scalar::ONE } else { s }
}

/// `start` run on 64 bytes from `rng`, wiped after.
fn with_random_wide<R: CryptoRng + ?Sized, T>(
    rng: &mut R,
    start: impl FnOnce(&[u8; 64]) -> T,
) -> T {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    let started = start(&wide);
    wide.zeroize();
    started
}

/// The prover's secret: `w0` and `w1`.
#[derive(Clone)]
pub struct ProverSecret {
    w0: Scalar,
    w1: Scalar,
}

impl ProverSecret {
    /// From the PBKDF output `w0s || w1s` ([`PBKDF_LEN`] bytes).
    pub fn from_pbkdf_output(output: &[u8]) -> Result<Self, PakeError> {
        if output.len() != PBKDF_LEN {
            return Err(PakeError::Length {
                expected: PBKDF_LEN,
                actual: output.len(),
            });
        }
        let (w0s, w1s) = output.split_at(PBKDF_LEN / 2);
        Ok(Self {
            w0: reduce(w0s)?,
            w1: reduce(w1s)?,
        })
    }

    /// The verifier's record: `w0` and `L = w1*P`.
    pub fn verifier_record(&self) -> VerifierRecord {
        VerifierRecord {
            w0: self.w0,
            l: ED25519_BASEPOINT_POINT * self.w1,
        }
    }
}

impl Drop for ProverSecret {
    fn drop(&mut self) {
        self.w0.zeroize();
        self.w1.zeroize();
    }
}

/// The verifier's record: `w0` and `L`.
#[derive(Clone)]
pub struct VerifierRecord {
    w0: Scalar,
    l: EdwardsPoint,
}

impl VerifierRecord {
    /// Parses `w0 || L`: `w0` reduced and not zero, `L` a valid point.
    pub fn from_bytes(bytes: &[u8; RECORD_LEN]) -> Result<Self, PakeError> {
        let mut w0 = [0u8; 32];
        w0.copy_from_slice(&bytes[..32]);
        let scalar: Option<Scalar> = Scalar::from_canonical_bytes(w0).into();
        w0.zeroize();
        let w0 = scalar
            .filter(|s| *s != Scalar::ZERO)
            .ok_or(PakeError::InvalidScalar)?;
        let mut l = [0u8; POINT_LEN];
        l.copy_from_slice(&bytes[32..]);
        Ok(Self { w0, l: decode(&l)? })
    }

    /// `w0 || L`.
    pub fn to_bytes(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[..32].copy_from_slice(self.w0.as_bytes());
        out[32..].copy_from_slice(&encode(&self.l));
        out
    }
}

impl Drop for VerifierRecord {
    fn drop(&mut self) {
        self.w0.zeroize();
    }
}

/// The keys of a run, from the transcript.
struct Keys {
    confirm_p: [u8; CONFIRM_LEN],
    confirm_v: [u8; CONFIRM_LEN],
    shared: [u8; KEY_LEN],
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.confirm_p.zeroize();
        self.confirm_v.zeroize();
        self.shared.zeroize();
    }
}

/// The parts of `TT` in order (RFC 9383, section 3.3).
struct Transcript<'a> {
    context: &'a Context<'a>,
    m: &'a [u8],
    n: &'a [u8],
    share_p: &'a [u8],
    share_v: &'a [u8],
    z: &'a [u8],
    v: &'a [u8],
    w0: &'a [u8],
}

impl Transcript<'_> {
    /// `K_main = Hash(TT)`.
    fn main(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for part in [
            self.context.context,
            self.context.prover_id,
            self.context.verifier_id,
            self.m,
            self.n,
            self.share_p,
            self.share_v,
            self.z,
            self.v,
            self.w0,
        ] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        hash.finalize().into()
    }

    /// The key schedule (RFC 9383, section 3.4).
    fn keys(&self) -> Keys {
        let mut main = self.main();
        let kdf = Hkdf::<Sha256>::new(None, &main);
        main.zeroize();
        let mut confirmation = [0u8; 2 * CONFIRM_LEN];
        let mut keys = Keys {
            confirm_p: [0; CONFIRM_LEN],
            confirm_v: [0; CONFIRM_LEN],
            shared: [0; KEY_LEN],
        };
        // 64 and 32 bytes are far under HKDF-SHA256's limit (8,160).
        let _ = kdf.expand(b"ConfirmationKeys", &mut confirmation);
        let _ = kdf.expand(b"SharedKey", &mut keys.shared);
        let (k_p, k_v) = confirmation.split_at(CONFIRM_LEN);
        keys.confirm_p = mac(k_p, self.share_v);
        keys.confirm_v = mac(k_v, self.share_p);
        confirmation.zeroize();
        keys
    }
}

fn mac(key: &[u8], data: &[u8]) -> [u8; CONFIRM_LEN] {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m.chain_update(data).finalize().into_bytes().into(),
        // HMAC takes keys of any length.
        Err(_) => [0; CONFIRM_LEN],
    }
}

/// Constant-time tag comparison (HMAC's own `verify`).
fn check(key_tag: &[u8; CONFIRM_LEN], got: &[u8; CONFIRM_LEN]) -> Result<(), PakeError> {
    let mut diff = 0u8;
    for (a, b) in key_tag.iter().zip(got) {
        diff |= a ^ b;
    }
    if core::hint::black_box(diff) == 0 {
        Ok(())
    } else {
        Err(PakeError::ConfirmationFailed)
    }
}

/// `h*s*(share - w0*mask)`, `h*t*(share - w0*mask)`: `Z` and `V` from the
/// peer's share; the unmasked point must not be of small order.
fn unmask(
    share: &EdwardsPoint,
    mask: &EdwardsPoint,
    w0: &Scalar,
) -> Result<EdwardsPoint, PakeError> {
    let unmasked = share - mask * w0;
    if unmasked.mul_by_cofactor().is_identity() {
        return Err(PakeError::DegenerateShare);
    }
    Ok(unmasked)
}

/// The keys of a run with this protocol's `M` and `N`: `[shareP, shareV]`,
/// and `[Z, V]` before their cofactor, into the transcript.
fn run_keys(
    context: &Context<'_>,
    [share_p, share_v]: [&[u8; POINT_LEN]; 2],
    [z, v]: [EdwardsPoint; 2],
    w0: &Scalar,
) -> Keys {
    Transcript {
        context,
        m: &M,
        n: &N,
        share_p,
        share_v,
        z: &encode(&z.mul_by_cofactor()),
        v: &encode(&v.mul_by_cofactor()),
        w0: w0.as_bytes(),
    }
    .keys()
}

/// What masks a party's share: the prover's secret (with `M`) or the
/// verifier's record (with `N`). Implemented by [`ProverSecret`] and
/// [`VerifierRecord`] only.
pub trait Role: Clone + sealed::Sealed {
    /// The mask point: `M` for the prover, `N` for the verifier.
    const MASK: [u8; POINT_LEN];
    /// `w0`.
    fn w0(&self) -> &Scalar;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ProverSecret {}
    impl Sealed for super::VerifierRecord {}
}

impl Role for ProverSecret {
    const MASK: [u8; POINT_LEN] = M;
    fn w0(&self) -> &Scalar {
        &self.w0
    }
}

impl Role for VerifierRecord {
    const MASK: [u8; POINT_LEN] = N;
    fn w0(&self) -> &Scalar {
        &self.w0
    }
}

/// One party of a run with its share sent: its secret `S`, its scalar
/// (`x` or `y`, wiped on drop) and the share.
pub struct Party<S: Role> {
    secret: S,
    scalar: Scalar,
    share: [u8; POINT_LEN],
}

/// The verifier (the lock) with its share, waiting for `shareP`.
pub type Verifier = Party<VerifierRecord>;

/// The prover (the owner's client) with its share, waiting for `shareV`.
pub type Prover = Party<ProverSecret>;

impl<S: Role> Party<S> {
    /// Starts a run from 64 uniform bytes: the scalar `s` and the share
    /// `s*P + w0*mask` (`shareP = x*P + w0*M`, `shareV = y*P + w0*N`).
    pub fn start_with(secret: &S, wide: &[u8; 64]) -> Result<(Self, [u8; POINT_LEN]), PakeError> {
        let scalar = random_scalar(wide);
        let share = encode(&(ED25519_BASEPOINT_POINT * scalar + decode(&S::MASK)? * secret.w0()));
        let party = Self {
            secret: secret.clone(),
            scalar,
            share,
        };
        Ok((party, share))
    }

    /// [`Party::start_with`] with 64 bytes from `rng`.
    pub fn start<R: CryptoRng + ?Sized>(
        secret: &S,
        rng: &mut R,
    ) -> Result<(Self, [u8; POINT_LEN]), PakeError> {
        with_random_wide(rng, |wide| Self::start_with(secret, wide))
    }
}

impl<S: Role> Drop for Party<S> {
    fn drop(&mut self) {
        self.scalar.zeroize();
    }
}

impl Verifier {
    /// Takes `shareP`: `Z`, `V`, the transcript and the keys. Gives
    /// `confirmV`, to send, and the state that checks `confirmP`.
    pub fn receive(
        self,
        context: &Context<'_>,
        share_p: &[u8; POINT_LEN],
    ) -> Result<(VerifierConfirming, [u8; CONFIRM_LEN]), PakeError> {
        let x = decode(share_p)?;
        let record = &self.secret;
        let unmasked = unmask(&x, &decode(&M)?, &record.w0)?;
        let keys = run_keys(
            context,
            [share_p, &self.share],
            [unmasked * self.scalar, record.l * self.scalar],
            &record.w0,
        );
        let confirm_v = keys.confirm_v;
        Ok((VerifierConfirming { keys }, confirm_v))
    }
}

/// The verifier after `confirmV`, waiting for `confirmP`.
pub struct VerifierConfirming {
    keys: Keys,
}

impl VerifierConfirming {
    /// Checks `confirmP` (constant time); gives `K_shared`.
    pub fn finish(self, confirm_p: &[u8; CONFIRM_LEN]) -> Result<[u8; KEY_LEN], PakeError> {
        check(&self.keys.confirm_p, confirm_p)?;
        Ok(self.keys.shared)
    }
}

impl Prover {
    /// Takes `shareV` and `confirmV`: checks `confirmV`, gives `confirmP`
    /// (to send) and `K_shared`.
    pub fn finish(
        self,
        context: &Context<'_>,
        share_v: &[u8; POINT_LEN],
        confirm_v: &[u8; CONFIRM_LEN],
    ) -> Result<([u8; CONFIRM_LEN], [u8; KEY_LEN]), PakeError> {
        let y = decode(share_v)?;
        let secret = &self.secret;
        let unmasked = unmask(&y, &decode(&N)?, &secret.w0)?;
        let keys = run_keys(
            context,
            [&self.share, share_v],
            [unmasked * self.scalar, unmasked * secret.w1],
            &secret.w0,
        );
        check(&keys.confirm_v, confirm_v)?;
        Ok((keys.confirm_p, keys.shared))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;

    fn hex<const L: usize>(s: &str) -> [u8; L] {
        let mut out = [0u8; L];
        assert_eq!(s.len(), 2 * L, "hex length");
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex digit");
        }
        out
    }

    const CTX: Context<'static> = Context {
        context: b"keyway pake25519 test",
        prover_id: b"",
        verifier_id: b"",
    };

    fn secret(code: u8) -> ProverSecret {
        let mut out = [0u8; PBKDF_LEN];
        for (i, b) in out.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(29) ^ code;
        }
        ProverSecret::from_pbkdf_output(&out).expect("secret")
    }

    /// Each party with the share it sends.
    type Started = ((Prover, [u8; POINT_LEN]), (Verifier, [u8; POINT_LEN]));

    /// Both parties started, from the RNG seeded with `seed`.
    fn start(
        prover: &ProverSecret,
        record: &VerifierRecord,
        seed: u64,
    ) -> Result<Started, PakeError> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        Ok((
            Prover::start(prover, &mut rng)?,
            Verifier::start(record, &mut rng)?,
        ))
    }

    /// One whole run; `Err` from the first side that refuses.
    fn run(
        prover: &ProverSecret,
        record: &VerifierRecord,
        seed: u64,
    ) -> Result<([u8; KEY_LEN], [u8; KEY_LEN]), PakeError> {
        let ((p, share_p), (v, share_v)) = start(prover, record, seed)?;
        let (v, confirm_v) = v.receive(&CTX, &share_p)?;
        let (confirm_p, k_p) = p.finish(&CTX, &share_v, &confirm_v)?;
        let k_v = v.finish(&confirm_p)?;
        Ok((k_p, k_v))
    }

    /// RFC 9382, section 6: `M` and `N` are the first SHA-256 iterate of
    /// their seed (`v = SHA-256(seed)`, then `v = SHA-256(v)`) that
    /// decodes as a point of the prime-order subgroup.
    #[test]
    fn m_and_n_are_rfc9382_points() {
        for (seed, expected) in [
            (&b"edwards25519 point generation seed (M)"[..], M),
            (&b"edwards25519 point generation seed (N)"[..], N),
        ] {
            let mut v: [u8; 32] = Sha256::digest(seed).into();
            let mut tries = 1;
            let point = loop {
                match CompressedEdwardsY(v).decompress() {
                    Some(p) if p.is_torsion_free() => break p,
                    _ => {
                        v = Sha256::digest(v).into();
                        tries += 1;
                        assert!(tries < 1000, "no point from the seed");
                    }
                }
            };
            assert_eq!(encode(&point), expected, "after {tries} iterations");
            assert!(decode(&expected).is_ok(), "the constant decodes");
            assert!(decode(&expected).expect("point").is_torsion_free());
        }
    }

    /// RFC 9383 Appendix C, P256-SHA256-HKDF-SHA256-HMAC-SHA256: the
    /// transcript layout, the KDF labels and the MACs do not depend on the
    /// group, so the RFC's vector pins them byte for byte.
    #[test]
    fn key_schedule_matches_rfc9383_vector() {
        // M, N, shareP, shareV, Z, V: uncompressed P-256 points.
        let [m, n, share_p, share_v, z, v] = [
            "04886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f5ff355163e43ce224e0b0e65ff02ac8e5c7be09419c785e0ca547d55a12e2d20",
            "04d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b4907d60aa6bfade45008a636337f5168c64d9bd36034808cd564490b1e656edbe7",
            "04ef3bd051bf78a2234ec0df197f7828060fe9856503579bb1733009042c15c0c1de127727f418b5966afadfdd95a6e4591d171056b333dab97a79c7193e341727",
            "04c0f65da0d11927bdf5d560c69e1d7d939a05b0e88291887d679fcadea75810fb5cc1ca7494db39e82ff2f50665255d76173e09986ab46742c798a9a68437b048",
            "04bbfce7dd7f277819c8da21544afb7964705569bdf12fb92aa388059408d50091a0c5f1d3127f56813b5337f9e4e67e2ca633117a4fbd559946ab474356c41839",
            "0458bf27c6bca011c9ce1930e8984a797a3419797b936629a5a937cf2f11c8b9514b82b993da8a46e664f23db7c01edc87faa530db01c2ee405230b18997f16b68",
        ]
        .map(hex::<65>);
        let w0: [u8; 32] = hex("bb8e1bbcf3c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3");
        let context = Context {
            context: b"SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256 Test Vectors",
            prover_id: b"client",
            verifier_id: b"server",
        };
        let t = Transcript {
            context: &context,
            m: &m,
            n: &n,
            share_p: &share_p,
            share_v: &share_v,
            z: &z,
            v: &v,
            w0: &w0,
        };
        assert_eq!(
            t.main(),
            hex::<32>("4c59e1ccf2cfb961aa31bd9434478a1089b56cd11542f53d3576fb6c2a438a29")
        );
        let keys = t.keys();
        assert_eq!(
            keys.confirm_p,
            hex::<32>("926cc713504b9b4d76c9162ded04b5493e89109f6d89462cd33adc46fda27527")
        );
        assert_eq!(
            keys.confirm_v,
            hex::<32>("9747bcc4f8fe9f63defee53ac9b07876d907d55047e6ff2def2e7529089d3e68")
        );
        assert_eq!(
            keys.shared,
            hex::<32>("0c5f8ccd1413423a54f6c1fb26ff01534a87f893779c6e68666d772bfd91f3e7")
        );
    }

    /// `out[i] = i * 29 + k` (mod 256), as `scripts/pake25519-vector.py`.
    fn pattern<const L: usize>(k: u8) -> [u8; L] {
        let mut out = [0u8; L];
        for (i, b) in out.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(29).wrapping_add(k);
        }
        out
    }

    /// An independent implementation of the group (libsodium, through
    /// `scripts/pake25519-vector.py`): the record, both shares, both
    /// confirmations and the key, byte for byte.
    #[test]
    fn pake25519_matches_libsodium_vector() {
        let context = Context {
            context: b"keyway pake25519 libsodium vector",
            prover_id: b"client",
            verifier_id: b"lock",
        };
        let secret = ProverSecret::from_pbkdf_output(&pattern::<80>(7)).expect("secret");
        let record = secret.verifier_record();
        assert_eq!(
            record.to_bytes(),
            hex::<64>(concat!(
                "ef4ad737844418ae8828126cb80b82940bd3e086388a610dbfdcf91633506d0a",
                "fedcfff4cd84758edea825862c50b46ab7bc1f6f5a9a057bee3a63aabe9843b3"
            ))
        );
        let (prover, share_p) = Prover::start_with(&secret, &pattern::<64>(11)).expect("prover");
        let (verifier, share_v) =
            Verifier::start_with(&record, &pattern::<64>(13)).expect("verifier");
        assert_eq!(
            share_p,
            hex::<32>("d1c2a4f06bbe5a7e4922a6b5273fdc80fef3f70038a5505af8750bdc466b70ce")
        );
        assert_eq!(
            share_v,
            hex::<32>("34775b76cdfcfe8b7724dbbac87dede67c5d1eddf1f89eb7ee55957f6360c693")
        );
        let (verifier, confirm_v) = verifier.receive(&context, &share_p).expect("receive");
        assert_eq!(
            confirm_v,
            hex::<32>("587100cda3115f976c2869df032106147fb4c0435d3b7054ade75702f7fd7390")
        );
        let (confirm_p, k_p) = prover
            .finish(&context, &share_v, &confirm_v)
            .expect("prover finish");
        assert_eq!(
            confirm_p,
            hex::<32>("ba2bc32f55d8288bfae75d42f8ed5cdb96252438c5f5fd0b63542494647828c8")
        );
        let k_shared =
            hex::<32>("d5107261631fc9d0e0e310f6a90e6bbd40fabda1790413b89f101850668577b0");
        assert_eq!(k_p, k_shared);
        assert_eq!(verifier.finish(&confirm_p), Ok(k_shared));
    }

    #[test]
    fn both_roles_derive_the_same_key() {
        let s = secret(1);
        let record = VerifierRecord::from_bytes(&s.verifier_record().to_bytes()).expect("record");
        for seed in 0..8 {
            let (k_p, k_v) = run(&s, &record, seed).expect("a run with the right code");
            assert_eq!(k_p, k_v);
        }
        let (a, _) = run(&s, &record, 1).expect("run");
        let (b, _) = run(&s, &record, 2).expect("run");
        assert_ne!(a, b, "fresh randomness, fresh key");
    }

    #[test]
    fn wrong_code_fails_confirmation() {
        let record = secret(1).verifier_record();
        assert_eq!(
            run(&secret(2), &record, 7),
            Err(PakeError::ConfirmationFailed)
        );
    }

    #[test]
    fn tampered_shares_fail_confirmation() {
        let s = secret(3);
        let ((p, share_p), (v, share_v)) = start(&s, &s.verifier_record(), 9).expect("start");
        // The attacker replaces shareV by another valid point.
        let other = encode(&(ED25519_BASEPOINT_POINT * Scalar::from(5u8)));
        let (_v, confirm_v) = v.receive(&CTX, &share_p).expect("receive");
        assert_ne!(other, share_v);
        assert_eq!(
            p.finish(&CTX, &other, &confirm_v).err(),
            Some(PakeError::ConfirmationFailed)
        );
    }

    #[test]
    fn degenerate_share_is_refused() {
        let s = secret(4);
        let (_, (v, _)) = start(&s, &s.verifier_record(), 3).expect("start");
        // shareP = w0*M: the unmasked point is the identity.
        let masked = encode(&(decode(&M).expect("M") * s.w0));
        assert_eq!(
            v.receive(&CTX, &masked).err(),
            Some(PakeError::DegenerateShare)
        );
    }

    #[test]
    fn invalid_points_are_refused() {
        let s = secret(5);
        let record = s.verifier_record();
        let mut identity = [0u8; 32];
        identity[0] = 1;
        // The point of order 2, (0, -1): y = p - 1.
        let mut order2 = [0xffu8; 32];
        order2[0] = 0xec;
        order2[31] = 0x7f;
        // y = p + 1 (non-canonical encoding of y = 1, the identity).
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        // y + p for a small y of a point of large order: the same point
        // as y, in a non-canonical encoding (decompression reduces y).
        let large_non_canonical = (2u8..19)
            .map(|y| {
                let mut b = [0xffu8; 32];
                b[0] = 0xed + y;
                b[31] = 0x7f;
                b
            })
            .find(|b| {
                CompressedEdwardsY(*b)
                    .decompress()
                    .is_some_and(|p| !p.is_small_order())
            })
            .expect("a y < 19 of a point of large order");
        // y = 2 is not on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert!(CompressedEdwardsY(off_curve).decompress().is_none());
        for bad in [
            identity,
            order2,
            non_canonical,
            large_non_canonical,
            off_curve,
        ] {
            let mut rng = ChaCha20Rng::seed_from_u64(11);
            let (v, _) = Verifier::start(&record, &mut rng).expect("verifier");
            assert_eq!(
                v.receive(&CTX, &bad).err(),
                Some(PakeError::InvalidPoint),
                "{bad:02x?}"
            );
            let (p, _) = Prover::start(&s, &mut rng).expect("prover");
            assert_eq!(
                p.finish(&CTX, &bad, &[0; 32]).err(),
                Some(PakeError::InvalidPoint)
            );
        }
    }

    #[test]
    fn bad_records_and_pbkdf_outputs_are_refused() {
        let good = secret(6).verifier_record().to_bytes();
        let mut zero_w0 = good;
        zero_w0[..32].fill(0);
        assert_eq!(
            VerifierRecord::from_bytes(&zero_w0).err(),
            Some(PakeError::InvalidScalar)
        );
        let mut unreduced = good;
        unreduced[..32].fill(0xff);
        assert_eq!(
            VerifierRecord::from_bytes(&unreduced).err(),
            Some(PakeError::InvalidScalar)
        );
        let mut bad_l = good;
        bad_l[32..].fill(0);
        bad_l[32] = 1;
        assert_eq!(
            VerifierRecord::from_bytes(&bad_l).err(),
            Some(PakeError::InvalidPoint)
        );
        assert_eq!(
            ProverSecret::from_pbkdf_output(&[1; 79]).err(),
            Some(PakeError::Length {
                expected: 80,
                actual: 79
            })
        );
        assert_eq!(
            ProverSecret::from_pbkdf_output(&[0; 80]).err(),
            Some(PakeError::InvalidScalar)
        );
    }
}
