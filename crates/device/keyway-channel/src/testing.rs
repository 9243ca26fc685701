//! Test doubles for the channel's clients (feature `test-util`; no
//! firmware enables it), shared by this crate's tests and the agent's.

use crate::ed25519::{OwnerSigner, SigningKey};

/// A signer that names one public key and signs with another key: a
/// forged proof of the `claimed` owner.
pub struct Forger {
    /// The public key the forger names (a paired owner's).
    pub claimed: [u8; 32],
    /// The key it actually signs with.
    pub key: SigningKey,
}

impl OwnerSigner for Forger {
    fn public_key(&self) -> [u8; 32] {
        self.claimed
    }
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        OwnerSigner::sign(&self.key, message)
    }
}
