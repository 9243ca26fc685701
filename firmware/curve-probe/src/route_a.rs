//! Route A, today: Ed25519 by ed25519-compact; SPAKE2+ and the session's
//! ECDH on P-256 (`p256`), the way the `spake2plus` crate and
//! keyway-channel use it (SEC1 uncompressed, `PublicKey::from_sec1_bytes`).

use crate::{Inputs, Meter, ensure};
use core::hint::black_box;
use p256::elliptic_curve::Group as _;
use p256::elliptic_curve::ff::FromUniformBytes;
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::{NonZeroScalar, ProjectivePoint, PublicKey, Scalar};

/// RFC 9383's `M` for P-256, SEC1 uncompressed.
const M: [u8; 65] = [
    0x04, 0x88, 0x6e, 0x2f, 0x97, 0xac, 0xe4, 0x6e, 0x55, 0xba, 0x9d, 0xd7, 0x24, 0x25, 0x79, 0xf2,
    0x99, 0x3b, 0x64, 0xe1, 0x6e, 0xf3, 0xdc, 0xab, 0x95, 0xaf, 0xd4, 0x97, 0x33, 0x3d, 0x8f, 0xa1,
    0x2f, 0x5f, 0xf3, 0x55, 0x16, 0x3e, 0x43, 0xce, 0x22, 0x4e, 0x0b, 0x0e, 0x65, 0xff, 0x02, 0xac,
    0x8e, 0x5c, 0x7b, 0xe0, 0x94, 0x19, 0xc7, 0x85, 0xe0, 0xca, 0x54, 0x7d, 0x55, 0xa1, 0x2e, 0x2d,
    0x20,
];

/// RFC 9383's `N` for P-256, SEC1 uncompressed.
const N: [u8; 65] = [
    0x04, 0xd8, 0xbb, 0xd6, 0xc6, 0x39, 0xc6, 0x29, 0x37, 0xb0, 0x4d, 0x99, 0x7f, 0x38, 0xc3, 0x77,
    0x07, 0x19, 0xc6, 0x29, 0xd7, 0x01, 0x4d, 0x49, 0xa2, 0x4b, 0x4f, 0x98, 0xba, 0xa1, 0x29, 0x2b,
    0x49, 0x07, 0xd6, 0x0a, 0xa6, 0xbf, 0xad, 0xe4, 0x50, 0x08, 0xa6, 0x36, 0x33, 0x7f, 0x51, 0x68,
    0xc6, 0x4d, 0x9b, 0xd3, 0x60, 0x34, 0x80, 0x8c, 0xd5, 0x64, 0x49, 0x0b, 0x1e, 0x65, 0x6e, 0xdb,
    0xe7,
];

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
