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
//! * [`flashsim`]: `keyway flash-sim`, an update on a simulated NOR flash
//!   with the lock's real installer and bootloader.
//! * [`log`]: `keyway log verify` / `show`, the audit-log verifier.
//! * [`smp`]: SMP (MCUmgr) framing, for the lock's server and the owner's
//!   client.

#![warn(missing_docs)]

pub mod cbor;
pub mod check;
pub mod delta;
pub mod describe;
pub mod encode;
pub mod flashsim;
pub mod keys;
pub mod log;
pub mod smp;

/// CBOR label constants, shared with the device verifier.
pub use keyway_suit::labels;
