//! SPAKE2+ group operations on edwards25519 with curve25519-dalek
//! (RFC 9383's edwards25519 suites: `M`, `N` from RFC 9382, cofactor 8),
//! shared by routes B and C.

use crate::{Inputs, Meter, ensure, hex};
use core::hint::black_box;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;

/// RFC 9382's `M` for edwards25519 (RFC 8032 encoding).
const M: [u8; 32] = hex("d048032c6ea0b6d697ddc2e86bda85a33adac920f1bf18e1b0c6d166a5cecdaf");

/// RFC 9382's `N` for edwards25519.
const N: [u8; 32] = hex("d3bfb518f44f3430f29d0c92af503865a1ed3281dc69b35dd868ba85f886c4ab");

fn reduce(wide: &[u8; 64]) -> Scalar {
    Scalar::from_bytes_mod_order_wide(black_box(wide))
}

/// On the curve, canonical, not of small order.
fn decode(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    let p = CompressedEdwardsY(*black_box(bytes)).decompress()?;
    if p.is_small_order() { None } else { Some(p) }
}

fn encode(p: &EdwardsPoint) -> [u8; 32] {
    p.compress().to_bytes()
}

/// Both roles of a run; a digest byte.
pub fn run(inp: &Inputs, m: &mut Meter) -> u8 {
    let (Some(mp), Some(np)) = (decode(&M), decode(&N)) else {
        ensure(false, "M and N decode");
        return 0;
    };
    let w0 = reduce(&inp.w0);
    let w1 = reduce(&inp.w1);
    let l = encode(&EdwardsPoint::mul_base(&w1));
    let x = reduce(&inp.x);
    let y = reduce(&inp.y);
    let share_p = encode(&(EdwardsPoint::mul_base(&x) + mp * w0));
    // The verifier (the lock).
    let (Some(xp), Some(lp)) = (decode(&share_p), decode(&l)) else {
        ensure(false, "shareP and L decode");
        return 0;
    };
    let share_v = encode(&(EdwardsPoint::mul_base(&y) + np * w0));
    let unmasked = xp - mp * w0;
    let mut z = EdwardsPoint::identity();
    m.measure("variable-base scalar mult", &mut || {
        z = black_box(unmasked) * black_box(y);
    });
    let z_v = encode(&z.mul_by_cofactor());
    let v_v = encode(&(lp * y).mul_by_cofactor());
    // The prover.
    let Some(yp) = decode(&share_v) else {
        ensure(false, "shareV decodes");
        return 0;
    };
    let unmasked = yp - np * w0;
    let z_p = encode(&(unmasked * x).mul_by_cofactor());
    let v_p = encode(&(unmasked * w1).mul_by_cofactor());
    ensure(
        z_v == z_p && v_v == v_p,
        "SPAKE2+: both roles derive Z and V",
    );
    ensure(
        z_v != encode(&EdwardsPoint::identity()),
        "Z is not the identity",
    );
    z_v[1] ^ v_v[2] ^ share_v[3]
}
