//! Both roles of the real SPAKE2+ protocol (features `pake-a`, `pake-b`):
//! registration record parsed from bytes, the lock's (verifier's) steps
//! timed as the lock runs them (Pake1 -> Pake2: start + `shareP`;
//! Pake3: `confirmP`), the client's (prover's) steps around them.

use crate::{Meter, ensure};
use chacha20::ChaCha20Rng;
use chacha20::rand_core::SeedableRng;
use core::hint::black_box;

/// The PBKDF output (80 bytes: `w0s || w1s`).
const PBKDF: [u8; 80] = {
    let mut out = [0u8; 80];
    let mut i = 0;
    while i < 80 {
        out[i] = (i as u8).wrapping_mul(29).wrapping_add(7);
        i += 1;
    }
    out
};

const CONTEXT: &[u8] = b"curve-probe pake";

/// Route A: the `spake2plus` crate, P256-SHA256-HKDF-SHA256-HMAC-SHA256.
#[cfg(feature = "pake-a")]
pub fn run(m: &mut Meter) -> u8 {
    use spake2plus::{
        ConfirmP, Context, P256Sha256, Prover, ProverSecret, ShareP, Verifier, VerifierRecord,
    };
    let ctx = Context {
        context: black_box(CONTEXT),
        prover_id: b"",
        verifier_id: b"",
    };
    let mut rng = ChaCha20Rng::from_seed(black_box([7; 32]));
    let Ok(secret) = ProverSecret::<P256Sha256>::from_pbkdf_output(black_box(&PBKDF)) else {
        ensure(false, "secret");
        return 0;
    };
    let stored = secret.verifier_record().to_bytes();
    let (prover, share_p) = Prover::start(&secret, &ctx, &mut rng);
    let share_p_bytes = black_box(*share_p.as_bytes());
    let mut pake2 = None;
    m.measure("pake: the lock's Pake1 -> Pake2", &mut || {
        let Ok(record) = VerifierRecord::<P256Sha256>::from_bytes(black_box(stored.as_ref()))
        else {
            return;
        };
        let Ok(share_p) = ShareP::<P256Sha256>::from_bytes(&share_p_bytes) else {
            return;
        };
        let (verifier, share_v) = Verifier::start(&record, &ctx, &mut rng);
        if let Ok((confirming, confirm_v)) = verifier.receive(&share_p) {
            pake2 = Some((confirming, share_v, confirm_v));
        }
    });
    let Some((confirming, share_v, confirm_v)) = pake2 else {
        ensure(false, "the lock's Pake2");
        return 0;
    };
    let Ok(Ok((confirm_p, k_p))) = prover.receive(&share_v).map(|p| p.finish(&confirm_v)) else {
        ensure(false, "the client's confirmation");
        return 0;
    };
    let confirm_p_bytes = black_box(*confirm_p.as_bytes());
    let mut k_v = None;
    let mut confirming = Some(confirming);
    m.measure("pake: the lock's Pake3", &mut || {
        if let (Ok(c), Some(confirming)) = (
            ConfirmP::<P256Sha256>::from_bytes(&confirm_p_bytes),
            confirming.take(),
        ) {
            k_v = confirming.finish(&c).ok().map(|k| *k.as_bytes());
        }
    });
    ensure(k_v == Some(*k_p.as_bytes()), "SPAKE2+: the same key");
    k_p.as_bytes()[0]
}

/// Route B: keyway-channel's `pake25519` (edwards25519, SHA-256).
#[cfg(feature = "pake-b")]
pub fn run(m: &mut Meter) -> u8 {
    use keyway_channel::pake25519::{Context, Prover, ProverSecret, Verifier, VerifierRecord};
    let ctx = Context {
        context: black_box(CONTEXT),
        prover_id: b"",
        verifier_id: b"",
    };
    let mut rng = ChaCha20Rng::from_seed(black_box([7; 32]));
    let Ok(secret) = ProverSecret::from_pbkdf_output(black_box(&PBKDF)) else {
        ensure(false, "secret");
        return 0;
    };
    let stored = secret.verifier_record().to_bytes();
    let Ok((prover, share_p)) = Prover::start(&secret, &mut rng) else {
        ensure(false, "the client's Pake1");
        return 0;
    };
    let share_p = black_box(share_p);
    let mut pake2 = None;
    m.measure("pake: the lock's Pake1 -> Pake2", &mut || {
        let Ok(record) = VerifierRecord::from_bytes(black_box(&stored)) else {
            return;
        };
        let Ok((verifier, share_v)) = Verifier::start(&record, &mut rng) else {
            return;
        };
        if let Ok((confirming, confirm_v)) = verifier.receive(&ctx, &share_p) {
            pake2 = Some((confirming, share_v, confirm_v));
        }
    });
    let Some((confirming, share_v, confirm_v)) = pake2 else {
        ensure(false, "the lock's Pake2");
        return 0;
    };
    let Ok((confirm_p, k_p)) = prover.finish(&ctx, &share_v, &confirm_v) else {
        ensure(false, "the client's confirmation");
        return 0;
    };
    let confirm_p = black_box(confirm_p);
    let mut k_v = None;
    let mut confirming = Some(confirming);
    m.measure("pake: the lock's Pake3", &mut || {
        k_v = confirming.take().and_then(|c| c.finish(&confirm_p).ok());
    });
    ensure(k_v == Some(k_p), "SPAKE2+: the same key");
    k_p[0]
}
