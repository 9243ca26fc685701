//! The lock agent: the lock's brain, `#![no_std]`, heap-free and sans-IO.
//!
//! * [`agent`]: the dispatch. SMP frames (`keyway-smp`) in, answers and
//!   events out; the authority matrix ([`agent::authority`]); pairing by
//!   PAKE with the setup code, sessions and sealed requests over the
//!   secure channel (`keyway-channel`); the presence window; per-peer
//!   limits. Its module doc explains the design.
//! * [`store`]: the lock's owner-facing persistent state — the owners
//!   (at most [`store::MAX_OWNERS`]), the consent record, the owner
//!   settings, the pairing verifier and the wrong-setup-code counter — in
//!   CRC-checked records on a ring of `NorFlash` sectors
//!   ([`keyway_ring`]). A power cut at any instant leaves the state from
//!   before or after the interrupted change, never a mix, never empty.
//! * [`policy`]: the update policy's decision — whether the owners'
//!   settings consent on their own to an update, and whether a consented
//!   one may be installed now or is [`policy::Postponed`] (battery below
//!   the manifest's minimum, bolt thrown) — and the battery model.
//! * [`limits`]: fixed-capacity limiters with time as an input: per-peer
//!   token buckets that a flooding peer cannot evict, the reset limiter,
//!   and the wrong-setup-code backoff.
//! * [`keypad`]: the keypad's PIN lockout (wrong PINs in a row lock it
//!   out, for a fixed or a doubling wait), shared by the lock firmware and
//!   the simulated lock.
//!
//! * `testing` (feature `test-util`, never in a lock's firmware): the test
//!   lock's sensors, firmware summary and clock, and a whole test lock
//!   (`TestLock`: hardware in memory and a shell serving the rest), that
//!   tests, fuzz targets and the on-target harness (firmware/qemu-agent)
//!   share.
//!
//! Nothing here reads a clock, a radio or a random source: the caller
//! passes the time (milliseconds of a monotonic clock, and the audit log's
//! [`Time`](keyway_audit::Time) for what is recorded) and the flash.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agent;
pub mod keypad;
pub mod limits;
pub mod policy;
pub mod store;
#[cfg(feature = "test-util")]
pub mod testing;
