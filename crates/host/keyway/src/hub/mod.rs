//! `keyway hub`: the home's update depot, wired to files, sockets and
//! signals. The hub's decisions live in `keyway-hub` (its engine, store
//! and API); this module runs them.
//!
//! * [`cli`]: `keyway hub serve|import|demo` (and plain `keyway hub`).
//! * [`demo`]: the demo house: simulated locks, a local vendor TUF
//!   repository on loopback, and a hub that manages them.
//! * [`fleet`]: simulated locks in bulk (the demo house's doors, the
//!   1,000-lock scale run).

pub mod cli;
pub mod demo;
pub mod fleet;
