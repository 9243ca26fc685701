//! The lock firmware's logic, shared by `firmware/lock-app` (the lock
//! application run by `firmware/lock-boot`), the host's provisioner and
//! the on-target tests (`firmware/qemu-core` measures the [`lock`] module
//! on its own flash map, without the feature `image-state`). `no_std`, no heap; hardware comes in through
//! traits (`embedded-storage`'s `NorFlash`) and as inputs (time in ms,
//! the CSPRNG, the sensors' readings, control lines).
//!
//! * [`map`]: the flash map ([`map::FlashMap`], the application's
//!   [`map::LOCK_MAP`]), the RAM-load address and the factory record;
//! * [`lock`] (feature `agent`): `keyway-agent` with its `Device`: the
//!   upload (verified head, streamed payload), consent, boot and confirm,
//!   the audit log, the image state for stock MCUmgr tools (feature
//!   `image-state`, default);
//! * [`latch`] (feature `agent`): the keypad and bolt logic;
//! * [`control`]: the JSON-line control channel's parser and answers;
//! * `mem_flash` (feature `mem-flash`): the flash in host memory, for the
//!   provisioner and the tests.
#![no_std]
#![warn(missing_docs)]

pub mod control;
#[cfg(feature = "agent")]
pub mod latch;
#[cfg(feature = "agent")]
pub mod lock;
pub mod map;
#[cfg(any(test, feature = "mem-flash"))]
pub mod mem_flash;
