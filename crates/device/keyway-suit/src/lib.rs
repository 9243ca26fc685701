//! # keyway-suit
//!
//! The part of a Keyway lock that decides whether an update is genuine.
//! `#![no_std]`, no heap, no clock, no I/O: bytes and the device's stored
//! trust state go in; a [`Verified`] manifest or an [`Error`] that names
//! what failed comes out.
//!
//! It decodes IETF SUIT envelopes (draft-ietf-suit-manifest-37) with the
//! update-management extensions (draft-ietf-suit-update-management), and
//! checks, in order:
//!
//! 1. the key set carried by the envelope, if any, against the immutable
//!    root anchors and the stored key-set version ([`KeySet`]);
//! 2. the COSE_Sign1 signatures over the manifest digest, counted as a
//!    k-of-n threshold over distinct, unrevoked keys;
//! 3. anti-rollback against the stored sequence floor;
//! 4. the severed members (release notes, install, payload fetch):
//!    each one the manifest binds by digest must be in the envelope and
//!    match, and each one in the envelope must be bound;
//! 5. the command sequences: vendor and class identity now, battery,
//!    consent and use-before collected as [`PolicyConditions`];
//! 6. that the integrated payload has the size the manifest declares.
//!
//! The payload itself streams through [`PayloadVerifier`].
//!
//! ```no_run
//! use keyway_suit::*;
//! # fn f(envelope: &[u8], root: PublicKey, vendor: [u8; 16], class: [u8; 16]) -> Result<(), Error> {
//! let anchors = TrustAnchors::new(&[root], 1)?;
//! let verified = verify_envelope(envelope, &anchors, &DeviceIdentity::new(vendor, class), &DeviceState::new(0))?;
//! let mut payload = PayloadVerifier::new(verified.payload.as_ref().ok_or(Error::NoPayloadExpectation)?);
//! for chunk in verified.integrated_payload().unwrap_or(&[]).chunks(512) {
//!     payload.update(chunk)?;
//! }
//! payload.finish()?;
//! verified.manifest.policy.check(&PolicyInputs { now: Some(1_700_000_000), battery_mwh: 900, consent: true })?;
//! # Ok(()) }
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auth;
mod cbor;
pub mod envelope;
mod error;
mod keys;
mod keyset;
pub mod labels;
mod manifest;
mod payload;
mod text;
mod verify;

pub use auth::{MAX_SIGNATURES, SignatureInfo, Signers};
pub use envelope::{Envelope, IntegratedPayload};
pub use error::{Error, Limit, Part, SUPPORTED_ALGORITHMS};
pub use keys::{Algorithm, KeyId, KeyList, MAX_KEYS, PublicKey, TrustAnchors};
pub use keyset::{KeySet, MAX_REVOKED};
pub use manifest::{
    Component, DeltaBinding, DeltaSources, DeviceIdentity, ImageExpectation, MAX_COMPONENTS,
    MAX_NESTING, Manifest, Member, Params, PolicyConditions, PolicyInputs, UpdateAuthorization,
    Version,
};
pub use payload::{PayloadVerifier, verify_payload};
pub use text::{Cve, MAX_CVES, ReleaseNotes, Severity, is_cve_id};
pub use verify::{
    DeviceState, Inspected, Verified, inspect_envelope, inspect_envelope_with, verify_envelope,
    verify_envelope_into,
};

#[cfg(test)]
mod sizes {
    /// Prints the sizes of the values a device keeps on its stack (host
    /// sizes; the on-target figures come from firmware/qemu-verify), and
    /// keeps the zero-copy layout from regressing.
    #[test]
    fn type_sizes() {
        use core::mem::size_of;
        extern crate std;
        let sizes = [
            ("PublicKey", size_of::<crate::PublicKey>()),
            ("TrustAnchors", size_of::<crate::TrustAnchors>()),
            ("KeySet", size_of::<crate::KeySet>()),
            ("DeviceState", size_of::<crate::DeviceState>()),
            ("Params", size_of::<crate::Params<'static>>()),
            ("Component", size_of::<crate::Component<'static>>()),
            ("Manifest", size_of::<crate::Manifest<'static>>()),
            ("Verified", size_of::<crate::Verified<'static>>()),
            ("Envelope", size_of::<crate::Envelope<'static>>()),
            ("Error", size_of::<crate::Error>()),
        ];
        for (name, size) in sizes {
            std::println!("size_of {name}: {size} bytes");
        }
        // Digests and UUIDs are borrowed from the envelope, not copied.
        assert!(size_of::<crate::ImageExpectation<'static>>() <= 48);
        assert!(size_of::<crate::Component<'static>>() <= 256);
    }
}
