//! Route B, curve25519 only: Ed25519 by ed25519-dalek, X25519 and the
//! SPAKE2+ group by curve25519-dalek (one field and group implementation).

use crate::{Inputs, Meter, ensure, spake_dalek};
use core::hint::black_box;
use curve25519_dalek::montgomery::MontgomeryPoint;
#[cfg(not(feature = "split-verify"))]
use ed25519_dalek::{Signature, VerifyingKey};
use ed25519_dalek::{Signer, SigningKey};

fn half(wide: &[u8; 64]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&black_box(wide)[..32]);
    out
}

/// Runs every operation once (the timed ones under `m`); a digest byte.
pub fn run(inp: &Inputs, m: &mut Meter) -> u8 {
    let sk = SigningKey::from_bytes(&black_box(inp.seed));
    let msg = black_box(&inp.msg);
    let mut sig_bytes = [0u8; 64];
    m.measure("ed25519 sign", &mut || {
        sig_bytes = sk.sign(msg).to_bytes();
    });
    let pk = black_box(sk.verifying_key().to_bytes());
    #[cfg(not(feature = "split-verify"))]
    verify_dalek(&pk, msg, sig_bytes, m);
    #[cfg(feature = "split-verify")]
    {
        let mut ok = false;
        m.measure("ed25519 verify", &mut || {
            ok = split::verify(&pk, &[msg], &black_box(sig_bytes));
        });
        ensure(ok, "the signature verifies");
        let mut streamed = false;
        m.measure("ed25519 verify, streamed", &mut || {
            streamed = split::verify(&pk, &[&msg[..20], &msg[20..]], &black_box(sig_bytes));
        });
        ensure(streamed, "the signature verifies, streamed");
        let mut flipped = *msg;
        flipped[0] ^= 1;
        ensure(
            !split::verify(&pk, &[&black_box(flipped)], &sig_bytes),
            "a flipped message is refused",
        );
    }

    let spake = spake_dalek::run(inp, m);

    // X25519, both sides.
    let (a, b) = (half(&inp.dh_a), half(&inp.dh_b));
    let pub_a = MontgomeryPoint::mul_base_clamped(a).to_bytes();
    let pub_b = MontgomeryPoint::mul_base_clamped(b).to_bytes();
    let mut s_a = [0u8; 32];
    m.measure("DH one side", &mut || {
        s_a = MontgomeryPoint(black_box(pub_b)).mul_clamped(a).to_bytes();
    });
    let s_b = MontgomeryPoint(black_box(pub_a)).mul_clamped(b).to_bytes();
    ensure(s_a == s_b && s_a != [0; 32], "X25519: both sides agree");
    sig_bytes[0] ^ spake ^ s_a[0]
}

/// One-shot `verify_strict` and the streamed `verify_stream`, as the
/// lock would call ed25519-dalek.
#[cfg(not(feature = "split-verify"))]
fn verify_dalek(pk: &[u8; 32], msg: &[u8; 64], sig_bytes: [u8; 64], m: &mut Meter) {
    let mut ok = false;
    m.measure("ed25519 verify", &mut || {
        ok = match VerifyingKey::from_bytes(pk) {
            Ok(vk) => vk
                .verify_strict(msg, &Signature::from_bytes(&black_box(sig_bytes)))
                .is_ok(),
            Err(_) => false,
        };
    });
    ensure(ok, "the signature verifies");
    // keyway-suit's way: the key refused if weak, the message streamed
    // (`verify_stream`: ed25519-dalek's `hazmat`).
    let mut streamed = false;
    m.measure("ed25519 verify, streamed", &mut || {
        streamed = match VerifyingKey::from_bytes(pk) {
            Ok(vk) if !vk.is_weak() => {
                match vk.verify_stream(&Signature::from_bytes(&black_box(sig_bytes))) {
                    Ok(mut st) => {
                        st.update(&msg[..20]);
                        st.update(&msg[20..]);
                        st.finalize_and_verify().is_ok()
                    }
                    Err(_) => false,
                }
            }
            _ => false,
        };
    });
    ensure(streamed, "the signature verifies, streamed");
    let mut flipped = *msg;
    flipped[0] ^= 1;
    let refused = match VerifyingKey::from_bytes(pk) {
        Ok(vk) => vk
            .verify_strict(&black_box(flipped), &Signature::from_bytes(&sig_bytes))
            .is_err(),
        Err(_) => false,
    };
    ensure(refused, "a flipped message is refused");
}

/// Ed25519 verification as two single-scalar multiplications on
/// curve25519-dalek's group (feature `split-verify`): the cofactored
/// equation `[8]([S]B - [k]A - R) = 0` with S canonical and A, R not of
/// small order (ed25519-compact's refusals), SHA-512 streamed. No
/// double-base multiplication and its run-time base-point table: less
/// stack, twice the multiplications.
#[cfg(feature = "split-verify")]
mod split {
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::IsIdentity;
    use sha2::{Digest, Sha512};

    pub fn verify(pk: &[u8; 32], message: &[&[u8]], sig: &[u8; 64]) -> bool {
        let Some(a) = CompressedEdwardsY(*pk).decompress() else {
            return false;
        };
        if a.is_small_order() {
            return false;
        }
        let mut r_bytes = [0u8; 32];
        r_bytes.copy_from_slice(&sig[..32]);
        let Some(r) = CompressedEdwardsY(r_bytes).decompress() else {
            return false;
        };
        if r.is_small_order() {
            return false;
        }
        let mut s_bytes = [0u8; 32];
        s_bytes.copy_from_slice(&sig[32..]);
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let mut h = Sha512::new();
        h.update(r_bytes);
        h.update(pk);
        for part in message {
            h.update(part);
        }
        let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
        (EdwardsPoint::mul_base(&s) - a * k - r)
            .mul_by_cofactor()
            .is_identity()
    }
}
