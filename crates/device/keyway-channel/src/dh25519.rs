//! X25519 (RFC 7748) for the session handshake of a curve25519-only lock
//! core: the ephemeral Diffie-Hellman that replaces
//! P-256 ECDH, on curve25519-dalek's Montgomery ladder (the same field
//! arithmetic as [`crate::pake25519`] and the Ed25519 code).
//!
//! Keys are 32 bytes (instead of P-256's 65). A peer key of small order
//! gives the all-zero shared secret, which [`shared`] refuses (RFC 7748,
//! section 6.1), so an attacker cannot force a known key.

use curve25519_dalek::montgomery::MontgomeryPoint;

use crate::Error;

/// An X25519 public key or shared secret.
pub const KEY_LEN: usize = 32;

/// The public key of `secret` (clamped as RFC 7748 says).
pub fn public_key(secret: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    MontgomeryPoint::mul_base_clamped(*secret).to_bytes()
}

/// The shared secret with `peer`; [`Error::InvalidPoint`] when it is all
/// zero (a peer key of small order).
pub fn shared(secret: &[u8; KEY_LEN], peer: &[u8; KEY_LEN]) -> Result<[u8; KEY_LEN], Error> {
    let s = MontgomeryPoint(*peer).mul_clamped(*secret).to_bytes();
    // Every byte inspected (no early exit on the secret's bytes).
    if s.iter().fold(0u8, |acc, b| acc | b) == 0 {
        return Err(Error::InvalidPoint);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    /// RFC 7748, section 5.2, the first single-step vector.
    #[test]
    fn rfc7748_single_step() {
        let k = h("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
        let u = h("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
        assert_eq!(
            shared(&k, &u),
            Ok(h(
                "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
            ))
        );
    }

    /// RFC 7748, section 5.2: the loop `k, u = X25519(k, u), k` from
    /// `k = u = 9`, after 1 and 1,000 iterations.
    #[test]
    fn rfc7748_iterations() {
        let mut k = [0u8; 32];
        k[0] = 9;
        let mut u = k;
        for i in 1..=1000 {
            let r = shared(&k, &u).expect("not zero");
            u = k;
            k = r;
            if i == 1 {
                assert_eq!(
                    k,
                    h("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")
                );
            }
        }
        assert_eq!(
            k,
            h("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51")
        );
    }

    /// RFC 7748, section 6.1: Alice's and Bob's keys and their secret.
    #[test]
    fn rfc7748_diffie_hellman() {
        let a = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let b = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        let pa = public_key(&a);
        let pb = public_key(&b);
        assert_eq!(
            pa,
            h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            pb,
            h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let k = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(shared(&a, &pb), Ok(k));
        assert_eq!(shared(&b, &pa), Ok(k));
    }

    /// Peer keys of small order (u = 0, u = 1, and the order-8 point
    /// 0xe0eb...) give the all-zero secret: refused.
    #[test]
    fn small_order_peer_keys_are_refused() {
        let secret = [0x42u8; 32];
        let mut one = [0u8; 32];
        one[0] = 1;
        let order8 = h("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800");
        for peer in [[0u8; 32], one, order8] {
            assert_eq!(shared(&secret, &peer), Err(Error::InvalidPoint));
        }
    }
}
