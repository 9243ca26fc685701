//! Signed releases and the vendor key fixture: the vendor, class and
//! envelopes every host test signs, written once.
//!
//! Every release names [`VENDOR`] and [`CLASS`]; [`Vendor::new`] makes a
//! fresh Ed25519 vendor key, [`Vendor::trust`] the lock's trust that
//! anchors it, and [`Vendor::sign`] the envelope of any payload (with
//! [`EnvelopeBuilder`]'s other fields: notes, CVEs, a minimum battery,
//! `delta_from`).

use keyway_lock::device::Trust;
use keyway_suit::{PublicKey, TrustAnchors};
use keyway_vendor::encode::EnvelopeBuilder;
use keyway_vendor::keys::{Algorithm, SigningKey};

/// The vendor domain every test release names.
pub const VENDOR: &str = "locks.example";
/// The device class every test release names (the `deadbolt-2` model).
pub const CLASS: &str = "deadbolt-2";

/// `len` bytes of a test image, different for each `seed` (the sequence
/// number, by convention): byte `i` is `i * 31 + seed` (mod 256).
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed as usize)) as u8)
        .collect()
}

/// A vendor's signing key.
#[derive(Clone)]
pub struct Vendor {
    /// The Ed25519 key that signs the releases.
    pub key: SigningKey,
}

impl std::fmt::Debug for Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vendor").finish_non_exhaustive()
    }
}

impl Default for Vendor {
    fn default() -> Self {
        Vendor::new()
    }
}

impl Vendor {
    /// A fresh Ed25519 vendor key.
    pub fn new() -> Vendor {
        Vendor {
            key: SigningKey::generate(Algorithm::Ed25519).expect("an Ed25519 key"),
        }
    }

    /// The public key as SPKI PEM (a `vendor.pub` file).
    pub fn public_pem(&self) -> String {
        self.key
            .public_key()
            .to_spki_pem()
            .expect("a PEM public key")
    }

    /// A lock's trust that anchors this key (one signature required) for
    /// [`VENDOR`] / [`CLASS`].
    pub fn trust(&self) -> Trust {
        let public = PublicKey::from_raw(&self.key.raw_public_key_bytes()).expect("a raw key");
        Trust::new(
            TrustAnchors::new(&[public], 1).expect("one anchor"),
            VENDOR,
            CLASS,
        )
    }

    /// The envelope of `payload` as `version`/`sequence` for [`VENDOR`] /
    /// [`CLASS`], signed by this key; `more` sets the other fields (notes,
    /// CVEs, minimum battery, `delta_from`).
    pub fn sign(
        &self,
        version: &str,
        sequence: u64,
        payload: &[u8],
        more: EnvelopeBuilder,
    ) -> Vec<u8> {
        sign(&self.key, version, sequence, payload, more)
    }

    /// A full release of `len` bytes of [`payload`]`(len, sequence)`.
    pub fn release(&self, version: &str, sequence: u64, len: usize) -> Vec<u8> {
        self.sign(
            version,
            sequence,
            &payload(len, sequence),
            EnvelopeBuilder::default(),
        )
    }

    /// A release of `payload`: a delta from `from` if given.
    pub fn signed(
        &self,
        version: &str,
        sequence: u64,
        payload: &[u8],
        from: Option<&[u8]>,
    ) -> Vec<u8> {
        self.sign(
            version,
            sequence,
            payload,
            EnvelopeBuilder {
                delta_from: from.map(<[u8]>::to_vec),
                ..Default::default()
            },
        )
    }
}

/// The envelope of `payload` as `version`/`sequence` for [`VENDOR`] /
/// [`CLASS`], signed by `key`; `more` sets the other fields.
pub fn sign(
    key: &SigningKey,
    version: &str,
    sequence: u64,
    payload: &[u8],
    more: EnvelopeBuilder,
) -> Vec<u8> {
    EnvelopeBuilder {
        sequence,
        version: version.parse().expect("a semantic version"),
        vendor_domain: VENDOR.into(),
        class_name: CLASS.into(),
        payload: payload.to_vec(),
        keys: vec![key.clone()],
        ..more
    }
    .build()
    .expect("a signed envelope")
    .envelope
}

/// A full release of `len` bytes of [`payload`]`(len, sequence)`, signed by `key`.
pub fn release(key: &SigningKey, version: &str, sequence: u64, len: usize) -> Vec<u8> {
    sign(
        key,
        version,
        sequence,
        &payload(len, sequence),
        EnvelopeBuilder::default(),
    )
}

/// The factory image's payload in the house tests: release 1.0.0 at
/// sequence 1, `payload(FACTORY_LEN, 1)`.
pub fn factory_payload() -> Vec<u8> {
    payload(crate::pair::FACTORY_LEN, 1)
}

/// The 1.1.0 payload in the house tests: the factory's with ten bytes
/// changed (a small delta).
pub fn new_payload() -> Vec<u8> {
    let mut p = factory_payload();
    p[3000..3010].copy_from_slice(b"keyway 1.1");
    p
}
