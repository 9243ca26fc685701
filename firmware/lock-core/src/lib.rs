//! The lock firmware's logic, shared by `firmware/lock-app` (the lock
//! application run by `firmware/lock-boot`), the host's provisioner and
//! the on-target tests. `no_std`, no heap; hardware comes in through
//! traits (`embedded-storage`'s `NorFlash`) and as inputs (time in ms,
//! the CSPRNG, the sensors' readings, control lines).
//!
//! * [`map`]: the flash map, the RAM-load address and the factory record;
//! * [`lock`] (feature `agent`): `keyway-agent` with its `Device`: the
//!   upload (verified head, streamed payload), consent, boot and confirm,
//!   the audit log, the image state for stock MCUmgr tools;
//! * [`latch`] (feature `agent`): the keypad and bolt logic;
//! * [`control`]: the JSON-line control channel's parser and answers.
#![no_std]
#![warn(missing_docs)]

pub mod control;
#[cfg(feature = "agent")]
pub mod latch;
#[cfg(feature = "agent")]
pub mod lock;
pub mod map;
