//! RFC 9383, Appendix C: the test vector of the suite the channel uses,
//! `P256-SHA256-HKDF-SHA256-HMAC-SHA256`, run through the same SPAKE2+
//! implementation (`spake2plus`, as `keyway_channel::pairing` drives it)
//! in both roles, byte for byte: `L`, `shareP`, `shareV`, `confirmV`,
//! `confirmP` and `K_shared`.
//!
//! The RFC's `x` and `y` are fed in through an RNG that replays them: the
//! implementation reduces 64 random bytes modulo the group order, so 32
//! zero bytes followed by the scalar give exactly that scalar.

use std::convert::Infallible;

use keyway_channel::rand_core::{TryCryptoRng, TryRng};
use spake2plus::{
    ConfirmP, ConfirmV, Context, P256Sha256, Prover, ProverSecret, ShareP, ShareV, Verifier,
    VerifierRecord,
};

const CONTEXT: &[u8] = b"SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256 Test Vectors";
const ID_PROVER: &[u8] = b"client";
const ID_VERIFIER: &[u8] = b"server";
const W0: &str = "bb8e1bbcf3c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3";
const W1: &str = "7e945f34d78785b8a3ef44d0df5a1a97d6b3b460409a345ca7830387a74b1dba";
const L: &str = "04eb7c9db3d9a9eb1f8adab81b5794c1f13ae3e225efbe91ea487425854c7fc00f00bfedcbd09b2400142d40a14f2064ef31dfaa903b91d1faea7093d835966efd";
const X: &str = "d1232c8e8693d02368976c174e2088851b8365d0d79a9eee709c6a05a2fad539";
const SHARE_P: &str = "04ef3bd051bf78a2234ec0df197f7828060fe9856503579bb1733009042c15c0c1de127727f418b5966afadfdd95a6e4591d171056b333dab97a79c7193e341727";
const Y: &str = "717a72348a182085109c8d3917d6c43d59b224dc6a7fc4f0483232fa6516d8b3";
const SHARE_V: &str = "04c0f65da0d11927bdf5d560c69e1d7d939a05b0e88291887d679fcadea75810fb5cc1ca7494db39e82ff2f50665255d76173e09986ab46742c798a9a68437b048";
const CONFIRM_P: &str = "926cc713504b9b4d76c9162ded04b5493e89109f6d89462cd33adc46fda27527";
const CONFIRM_V: &str = "9747bcc4f8fe9f63defee53ac9b07876d907d55047e6ff2def2e7529089d3e68";
const K_SHARED: &str = "0c5f8ccd1413423a54f6c1fb26ff01534a87f893779c6e68666d772bfd91f3e7";

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// An "RNG" that gives back the bytes it holds, then fails the test.
struct Replay(Vec<u8>);

impl Replay {
    fn scalar(hex: &str) -> Self {
        let mut bytes = vec![0u8; 32];
        bytes.extend(unhex(hex));
        Replay(bytes)
    }
}

impl TryRng for Replay {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert!(dst.len() <= self.0.len(), "replayed randomness ran out");
        dst.copy_from_slice(&self.0[..dst.len()]);
        self.0.drain(..dst.len());
        Ok(())
    }
}

impl TryCryptoRng for Replay {}

fn context() -> Context<'static> {
    Context {
        context: CONTEXT,
        prover_id: ID_PROVER,
        verifier_id: ID_VERIFIER,
    }
}

/// The prover's secret from a PBKDF output whose halves reduce to the
/// vector's `w0` and `w1` (each padded to 40 bytes with leading zeros).
fn secret() -> ProverSecret<P256Sha256> {
    let mut out = Vec::new();
    for w in [W0, W1] {
        out.extend([0u8; 8]);
        out.extend(unhex(w));
    }
    ProverSecret::from_pbkdf_output(&out).unwrap()
}

#[test]
fn rfc9383_registration_record_matches_w0_and_l() {
    let record = secret().verifier_record().to_bytes();
    let mut expected = unhex(W0);
    expected.extend(unhex(L));
    assert_eq!(record.as_ref(), &expected[..]);
    // And the lock parses the stored form back.
    VerifierRecord::<P256Sha256>::from_bytes(&expected).unwrap();
}

#[test]
fn rfc9383_vector_both_roles_byte_for_byte() {
    let ctx = context();
    let (prover, share_p) = Prover::start(&secret(), &ctx, &mut Replay::scalar(X));
    assert_eq!(share_p.as_bytes()[..], unhex(SHARE_P)[..], "shareP");

    let record = {
        let mut r = unhex(W0);
        r.extend(unhex(L));
        VerifierRecord::<P256Sha256>::from_bytes(&r).unwrap()
    };
    let (verifier, share_v) = Verifier::start(&record, &ctx, &mut Replay::scalar(Y));
    assert_eq!(share_v.as_bytes()[..], unhex(SHARE_V)[..], "shareV");

    // Through the wire form, as the channel carries them.
    let share_p = ShareP::<P256Sha256>::from_bytes(&unhex(SHARE_P)).unwrap();
    let share_v = ShareV::<P256Sha256>::from_bytes(&unhex(SHARE_V)).unwrap();
    let (verifier, confirm_v) = verifier.receive(&share_p).unwrap();
    assert_eq!(confirm_v.as_bytes()[..], unhex(CONFIRM_V)[..], "confirmV");

    let confirm_v = ConfirmV::<P256Sha256>::from_bytes(&unhex(CONFIRM_V)).unwrap();
    let (confirm_p, prover_key) = prover
        .receive(&share_v)
        .unwrap()
        .finish(&confirm_v)
        .unwrap();
    assert_eq!(confirm_p.as_bytes()[..], unhex(CONFIRM_P)[..], "confirmP");
    assert_eq!(
        prover_key.as_bytes()[..],
        unhex(K_SHARED)[..],
        "K_shared (prover)"
    );

    let confirm_p = ConfirmP::<P256Sha256>::from_bytes(&unhex(CONFIRM_P)).unwrap();
    let verifier_key = verifier.finish(&confirm_p).unwrap();
    assert_eq!(
        verifier_key.as_bytes()[..],
        unhex(K_SHARED)[..],
        "K_shared (verifier)"
    );
}

#[test]
fn rfc9383_vector_with_one_flipped_confirmation_bit_fails() {
    // The check can fail: confirmP with one bit flipped is refused.
    let ctx = context();
    let record = {
        let mut r = unhex(W0);
        r.extend(unhex(L));
        VerifierRecord::<P256Sha256>::from_bytes(&r).unwrap()
    };
    let (verifier, _) = Verifier::start(&record, &ctx, &mut Replay::scalar(Y));
    let share_p = ShareP::<P256Sha256>::from_bytes(&unhex(SHARE_P)).unwrap();
    let (verifier, _) = verifier.receive(&share_p).unwrap();
    let mut bad = unhex(CONFIRM_P);
    bad[31] ^= 1;
    let bad = ConfirmP::<P256Sha256>::from_bytes(&bad).unwrap();
    assert_eq!(
        verifier.finish(&bad).err(),
        Some(spake2plus::Error::ConfirmationFailed)
    );
}
