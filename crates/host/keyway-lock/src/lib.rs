//! `keyway-lock`: a simulated Keyway smart lock. The real device core of
//! `keyway-device` (installer, journal, bootloader, `VerifiedSlot`) runs on
//! a file-backed simulated nRF52840 flash (`keyway-sim`) in direct A/B
//! mode, managed over SMP (MCUmgr) on UDP, so MCUmgr tools (`smpmgr`,
//! `smpclient`) can update it.
//!
//! The lock's brain is `keyway-agent` (no_std): authority, pairing with
//! the setup code, sessions, owners, consent and settings. This crate is
//! the shell around it and the device core it drives.
//!
//! * [`smp`]: the SMP framing, bounded and panic-free.
//! * [`agent_shell`]: the lock around `keyway-agent` (its `Device`
//!   over the device core, its store's flash, its events).
//! * [`server`]: the device core's SMP side: it serves what the agent
//!   authorized (OS group echo, parameters, info; image group state
//!   read and write, upload, erase; the Keyway group's notes and log
//!   export) and holds the update's state and the presence window the
//!   control socket shows. It has no gate of its own: every frame goes
//!   through the agent.
//! * [`keyway_group`]: the Keyway SMP group (64) commands the device core
//!   serves: notes and the log export (and the in-process status report).
//! * [`owners`]: the owners' update settings the policy reads.
//! * [`peers`]: who is asking (the transport's peer).
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
pub mod control;
pub mod device;
pub mod keyway_group;
pub mod lock;
pub mod owners;
pub mod peers;
pub mod policy;
pub mod profile;
pub mod serial;
pub mod server;
pub mod shell;
/// The SMP framing, shared with the owner's client in `keyway device`.
pub use keyway_vendor::smp;
pub mod state;
pub mod suit;
