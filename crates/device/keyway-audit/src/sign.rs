//! The device key that signs checkpoints and export heads.

/// Signs with the device's own Ed25519 key (created when the lock is
/// provisioned). Implementations must be deterministic or use their own
/// randomness: the log never supplies any.
pub trait Signer {
    /// The 32-byte Ed25519 public key.
    fn public_key(&self) -> [u8; 32];
    /// An Ed25519 signature over `message`.
    fn sign(&self, message: &[u8]) -> [u8; 64];
}

impl<S: Signer + ?Sized> Signer for &S {
    fn public_key(&self) -> [u8; 32] {
        (**self).public_key()
    }
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        (**self).sign(message)
    }
}

/// The device key as an `ed25519-compact` key pair (with the `curve25519`
/// feature, an `ed25519-dalek` signing key): deterministic RFC 8032
/// signing, no RNG. Both give the same signatures.
#[cfg(feature = "ed25519")]
#[derive(Clone)]
pub struct Ed25519Signer {
    #[cfg(not(feature = "curve25519"))]
    key_pair: ed25519_compact::KeyPair,
    #[cfg(feature = "curve25519")]
    key: ed25519_dalek::SigningKey,
}

#[cfg(feature = "ed25519")]
impl Ed25519Signer {
    /// The key pair of a 32-byte seed (the RFC 8032 private key), or
    /// `None` for the all-zero seed, which ed25519-compact refuses (and
    /// the `curve25519` build refuses too, so both accept the same seeds).
    pub fn from_seed(seed: [u8; 32]) -> Option<Self> {
        #[cfg(not(feature = "curve25519"))]
        {
            let key_pair =
                ed25519_compact::KeyPair::try_from_seed(ed25519_compact::Seed::new(seed)).ok()?;
            Some(Self { key_pair })
        }
        #[cfg(feature = "curve25519")]
        {
            if seed == [0; 32] {
                return None;
            }
            Some(Self {
                key: ed25519_dalek::SigningKey::from_bytes(&seed),
            })
        }
    }
}

#[cfg(feature = "ed25519")]
impl core::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("key_id", &crate::record::key_id(&self.public_key()))
            .finish_non_exhaustive()
    }
}

#[cfg(all(feature = "ed25519", not(feature = "curve25519")))]
impl Signer for Ed25519Signer {
    fn public_key(&self) -> [u8; 32] {
        *self.key_pair.pk
    }
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        *self.key_pair.sk.sign(message, None)
    }
}

#[cfg(feature = "curve25519")]
impl Signer for Ed25519Signer {
    fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.key.sign(message).to_bytes()
    }
}

/// The signer gives RFC 8032's signatures (TEST 1 to 3, section 7.1) and
/// ed25519-compact's, on either backend: run with and without
/// `curve25519`.
#[cfg(all(test, feature = "ed25519"))]
mod tests {
    use super::*;

    fn h<const L: usize>(s: &str) -> [u8; L] {
        let mut out = [0u8; L];
        assert_eq!(s.len(), 2 * L);
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    #[test]
    fn rfc8032_signatures() {
        let vectors: [(&str, &str, &[u8], &str); 3] = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                b"",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                &[0x72],
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
            (
                "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
                "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
                &[0xaf, 0x82],
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
            ),
        ];
        for (seed, pk, msg, sig) in vectors {
            let signer = Ed25519Signer::from_seed(h(seed)).expect("seed");
            assert_eq!(signer.public_key(), h::<32>(pk));
            assert_eq!(signer.sign(msg), h::<64>(sig));
        }
    }

    #[test]
    fn the_same_signatures_as_ed25519_compact() {
        for k in 1u8..=8 {
            let seed = [k.wrapping_mul(37); 32];
            let signer = Ed25519Signer::from_seed(seed).expect("seed");
            let reference = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
            let message = [k; 100];
            assert_eq!(signer.public_key(), *reference.pk);
            assert_eq!(signer.sign(&message), *reference.sk.sign(message, None));
        }
        assert!(Ed25519Signer::from_seed([0; 32]).is_none());
    }
}
