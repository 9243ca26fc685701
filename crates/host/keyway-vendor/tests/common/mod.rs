//! What the verifier tests (attacks.rs, conformance.rs, interop.rs)
//! share: the vendor and device class their releases name, the vendor's
//! roots and the lock that trusts them, key-set documents, the trusted
//! time and a release's payload.
#![allow(dead_code)]

use keyway_suit as suit;
use keyway_vendor::encode::{KeySetBuilder, KeySetParams, SignOptions, class_uuid, vendor_uuid};
use keyway_vendor::keys::{Algorithm, SigningKey};

/// The trusted time the locks check use-before against.
pub const NOW: u64 = 1_800_000_000;
/// The vendor the releases name.
pub const VENDOR: &str = "locks.example";
/// The device class the releases name.
pub const CLASS: &str = "deadbolt-2";

/// `k`'s public key as a lock stores it.
pub fn device_key(k: &SigningKey) -> suit::PublicKey {
    suit::PublicKey::from_raw(&k.raw_public_key_bytes()).unwrap()
}

/// A vendor's two new root keys, an Ed25519 and a P-256 one, and a lock
/// of [`VENDOR`]'s [`CLASS`] (no slot given) that trusts them.
pub struct Vendor {
    /// The Ed25519 root.
    pub root: SigningKey,
    /// The P-256 root.
    pub p256: SigningKey,
    /// The lock's anchors: both roots, one signature required.
    pub anchors: suit::TrustAnchors,
    /// The lock's identity.
    pub identity: suit::DeviceIdentity,
}

impl Vendor {
    /// New roots and the lock that trusts them.
    pub fn new() -> Vendor {
        let root = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let p256 = SigningKey::generate(Algorithm::P256).unwrap();
        let anchors = suit::TrustAnchors::new(&[device_key(&root), device_key(&p256)], 1).unwrap();
        let v = vendor_uuid(VENDOR);
        Vendor {
            root,
            p256,
            anchors,
            identity: suit::DeviceIdentity::new(v, class_uuid(&v, CLASS)),
        }
    }
}

/// A release's firmware: 40,000 bytes that do not repeat.
pub fn payload() -> Vec<u8> {
    (0..40_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// A key-set document signed by `roots` (default signing options).
pub fn keyset_signed_by(
    roots: &[&SigningKey],
    version: u64,
    threshold: u64,
    signers: &[&SigningKey],
    revoked: &[&SigningKey],
) -> Vec<u8> {
    KeySetBuilder {
        roots: roots.iter().map(|k| (*k).clone()).collect(),
        keyset: KeySetParams {
            version,
            threshold,
            signers: signers.iter().map(|k| k.public_key()).collect(),
            revoked: revoked.iter().map(|k| k.key_id()).collect(),
        },
        sign_options: SignOptions::default(),
    }
    .build()
    .unwrap()
}
