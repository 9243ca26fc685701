//! Keyway's shared test fixtures, after `rustls-test` and quinn-proto's
//! `tests/util.rs`: one place for what the test suites of several crates
//! would otherwise each write again.
//!
//! - [`files`]: a directory's entry names, sorted.
//! - [`geometry`]: the flash parts the power-cut sweeps iterate (MCUboot's
//!   `sim_test!` rows), with one test per part through [`per_geometry!`].
//! - `release` (feature `host`, on by default): the vendor key fixture and
//!   signed releases.
//! - `pair` (feature `host`): an in-memory client-lock pair with a fake
//!   clock, after quinn-proto's `Pair`.
//!
//! This crate is dev-only (`publish = false`). It depends on the crates it
//! serves; they take it only as a dev-dependency, so only their integration
//! tests (`tests/*.rs`) use it, never their `#[cfg(test)]` unit tests (those
//! would see a second copy of the crate's types).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod files;
pub mod geometry;
#[cfg(feature = "host")]
pub mod pair;
#[cfg(feature = "host")]
pub mod release;
