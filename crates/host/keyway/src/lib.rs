//! Keyway host tooling: the vendor side of offline-first secure firmware
//! updates for smart locks.
//!
//! * [`keys`]: Ed25519 / ECDSA P-256 key generation, PEM loading, key ids.
//! * [`encode`]: builds signed SUIT envelopes and key-set documents exactly
//!   as FORMAT.md specifies, plus the lower-level pieces tests need to craft
//!   malformed ones.
//! * [`cbor`]: `ciborium::Value` plus the `ValueExt` helpers used by the
//!   encoder and tests.
//! * [`check`]: `keyway verify` / `inspect`, around the device verifier.
//! * [`describe`]: the verifier's errors as sentences (the device's own
//!   `Display` is terse).
//! * [`demo`]: `keyway demo`, the main job end to end.
//! * [`flashsim`]: `keyway flash-sim`, an update on a simulated NOR flash
//!   with the lock's real installer and bootloader.
//! * [`log`]: `keyway log verify` / `show`, the audit-log verifier.
//! * [`cli`]: the `keyway` command line.

#![warn(missing_docs)]

pub mod cbor;
pub mod check;
pub mod cli;
pub mod delta;
pub mod demo;
pub mod describe;
pub mod encode;
pub mod flashsim;
pub mod keys;
pub mod log;

/// CBOR label constants, shared with the device verifier.
pub use keyway_suit::labels;
