//! Route A, today: Ed25519 by ed25519-compact; SPAKE2+ and the session's
//! ECDH on P-256 (`p256`), the way the `spake2plus` crate and
//! keyway-channel use it (SEC1 uncompressed, `PublicKey::from_sec1_bytes`).

use crate::{Inputs, Meter, ensure, hex};
use core::hint::black_box;
use p256::elliptic_curve::Group as _;
use p256::elliptic_curve::ff::FromUniformBytes;
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::{NonZeroScalar, ProjectivePoint, PublicKey, Scalar};

/// RFC 9383's `M` for P-256, SEC1 uncompressed.
const M: [u8; 65] = hex(
    "04886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f5ff355163e43ce224e0b0e65ff02ac8e5c7be09419c785e0ca547d55a12e2d20",
);

/// RFC 9383's `N` for P-256, SEC1 uncompressed.
const N: [u8; 65] = hex(
    "04d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b4907d60aa6bfade45008a636337f5168c64d9bd36034808cd564490b1e656edbe7",
);

fn reduce(wide: &[u8; 64]) -> Scalar {
    Scalar::from_uniform_bytes(black_box(wide))
}

/// Uncompressed only, on the curve (as `spake2plus`'s `Group::decode`).
fn decode(bytes: &[u8; 65]) -> Option<ProjectivePoint> {
    let bytes = black_box(bytes);
    if bytes[0] != 0x04 {
        return None;
    }
    PublicKey::from_sec1_bytes(bytes)
        .ok()
        .map(|k| k.to_projective())
}

fn encode(p: &ProjectivePoint) -> [u8; 65] {
    let e = p.to_sec1_point(false);
    let mut out = [0u8; 65];
    if let Ok(b) = <[u8; 65]>::try_from(e.as_bytes()) {
        out = b;
    }
    out
}

/// Runs every operation once (the timed ones under `m`); a digest byte.
pub fn run(inp: &Inputs, m: &mut Meter) -> u8 {
    // Ed25519 by ed25519-compact.
    let sig_bytes = crate::ed_compact::run(inp, m);

    // SPAKE2+ (RFC 9383, P256-SHA256): both roles.
    let g = ProjectivePoint::generator();
    let (Some(mp), Some(np)) = (decode(&M), decode(&N)) else {
        ensure(false, "M and N decode");
        return 0;
    };
    let w0 = reduce(&inp.w0);
    let w1 = reduce(&inp.w1);
    let l = encode(&(g * w1));
    let x = reduce(&inp.x);
    let y = reduce(&inp.y);
    let share_p = encode(&(g * x + mp * w0));
    // The verifier (the lock): its record (w0, L), shareP received.
    let (Some(xp), Some(lp)) = (decode(&share_p), decode(&l)) else {
        ensure(false, "shareP and L decode");
        return 0;
    };
    let share_v = encode(&(g * y + np * w0));
    let unmasked = xp - mp * w0;
    let mut z = ProjectivePoint::IDENTITY;
    m.measure("variable-base scalar mult", &mut || {
        z = black_box(unmasked) * black_box(y);
    });
    let z_v = encode(&z);
    let v_v = encode(&(lp * y));
    // The prover.
    let Some(yp) = decode(&share_v) else {
        ensure(false, "shareV decodes");
        return 0;
    };
    let unmasked = yp - np * w0;
    let z_p = encode(&(unmasked * x));
    let v_p = encode(&(unmasked * w1));
    ensure(
        z_v == z_p && v_v == v_p,
        "SPAKE2+: both roles derive Z and V",
    );

    // The session's ECDH, both sides.
    let a: Option<NonZeroScalar> = NonZeroScalar::new(reduce(&inp.dh_a)).into();
    let b: Option<NonZeroScalar> = NonZeroScalar::new(reduce(&inp.dh_b)).into();
    let (Some(a), Some(b)) = (a, b) else {
        ensure(false, "DH secrets");
        return 0;
    };
    let pub_a = encode(&(g * *a));
    let pub_b = encode(&(g * *b));
    let mut s_a = [0u8; 32];
    m.measure("DH one side", &mut || {
        if let Ok(peer) = PublicKey::from_sec1_bytes(black_box(&pub_b)) {
            s_a.copy_from_slice(p256::ecdh::diffie_hellman(a, peer.as_affine()).raw_secret_bytes());
        }
    });
    let mut s_b = [0u8; 32];
    if let Ok(peer) = PublicKey::from_sec1_bytes(black_box(&pub_a)) {
        s_b.copy_from_slice(p256::ecdh::diffie_hellman(b, peer.as_affine()).raw_secret_bytes());
    }
    ensure(s_a == s_b && s_a != [0; 32], "ECDH: both sides agree");
    sig_bytes[0] ^ z_v[1] ^ v_v[2] ^ s_a[0] ^ share_v[3]
}
