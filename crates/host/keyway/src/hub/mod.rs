//! `keyway hub`: the home's update depot, the parts that live in the
//! `keyway` command (the hub's core, its store and its engine are the
//! `keyway-hub` crate).
//!
//! * [`link`]: the hub's [`keyway_hub::link::LockLink`] over `keyway
//!   device`'s client: SMP over UDP in the owner's sealed session, with
//!   the hub's own owner key ([`link::HubIdentity`]). Like `src/device`,
//!   it reaches a lock only through the protocol, never the simulated
//!   lock's crate (`tests/layering.rs`).

pub mod link;

// h-house: `pub mod cli;`, `pub mod demo;`, `pub mod fleet;` go here.
