//! Keyway's tamper-evident audit log: what a lock did, kept through every
//! outage and power cut, and checkable afterwards.
//!
//! `#![no_std]`, no heap, sans-IO: the time (RTC value and boot counter)
//! comes in as an argument, the flash through the `embedded-storage`
//! [`NorFlash`](embedded_storage::nor_flash::NorFlash) traits, and the
//! device key through the [`Signer`] trait.
//!
//! * [`event`]: the events with their typed fields and codes.
//! * [`record`]: the record format (FORMAT.md, "Audit log"), the hash
//!   chain and the signed message; [`Record::decode`] is what the host
//!   verifier uses too.
//! * [`log`]: [`AuditLog`], append-only records in a ring of flash pages,
//!   power-fail safe, with signed checkpoints before a page of records is
//!   erased; [`Export`], the chunked export ending in a signed head.
//! * [`sign`]: the [`Signer`] trait and (feature `ed25519`)
//!   [`Ed25519Signer`].
//!
//! # The audit log
//!
//! ```text
//! lock event ──▶ AuditLog::append(flash, signer, Time{rtc, boot}, &Event)
//!                  ├─ page full?  erase the next (oldest) page unless it reads erased, move there
//!                  ├─ starting a page whose successor holds records and no checkpoint covers it?
//!                  │     write Checkpoint{head, count, retained, key id, Ed25519 sig}   (one write)
//!                  └─ write the event record: seq, time, prev = SHA-256(last record), body, CRC   (one write)
//! owner/installer ──▶ AuditLog::export(time) → Export::fill(buf) … chunks … → signed ExportHead
//! host ──▶ keyway log verify FILE --device-key DEVICE.pub  (walk prev-hashes back from the signed head)
//! ```
//!
//! Design decisions and why:
//!
//! - **Own ring, not `sequential-storage`.** sequential-storage (checked on
//!   docs.rs, 7.x/8.x) is a well-tested power-fail-safe queue on NorFlash, but
//!   its API is async only (`pub async fn push`, over `embedded-storage-async`
//!   `NorFlash`), and this core is sync and executor-free like the state
//!   journal and the bootloader that share the flash. Its queue code also
//!   uses `MultiwriteNorFlash` (flash that allows programming a word twice),
//!   which an ECC part like the `ecc32` model (each 32-byte word programmed once
//!   per erase) does not offer; and `push(…, allow_overwrite_old_data: true)`
//!   drops the oldest page itself, with no point at which a signed checkpoint
//!   could be written first. A sync wrapper would need an executor shim, and the
//!   checkpoint rule would still have to be enforced around it. The ring here
//!   reuses the state journal's proven pattern (fixed slots, one write per
//!   record, CRC, scan on open): about 700 lines with the export and docs, no heap, no
//!   `unsafe`, and the issue's cost rule (one program of the record's size per
//!   append) holds by construction.
//! - **Record = one write, fixed-stride slots.** The stride is the longest
//!   record (140 bytes) rounded up to the write and read sizes; a record is
//!   programmed once, padded to the write size only (64–80 bytes for events on
//!   the nRF52840), into a slot that reads erased, and a slot is never written
//!   twice between erases: a torn record fails its CRC (or reads as an ECC
//!   error) and is skipped; its sequence number is reused by the next append,
//!   so the chain has no hole.
//! - **Checkpoints are written when a page is started, not in a slot reserved
//!   at its end.** The issue suggests appending the checkpoint just before the
//!   erase, in room reserved in the current page. A power cut tearing that one
//!   reserved slot would leave the page to erase with no durable checkpoint and
//!   no room to retry (or would need several reserved slots, and still fail
//!   after as many cuts). Instead, when the log starts a page whose successor
//!   (the next page to be erased) holds valid records, the first append writes
//!   the checkpoint for that future erase first; if it is torn, the next append
//!   writes it again in the next slot, so any number of cuts is survived while
//!   slots remain (asserted by the sweep's nested cuts). Its `retained` is the
//!   first record of the page after the victim. The price: from the moment the
//!   checkpoint is written, the oldest page may legitimately be missing, i.e.
//!   the verifier accepts a log whose oldest page was erased up to one page
//!   (28 events on the nRF52840) before the ring needed it. An attacker who can
//!   erase the lock's flash could drop those early; but one who can make the
//!   lock log events (a wrong PIN, a lock/unlock) can rotate them out anyway,
//!   which any ring log allows. A page therefore holds 29 slots (nRF52840), one
//!   of them a checkpoint once the ring has wrapped.
//! - **The export head signs the first exported record too** (its `retained`
//!   field), not only the head hash and count: deleting records from the start
//!   of an *export* is then detected even within what the checkpoints allow,
//!   while the checkpoint rule still catches records erased on the device
//!   beyond what was rotated out by design.
//! - **The verifier walks the chain backwards from the signed head** by hash
//!   (a map from record hash to record), instead of reading the file forwards:
//!   the records the device key vouches for are exactly the ones reached, so a
//!   record is *modified* (another record has its sequence number but not its
//!   hash), *deleted* (no record has it; the walk resumes at the next older
//!   one, so every break is reported), *truncated* (the break is at the head),
//!   *out of order* (authenticated, but out of sequence in the file), or
//!   *inserted* (never reached). The device crate provides the pure `decode`;
//!   judgement and prose live on the host, as for the verifier's errors.
//! - **Sans-IO:** time (RTC and boot counter) is an argument; the device key
//!   is a `Signer` (an HSM or secure element can implement it); the export
//!   fills caller buffers of any size (for SMP's chunked transfers) with about
//!   270 bytes of state. Measured on the Cortex-M4 (`scripts/qemu-audit.sh`,
//!   BENCHMARKS.md): an event append needs 1.1 KB of stack, an append or
//!   export chunk that signs needs 3.6 KB (ed25519-dalek's signer), and the
//!   crate adds 26 KB of code with its hashes and signer.
//! - **Limits:** the log must not be appended to while an export is in
//!   progress (an erase during it drops records from the export, which the
//!   verifier then reports); sequence numbers end at `u32::MAX - 1`
//!   (`Error::SequenceExhausted`); a page must hold at least 3 slots.
//! - **Dependencies** (all already in the workspace): `embedded-storage` 0.3
//!   (sync `NorFlash`), `crc` 3 (the journal's CRC-32), `sha2` 0.11 (the
//!   chain), `ed25519-dalek` 3 behind the default `curve25519` feature
//!   (deterministic RFC 8032 signing with no RNG, on the curve25519-dalek the
//!   rest of the lock core uses; `ed25519` alone selects ed25519-compact, for
//!   comparison). No `heapless`: every buffer is a fixed array.
//!   The host verifies with `ed25519-dalek` (`keys.rs`), so every CLI test is
//!   also an interoperability test of the two implementations.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod event;
pub mod log;
pub mod record;
pub mod sign;

pub use event::{Event, LockMethod, RejectReason, RevertReason, Version};
pub use log::{AuditLog, Config, ConfigError, Error, Export, FlashOp};
pub use record::{Body, DecodeError, Hash, Kind, Record, Signed, Time};
#[cfg(feature = "ed25519")]
pub use sign::Ed25519Signer;
pub use sign::Signer;
