//! Route C: Ed25519 and X25519 by ed25519-compact (the crate the core
//! links today), SPAKE2+ on curve25519-dalek: two field implementations.

use crate::{Inputs, Meter, ensure, spake_dalek};
use core::hint::black_box;
use ed25519_compact::x25519;

fn half(wide: &[u8; 64]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&black_box(wide)[..32]);
    out
}

/// Runs every operation once (the timed ones under `m`); a digest byte.
pub fn run(inp: &Inputs, m: &mut Meter) -> u8 {
    let sig_bytes = crate::ed_compact::run(inp, m);

    let spake = spake_dalek::run(inp, m);

    let (a, b) = (
        x25519::SecretKey::new(half(&inp.dh_a)),
        x25519::SecretKey::new(half(&inp.dh_b)),
    );
    let (Ok(pub_a), Ok(pub_b)) = (a.recover_public_key(), b.recover_public_key()) else {
        ensure(false, "X25519 public keys");
        return 0;
    };
    let (pub_a, pub_b) = (black_box(*pub_a), black_box(*pub_b));
    let mut s_a = [0u8; 32];
    m.measure("DH one side", &mut || {
        if let Ok(s) = x25519::PublicKey::new(black_box(pub_b)).dh(&a) {
            s_a = *s;
        }
    });
    let s_b = match x25519::PublicKey::new(pub_a).dh(&b) {
        Ok(s) => *s,
        Err(_) => [1; 32],
    };
    ensure(s_a == s_b && s_a != [0; 32], "X25519: both sides agree");
    sig_bytes[0] ^ spake ^ s_a[0]
}
