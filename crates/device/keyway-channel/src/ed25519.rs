//! Ed25519 for the channel: the lock's device key and the owner's key sign
//! the SIGMA-I handshake; owner keys learnt at pairing are checked here.
//!
//! Signing is ed25519-dalek's [`SigningKey`] (deterministic RFC 8032, on
//! curve25519-dalek, the curve the rest of the channel uses: one field
//! implementation in the lock's flash).
//!
//! Verification is keyway-suit's (`keyway_suit::ed25519`, the one copy the
//! envelope verifier uses too), on curve25519-dalek's group, as two
//! single-scalar multiplications: `[8]([S]B - [k]A - R) = 0`, with `S`
//! canonical (`S < L`), `A` and `R` canonical encodings of points not of
//! small order and `k = SHA-512(R || A || M)` reduced modulo the group
//! order: the cofactored equation and the refusals of ed25519-compact
//! (which the lock used before) and of keyway-suit's verifier.
//! Reason for writing it by hand (in keyway-suit): the device's stack budget.
//! ed25519-dalek's own `verify` (a double-base multiplication with NAF
//! tables) needs 7.8–8.0 KB of stack on a Cortex-M4, this 3.9 KB, and
//! 1.2 KB less code (`scripts/curve-probe.sh`, route B vs B-split). It
//! costs about 4.0 M instructions instead of 2.1 M, once per handshake.

pub use ed25519_dalek::SigningKey;

/// The raw public key of `key`.
pub fn public_key(key: &SigningKey) -> [u8; 32] {
    key.verifying_key().to_bytes()
}

/// Whether `key` is an Ed25519 public key the channel accepts: the
/// canonical encoding of a curve point not of small order.
pub fn valid_public_key(key: &[u8; 32]) -> bool {
    point(key).is_some()
}

/// A canonical encoding of a curve point not of small order.
fn point(bytes: &[u8; 32]) -> Option<curve25519_dalek::edwards::EdwardsPoint> {
    keyway_suit::ed25519::point(bytes)
}

/// What signs the owner's side of a handshake
/// ([`ClientHandshake::msg2`](crate::ClientHandshake::msg2)): an Ed25519
/// key, as a [`SigningKey`] or a key held elsewhere (a phone's keystore).
pub trait OwnerSigner {
    /// The raw Ed25519 public key the lock paired.
    fn public_key(&self) -> [u8; 32];
    /// The RFC 8032 signature of `message`.
    fn sign(&self, message: &[u8]) -> [u8; 64];
}

impl OwnerSigner for SigningKey {
    fn public_key(&self) -> [u8; 32] {
        public_key(self)
    }
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        sign(self, message)
    }
}

/// RFC 8032 signature of `message` by `key`.
pub(crate) fn sign(key: &SigningKey, message: &[u8]) -> [u8; 64] {
    ed25519_dalek::Signer::sign(key, message).to_bytes()
}

/// Whether `signature` is `public_key`'s over `message` (see the module doc).
#[inline(never)]
pub fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    keyway_suit::ed25519::verify(public_key, message, signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<const L: usize>(s: &str) -> [u8; L] {
        let mut out = [0u8; L];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    /// RFC 8032, section 7.1: TEST 1 (empty message) and TEST 2 (one byte).
    #[test]
    fn rfc8032_vectors() {
        for (seed, pk, msg, sig) in [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                &[][..],
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                &[0x72][..],
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
        ] {
            let key = SigningKey::from_bytes(&h(seed));
            assert_eq!(public_key(&key), h::<32>(pk));
            let sig: [u8; 64] = h(sig);
            assert_eq!(sign(&key, msg), sig);
            assert!(verify(&h(pk), msg, &sig));
            assert!(!verify(&h(pk), b"another message", &sig));
            let mut flipped = sig;
            flipped[3] ^= 1;
            assert!(!verify(&h(pk), msg, &flipped));
            assert!(!verify(&h(pk), msg, &sig[..63]));
        }
    }

    /// `S + L` verifies under a bare equation; it is refused.
    #[test]
    fn non_canonical_s_is_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let pk = public_key(&key);
        let sig = sign(&key, b"m");
        assert!(verify(&pk, b"m", &sig));
        // L, little-endian.
        let l: [u8; 32] = h("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
        let mut s = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(sig[32 + i]) + u16::from(l[i]) + carry;
            s[i] = v as u8;
            carry = v >> 8;
        }
        let mut forged = sig;
        forged[32..].copy_from_slice(&s);
        assert!(!verify(&pk, b"m", &forged));
    }

    /// The identity as key with `R` = identity and `S` = 0 satisfies the
    /// equation for every message; small-order keys are refused.
    #[test]
    fn small_order_keys_are_refused() {
        let identity: [u8; 32] =
            h("0100000000000000000000000000000000000000000000000000000000000000");
        let order2: [u8; 32] =
            h("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        let mut forgery = [0u8; 64];
        forgery[..32].copy_from_slice(&identity);
        for key in [identity, order2] {
            assert!(!valid_public_key(&key));
            assert!(!verify(&key, b"anything", &forgery));
        }
        // A non-canonical encoding (y = p + 1 for y = 1) and a y off the curve.
        let non_canonical: [u8; 32] =
            h("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        assert!(!valid_public_key(&non_canonical));
        assert!(valid_public_key(&public_key(&SigningKey::from_bytes(
            &[1; 32]
        ))));
    }
}
