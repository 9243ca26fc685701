//! Shared fixtures for the keyway-lock tests: a vendor key and the trust
//! that anchors it, signed releases, and SMP body helpers.
#![allow(dead_code)]

use ciborium::Value;
use keyway::encode::EnvelopeBuilder;
use keyway::keys::{Algorithm, SigningKey};
use keyway_lock::device::Trust;
use keyway_lock::smp;
use keyway_suit::{PublicKey, TrustAnchors};

/// The vendor domain every test release names.
pub const VENDOR: &str = "locks.example";
/// The device class every test release names.
pub const CLASS: &str = "deadbolt-2";

/// An SMP body.
pub type Map = Vec<(Value, Value)>;

/// A CBOR text string.
pub fn t(s: &str) -> Value {
    Value::Text(s.into())
}

/// The top-level `rc` of an answer, if any.
pub fn rc(m: &Map) -> Option<u64> {
    smp::get_u64(m, "rc").unwrap()
}

/// A fresh Ed25519 vendor key and a lock's trust that anchors it (one
/// signature required) for [`VENDOR`] / [`CLASS`].
pub fn vendor() -> (SigningKey, Trust) {
    let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let public = PublicKey::from_raw(&key.raw_public_key_bytes()).unwrap();
    let trust = Trust::new(TrustAnchors::new(&[public], 1).unwrap(), VENDOR, CLASS);
    (key, trust)
}

/// The envelope of `payload` as `version`/`sequence` for [`VENDOR`] /
/// [`CLASS`], signed by `key`; `more` sets the other fields (notes, CVEs,
/// minimum battery, `delta_from`).
pub fn sign(
    key: &SigningKey,
    version: &str,
    sequence: u64,
    payload: Vec<u8>,
    more: EnvelopeBuilder,
) -> Vec<u8> {
    EnvelopeBuilder {
        sequence,
        version: version.parse().unwrap(),
        vendor_domain: VENDOR.into(),
        class_name: CLASS.into(),
        payload,
        keys: vec![key.clone()],
        ..more
    }
    .build()
    .unwrap()
    .envelope
}
