//! A simulated NOR flash that enforces the rules of real parts, models their
//! timing, and loses power where a test tells it to.
//!
//! Keyway's installer, journal and bootloader are written against the
//! `embedded-storage` 0.3 [`NorFlash`](embedded_storage::nor_flash::NorFlash)
//! traits. On a lock those are the MCU's flash controller; in tests they are
//! [`SimFlash`], which behaves like the controller would, including when
//! the battery dies.
//!
//! # The model
//!
//! * **Geometry** ([`Geometry`]): a list of erase sectors from offset 0,
//!   uniform (nRF52840: 256 × 4 KiB) or mixed (STM32F4: 4 × 16 KiB,
//!   1 × 64 KiB, 7 × 128 KiB); a write size (a power of two, 1 to 32
//!   bytes); a read size; the erased value (0xFF, or 0x00 as on STM32L0/L1);
//!   how often a write unit may be programmed between erases (nRF52840: 2;
//!   ECC flash: 1); whether units carry ECC; and a time model (an erase time
//!   per sector, a program time per write unit). Presets:
//!   [`Geometry::nrf52840`], [`Geometry::stm32f4`], [`Geometry::small_pages`],
//!   [`Geometry::ecc32`]; any other part through [`Geometry::custom`] or
//!   [`GeometrySpec`].
//! * **Rules** ([`SimFlash`]): an erase covers whole sectors (a range that
//!   starts or ends inside a sector is refused, naming the sector); writes
//!   and reads are aligned in offset and length; a write may only move bits
//!   from the erased to the programmed state. Writing a unit's current value
//!   again, or programming more of its bits, is allowed as on real NOR (the
//!   STM32F4 reference manual allows successive writes that only clear
//!   bits), up to the part's writes-per-unit limit; on ECC flash any second
//!   write to a unit is refused, even of identical data, because its code
//!   was already written. A refused operation changes nothing and is not
//!   counted, and its [`Error`] says exactly what was violated.
//! * **Counters** ([`Stats`]): operations, erases per sector, bytes written
//!   and modeled busy time, all surviving power cycles.
//!
//! # Power cuts
//!
//! A [`PowerCut`] plan lists cut points by operation index (the 0-based
//! count of erase and write operations, [`SimFlash::ops`]; reads do not
//! count). A cut *before* operation N leaves the flash exactly as it was; a
//! cut *during* it leaves the operation half done:
//!
//! * a **torn write** ([`WriteTear`]) programmed only a prefix of its bytes,
//!   or a random subset of its units, with the unit in progress *partially
//!   programmed* (a random subset of the bits it had to program). A torn
//!   write never sets a bit the write itself could not have set;
//! * an **interrupted erase** ([`EraseTear`]) leaves the sector in progress
//!   with random contents, or partially erased (a random subset of its
//!   programmed bits back to erased); sectors before it in the same call
//!   are erased, sectors after it untouched, other sectors never change;
//! * on **ECC flash**, a word whose programming was interrupted (or whose
//!   sector's erase was) reads back as [`Error::Ecc`] until its sector is
//!   erased, as an STM32H7 raises a double-error fault.
//!
//! After a cut every operation, reads included, returns [`Error::PowerCut`]
//! until [`SimFlash::power_on`], which models a reboot: the contents stay,
//! the counters keep counting, and the plan's next cut can hit the recovery
//! itself (**nested cuts**). Every random choice comes from a ChaCha8 stream
//! keyed by the plan's seed and the operation index, so a failing scenario
//! is reproduced from `(seed, cut points)` alone. A sweep runs the scenario
//! once without cuts, reads [`SimFlash::ops`], and then cuts at every index.
//!
//! # Baseline
//!
//! MCUboot's simulator (`sim/` in the MCUboot repository) is the model this
//! follows: it runs an upgrade, counts the flash operations, then reruns it
//! with the power cut at every one of them, checking the device still boots.
//! Its cuts fall between operations. Keyway's adds what real brownouts
//! do inside them (torn writes, partial erases, ECC errors on torn words),
//! cuts during recovery, and a time and wear model per part.
//!
//! # Not modeled
//!
//! Read disturb, retention, endurance limits (erase counts are reported, not
//! enforced), erase suspend, dual-bank read-while-write, and the wait
//! states of reads. A file-backed flash is left to [`SimFlash::from_bytes`]
//! and [`SimFlash::as_bytes`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod fault;
mod flash;
mod geometry;

pub use error::{Error, OpKind};
pub use fault::{Cut, CutEvent, CutPoint, EraseTear, PowerCut, WriteTear};
pub use flash::{Ecc32Flash, Nrf52840Flash, SimFlash, SmallPagesFlash, Stats, Stm32f4Flash};
pub use geometry::{Geometry, GeometryError, GeometrySpec, MAX_WRITE_SIZE, Sector, SectorRun};
