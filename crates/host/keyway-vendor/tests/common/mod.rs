//! What the verifier tests (attacks.rs, conformance.rs) share: the
//! vendor and device class their releases name, the lock's view of them,
//! the vendor's roots, the trusted time and a release's payload.
#![allow(dead_code)]

use keyway_suit as suit;
use keyway_vendor::encode::{class_uuid, vendor_uuid};
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

/// A vendor's two new root keys, an Ed25519 and a P-256 one, and the
/// anchors of a lock that trusts them, one signature required.
pub fn roots() -> (SigningKey, SigningKey, suit::TrustAnchors) {
    let ed25519 = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let p256 = SigningKey::generate(Algorithm::P256).unwrap();
    let anchors = suit::TrustAnchors::new(&[device_key(&ed25519), device_key(&p256)], 1).unwrap();
    (ed25519, p256, anchors)
}

/// The identity of a lock of [`VENDOR`]'s [`CLASS`] (no slot given).
pub fn identity() -> suit::DeviceIdentity {
    let v = vendor_uuid(VENDOR);
    suit::DeviceIdentity::new(v, class_uuid(&v, CLASS))
}

/// A release's firmware: 40,000 bytes that do not repeat.
pub fn payload() -> Vec<u8> {
    (0..40_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}
