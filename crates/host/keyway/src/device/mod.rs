//! `keyway device`: the owner's client for a lock over SMP.
//!
//! * [`transport`]: UDP (timeouts, bounded resends with the same sequence
//!   number, answers matched by sequence number) and an in-memory peer.
//! * [`client`]: typed calls (OS, image and Keyway groups), owner
//!   authentication, refusals as sentences.
//! * [`cli`]: the `keyway device` subcommands.

pub mod cli;
pub mod client;
pub mod transport;

pub use client::{Client, DeviceError, ImageSlot, OwnerInfo, UploadReport};
pub use transport::{FnTransport, Stats, Transport, TransportError, UDP_MTU, UdpTransport};
