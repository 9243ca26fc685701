//! `keyway-hub`: the home's update depot.
//!
//! The hub mirrors a vendor's releases while the internet is up (TUF, or
//! an offline bundle from a USB stick), and serves the house's locks over
//! their secure local channel when it is down. It shows the owner what
//! each update fixes and asks before anything installs. A compromised hub
//! can at most withhold updates: every lock verifies every envelope
//! itself, against anchors the hub cannot change.
//!
//! The crate is the hub's core and its store; the `keyway` command wires
//! it to the lock's client (`keyway device`'s), sockets and files.
//!
//! * [`model`]: what the hub knows (models and their anchors, releases,
//!   locks, consents, audit logs, rollouts, events, freshness), as typed
//!   values that the store keeps and the JSON API shows.
//! * [`store`]: the [`store::Store`] trait and its backends (SQLite, the
//!   embedded default; PostgreSQL for a fleet of hubs).
//! * [`link`]: the [`link::LockLink`] trait: what the hub asks of a lock
//!   over its secure channel, with typed answers and errors.
//! * [`mqtt`]: Home Assistant over MQTT discovery (an update and a lock
//!   entity per lock; install in Home Assistant is the owner's consent).

#![warn(missing_docs)]

pub mod api;
pub mod engine;
pub mod link;
pub mod model;
pub mod mqtt;
pub mod store;
pub mod web;
