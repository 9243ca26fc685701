//! Keyway's tamper-evident audit log: what a lock did, kept through every
//! outage and power cut, and checkable afterwards.
//!
//! `#![no_std]`, no heap, sans-IO: the time (RTC value and boot counter)
//! comes in as an argument, the flash through the `embedded-storage`
//! [`NorFlash`](embedded_storage::nor_flash::NorFlash) traits, and the
//! device key through the [`Signer`] trait.
//!
//! * [`event`]: the events with their typed fields and codes.
//! * [`record`]: the record format (FORMAT.md, "Audit log"), the hash
//!   chain and the signed message; [`Record::decode`] is what the host
//!   verifier uses too.
//! * [`log`]: [`AuditLog`], append-only records in a ring of flash pages,
//!   power-fail safe, with signed checkpoints before a page of records is
//!   erased; [`Export`], the chunked export ending in a signed head.
//! * [`sign`]: the [`Signer`] trait and (feature `ed25519`)
//!   [`Ed25519Signer`].

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod event;
pub mod log;
pub mod record;
pub mod sign;

pub use event::{Event, LockMethod, RejectReason, RevertReason, Version};
pub use log::{AuditLog, Config, ConfigError, Error, Export, FlashOp};
pub use record::{Body, DecodeError, Hash, Kind, Record, Signed, Time};
#[cfg(feature = "ed25519")]
pub use sign::Ed25519Signer;
pub use sign::Signer;
