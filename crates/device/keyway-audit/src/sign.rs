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

/// The device key as an `ed25519-compact` key pair: deterministic RFC 8032
/// signing, no RNG.
#[cfg(feature = "ed25519")]
#[derive(Clone)]
pub struct Ed25519Signer {
    key_pair: ed25519_compact::KeyPair,
}

#[cfg(feature = "ed25519")]
impl Ed25519Signer {
    /// The key pair of a 32-byte seed (the RFC 8032 private key), or
    /// `None` for the all-zero seed, which ed25519-compact refuses.
    pub fn from_seed(seed: [u8; 32]) -> Option<Self> {
        let key_pair =
            ed25519_compact::KeyPair::try_from_seed(ed25519_compact::Seed::new(seed)).ok()?;
        Some(Self { key_pair })
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

#[cfg(feature = "ed25519")]
impl Signer for Ed25519Signer {
    fn public_key(&self) -> [u8; 32] {
        *self.key_pair.pk
    }
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        *self.key_pair.sk.sign(message, None)
    }
}
