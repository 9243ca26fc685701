//! `keyway device`: the owner's client for a lock over SMP.
//!
//! * [`transport`]: UDP (timeouts, bounded resends with the same sequence
//!   number, answers matched by sequence number) and an in-memory peer.
//! * [`serial`]: SMP over a serial port (`serial:PATH`), and the
//!   transport a `--target` names.
//! * [`client`]: typed calls (OS, image and Keyway groups), owner
//!   authentication, refusals as sentences.
//! * [`paired`]: the owner's record of the locks it paired with by setup
//!   code (their device keys), beside the owner key.
//! * [`cli`]: the `keyway device` subcommands.

pub mod cli;
pub mod client;
pub mod paired;
pub mod serial;
pub mod transport;

pub use client::{
    ChannelCounts, Client, Clock, DeviceError, ImageSlot, OwnerInfo, PairingReport, UploadReport,
};
pub use paired::{PairedLockRecord, PairedLocks, locks_path};
pub use serial::{SerialTransport, TargetTransport};
pub use transport::{FnTransport, Stats, Transport, TransportError, UDP_MTU, UdpTransport};
