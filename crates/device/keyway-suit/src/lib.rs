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
//!
//! # Wire format
//!
//! FORMAT.md gives every structure byte by byte. Keyway is a profile of
//! draft-ietf-suit-manifest-37 with draft-ietf-suit-update-management-13:
//! standard labels everywhere, and private extensions chosen so they cannot
//! collide with the drafts' registries: envelope member `-19287` (a root-signed
//! key set), text key `"keyway-fixed-cves"` (a text key, where SUIT uses
//! integers), and for delta releases the custom command and parameter `-257`
//! (`keyway-directive-apply-delta`, `keyway-parameter-delta-base`, in the
//! ranges §8.4.11 and §8.4.8.16 reserve for a processor's author; FORMAT.md
//! "Delta manifest"). Every digest of an embedded item covers the bstr-wrapped item, as
//! the draft's examples do (checked against example0–5).
//!
//! # Bounds (every length is bounded)
//!
//! | What | Bound | Where |
//! |---|---|---|
//! | signatures per wrapper | 8 (`MAX_SIGNATURES`) | `auth.rs` |
//! | keys per anchor set / key set | 8 (`MAX_KEYS`) | `keys.rs` |
//! | revoked ids per key set | 16 (`MAX_REVOKED`) | `keyset.rs` |
//! | components | 4 (`MAX_COMPONENTS`) | `manifest.rs` |
//! | try-each / run-sequence nesting | 3 (`MAX_NESTING`) | `manifest.rs` |
//! | CVEs per release | 32 (`MAX_CVES`) | `text.rs` |
//! | COSE protected header | 64 bytes | `auth.rs` |
//! | envelope members | 64 | `cbor.rs` |
//! | any array/map length | the bytes left in the input | `cbor.rs` |
//! | byte/text strings | the bytes left | `cbor.rs` |
//!
//! Skipping unknown items is iterative (a counter, no recursion), so hostile
//! nesting cannot exhaust the stack. Arrays and maps must have definite lengths.
//!
//! # Cargo features of `keyway-suit`
//!
//! `ed25519` and `es256` (both default) select the signature algorithms;
//! `curve25519` (default) puts Ed25519 on curve25519-dalek's group (the lock
//! core's backend; without it, `ed25519` alone uses ed25519-compact, kept for
//! comparison). keyway-device's own `ed25519` feature selects both. A lock
//! product enables the algorithm its vendor signs with; the other algorithm's code,
//! key variant and dependency are then not compiled, and its signatures are
//! refused with `UnsupportedAlgorithm`. The host tools build both. `delta` (default) adds the delta manifest (the
//! apply-delta command and delta-base parameter, `Verified::delta`); without
//! it such a manifest is refused as an unsupported command, as a lock that
//! cannot apply patches must. `keyway-device` enables it (its `DeltaInstaller`
//! needs the binding). It cost 644 B of Cortex-M4 code on the ed25519-compact verifier (40,868 B
//! without it, 41,512 B with it; BENCHMARKS.md). keyway-device has a `delta`
//! feature too (default: `DeltaInstaller` and delta manifests in
//! `VerifiedSlot`); a lock that takes only full images builds it with
//! `default-features = false`, as `firmware/qemu-core` does.
//!
//! # Errors
//!
//! The device returns `keyway_suit::Error`: an enum whose variants carry the
//! data that names what failed (`Rollback { floor, got }`,
//! `BelowThreshold { valid, required, unknown: Option<KeyId>, revoked, keyset }`,
//! `Malformed { part, offset, expected }`, …), 24 bytes on a Cortex-M4. Its
//! `Display` is terse but keeps the data (`rollback: seq 5 <= floor 7`), for a
//! lock's log. The host renders full sentences with `keyway_vendor::describe::describe`
//! ("rollback: sequence number 5 is not above the device's floor 7"), and
//! `keyway verify` prefixes the check that failed (`anti-rollback check
//! failed: …`). Keeping the prose on the host saved 2.2 KB of the device's
//! 40 KiB code budget.
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
/// Ed25519 verification on curve25519-dalek's group (feature
/// `curve25519`), for the other device crates that verify Ed25519 on the
/// same curve (keyway-channel's SIGMA-I handshake): one copy in a lock's
/// flash.
#[cfg(all(feature = "ed25519", feature = "curve25519"))]
pub use keys::ed25519_group as ed25519;
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
