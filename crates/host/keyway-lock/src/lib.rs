//! `keyway-lock`: a simulated Keyway smart lock. The real device core of
//! `keyway-device` (installer, journal, bootloader, `VerifiedSlot`) runs on
//! a file-backed simulated nRF52840 flash (`keyway-sim`) in direct A/B
//! mode, managed over SMP (MCUmgr) on UDP, so MCUmgr tools (`smpmgr`,
//! `smpclient`) can update it.
//!
//! * [`smp`]: the SMP framing, bounded and panic-free.
//! * [`agent_shell`]: the lock around `keyway-agent` (its `Device`
//!   over the device core, its store's flash, its events).
//! * [`server`]: the sans-IO SMP server (`handle(frame, now) -> frame`):
//!   OS group (echo, reset, parameters, info), image group (state read and
//!   write, upload, erase), the physical-presence gate.
//! * [`authority`]: who may do what, one table checked before every
//!   command.
//! * [`keyway_group`]: the Keyway SMP group (64): status, lock, unlock,
//!   presence, notes, consent, log, challenge, pair, factory reset,
//!   settings.
//! * [`owners`]: owners, settings, challenge nonces and owner
//!   authentication, sans-IO.
//! * [`peers`]: who is asking (the transport's peer), the per-peer
//!   challenge nonces and request limits, sans-IO, fixed capacity.
//! * [`policy`]: the update policy (consent, battery, bolt) and the lock
//!   models with their battery models, sans-IO.
//! * [`profile`]: deliberately flawed locks (`--profile`) for `keyway audit`.
//! * [`device`]: the lock's device side over the simulated flash, with
//!   the audit log.
//! * [`lock`]: the lock's behaviour (bolt, keypad, auto-relock, sensors),
//!   sans-IO.
//! * [`state`]: the state directory (flash image, anchors, identity,
//!   device key, PIN, boot counter).
//! * [`shell`]: the sockets, files, clock and threads around the server;
//!   `main.rs` and in-process users (the demo, tests) start a lock with it.
//! * [`control`]: the line-delimited JSON control socket (the lock's
//!   button, keypad and sensors, the audit-log export).

#![warn(missing_docs)]

pub mod agent_shell;
pub mod authority;
pub mod control;
pub mod device;
pub mod keyway_group;
pub mod lock;
pub mod owners;
pub mod peers;
pub mod policy;
pub mod profile;
pub mod server;
pub mod shell;
/// The SMP framing, shared with the owner's client in `keyway device`.
pub use keyway::smp;
pub mod state;
pub mod suit;
