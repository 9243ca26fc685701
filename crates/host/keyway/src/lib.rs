//! The `keyway` command. The host library it drives is `keyway-vendor`
//! (`keyway_vendor`); this crate holds the command line and the
//! parts that run a lock: the demo.
//!
//! * [`cli`]: the `keyway` command line.
//! * [`demo`]: `keyway demo`, the main job end to end.
//! * [`audit`]: `keyway audit`, the router-unplugged conformance run.
//! * [`device`]: `keyway device`, the owner's SMP client for a lock.
//! * [`hub`]: `keyway hub`, the home's update depot: its commands, the
//!   demo house, the fleet of simulated locks it is measured on, and the
//!   link to a lock over `keyway device`'s client.
//! * [`lab`]: a simulated lock run in-process for `keyway audit
//!   --lock-state`. Only the demo side (`demo`, `lab`) links the simulated
//!   lock (`keyway-lock`); `audit` and `device` reach locks through SMP and
//!   the control socket (`tests/layering.rs`).
//! * [`publish`]: `keyway publish`, the vendor's TUF repository.
//! * [`terminal`]: the one sanitizer for text from a lock or a file
//!   before it is printed (controls and bidi overrides escaped).
//! * [`tuf_client`]: `keyway tuf-client`, the hub's TUF client behind
//!   tuf-conformance's client CLI.

#![warn(missing_docs)]

pub mod audit;
pub mod cli;
pub mod demo;
pub mod device;
pub mod hub;
pub mod lab;
pub mod publish;
pub mod terminal;
pub mod tuf_client;
