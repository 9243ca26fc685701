//! Ed25519 by ed25519-compact, as routes A and C link it: the device key
//! signs, a verifier checks (key and signature from bytes; then
//! keyway-suit's way, the key validated and the message streamed), and a
//! flipped message is refused.

use crate::{Inputs, Meter, ensure};
use core::hint::black_box;
use ed25519_compact::{KeyPair, PublicKey as EdPublicKey, Seed, Signature};

/// Signs and verifies (the timed steps under `m`); the signature.
pub fn run(inp: &Inputs, m: &mut Meter) -> [u8; 64] {
    let kp = KeyPair::from_seed(Seed::new(black_box(inp.seed)));
    let msg = black_box(&inp.msg);
    let mut sig_bytes = [0u8; 64];
    m.measure("ed25519 sign", &mut || {
        sig_bytes = *kp.sk.sign(msg, None);
    });
    let pk = black_box(*kp.pk);
    let mut ok = false;
    m.measure("ed25519 verify", &mut || {
        ok = match EdPublicKey::from_slice(&pk) {
            Ok(pk) => pk
                .verify(msg, &Signature::new(black_box(sig_bytes)))
                .is_ok(),
            Err(_) => false,
        };
    });
    ensure(ok, "the signature verifies");
    // keyway-suit's way: the key validated, the message streamed.
    let mut streamed = false;
    m.measure("ed25519 verify, streamed", &mut || {
        let pk = EdPublicKey::new(pk);
        streamed = pk.validate().is_ok()
            && match pk.verify_incremental(&Signature::new(black_box(sig_bytes))) {
                Ok(mut st) => {
                    st.absorb(&msg[..20]);
                    st.absorb(&msg[20..]);
                    st.verify().is_ok()
                }
                Err(_) => false,
            };
    });
    ensure(streamed, "the signature verifies, streamed");
    let mut flipped = *msg;
    flipped[0] ^= 1;
    let refused = EdPublicKey::new(pk)
        .verify(black_box(flipped), &Signature::new(sig_bytes))
        .is_err();
    ensure(refused, "a flipped message is refused");
    sig_bytes
}
