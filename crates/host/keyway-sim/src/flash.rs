//! [`SimFlash`]: the flash image, its rules, counters and power state.

use std::time::Duration;

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::error::{Error, OpKind};
use crate::fault::{Cut, CutEvent, EraseTear, PowerCut, WriteTear};
use crate::geometry::{Geometry, GeometryError};

/// Wear and time counters of a [`SimFlash`]. They survive power cycles;
/// [`SimFlash::reset_stats`] zeroes them (to measure one phase alone).
///
/// An operation interrupted by a cut is charged for what it began: every
/// sector whose erase started counts one erase and its full erase time,
/// every write unit whose programming started counts its bytes and its
/// program time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Erase and write operations begun (reads and refused operations are
    /// not counted; an operation cut *before* it ran is not counted).
    pub ops: u64,
    /// Write operations begun.
    pub write_ops: u64,
    /// Erase operations begun (one per call, however many sectors it covers).
    pub erase_ops: u64,
    /// Bytes whose programming began (whole write units).
    pub bytes_written: u64,
    /// Bytes read through [`SimFlash::read`] (the `ReadNorFlash` path).
    /// Reads through [`SimFlash::peek`] are counted by
    /// [`SimFlash::bytes_read`].
    pub bytes_read: u64,
    /// Erases begun per sector, indexed like [`Geometry::sectors`].
    pub sector_erases: Vec<u32>,
    /// Modeled busy time: erase times plus program times.
    pub modeled_time: Duration,
    /// How many times [`SimFlash::power_on`] restored power.
    pub power_cycles: u64,
}

/// A NOR flash in memory that enforces the rules of real parts and can lose
/// power in the middle of any operation. See the crate documentation for
/// the model.
///
/// The const parameters are what the `embedded-storage` traits expose:
/// `WRITE` = `WRITE_SIZE`, `ERASE` = `ERASE_SIZE` (the smallest sector; on
/// mixed geometries every erase must still cover whole real sectors, which
/// the runtime sector map enforces), `READ` = `READ_SIZE` (1 unless the
/// geometry says otherwise). [`SimFlash::new`] refuses a geometry they do
/// not match. The aliases [`Nrf52840Flash`], [`Stm32f4Flash`],
/// [`SmallPagesFlash`] and [`Ecc32Flash`] fit the presets.
#[derive(Clone, Debug)]
pub struct SimFlash<const WRITE: usize, const ERASE: usize, const READ: usize = 1> {
    geometry: Geometry,
    data: Vec<u8>,
    /// Programs per write unit since its sector's last complete erase (saturating).
    writes: Vec<u8>,
    /// Per write unit: its ECC does not match its data (ECC geometries only).
    ecc_bad: Vec<bool>,
    powered: bool,
    plan: PowerCut,
    cut_log: Vec<CutEvent>,
    stats: Stats,
    /// Bytes borrowed through [`SimFlash::peek`] (a `&self` read).
    peeked: core::cell::Cell<u64>,
}

/// The nRF52840 preset: 4-byte writes, 4 KiB pages.
pub type Nrf52840Flash = SimFlash<4, 4096>;
/// The STM32F4 preset: 4-byte writes, 16/64/128 KiB sectors (`ERASE_SIZE` 16 KiB).
pub type Stm32f4Flash = SimFlash<4, 16384>;
/// The small-pages preset: 1-byte writes, 512-byte pages.
pub type SmallPagesFlash = SimFlash<1, 512>;
/// The ECC preset: 32-byte writes, 128 KiB sectors.
pub type Ecc32Flash = SimFlash<32, 131072>;

/// `impl Alias { pub fn name() -> Self }`: an erased flash with
/// `Geometry::name`, for each preset alias.
macro_rules! preset_constructors {
    ($($alias:ident::$name:ident),* $(,)?) => {$(
        impl $alias {
            #[doc = concat!("An erased flash with [`Geometry::", stringify!($name), "`].")]
            pub fn $name() -> Self {
                Self::new(Geometry::$name()).expect("alias fits its preset")
            }
        }
    )*};
}

preset_constructors!(
    Nrf52840Flash::nrf52840,
    Stm32f4Flash::stm32f4,
    SmallPagesFlash::small_pages,
    Ecc32Flash::ecc32,
);

/// Bits that are programmed in `byte` (1 = programmed) for this erased value.
fn programmed(byte: u8, erased: u8) -> u8 {
    byte ^ erased
}

/// A uniform draw from `0..n` (`n > 0`).
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

impl<const WRITE: usize, const ERASE: usize, const READ: usize> SimFlash<WRITE, ERASE, READ> {
    /// A fully erased flash of this geometry, powered on, with no power
    /// cuts planned. Fails if the const parameters do not fit the geometry.
    pub fn new(geometry: Geometry) -> Result<Self, GeometryError> {
        let erased = vec![geometry.erased_value(); geometry.capacity() as usize];
        Self::from_bytes(geometry, erased)
    }

    /// A flash holding `image` (for example one saved with
    /// [`SimFlash::as_bytes`]; a file-backed flash would start here). Write
    /// units holding anything but the erased value count as programmed once,
    /// so an ECC geometry refuses to program them again before an erase.
    pub fn from_bytes(geometry: Geometry, image: Vec<u8>) -> Result<Self, GeometryError> {
        let fits = WRITE == geometry.write_size()
            && READ == geometry.read_size()
            && ERASE == geometry.min_sector_size() as usize
            && geometry
                .sectors()
                .iter()
                .all(|s| (s.size as usize).is_multiple_of(ERASE));
        if !fits {
            return Err(GeometryError::ConstMismatch {
                name: geometry.name().to_owned(),
                write: WRITE,
                erase: ERASE,
                read: READ,
                g_write: geometry.write_size(),
                g_erase: geometry.min_sector_size(),
                g_read: geometry.read_size(),
            });
        }
        if image.len() != geometry.capacity() as usize {
            return Err(GeometryError::ImageSize {
                expected: geometry.capacity(),
                got: image.len(),
            });
        }
        let erased = geometry.erased_value();
        let writes = image
            .chunks_exact(WRITE)
            .map(|u| u8::from(u.iter().any(|&b| b != erased)))
            .collect::<Vec<_>>();
        let units = writes.len();
        Ok(Self {
            stats: Stats {
                sector_erases: vec![0; geometry.sectors().len()],
                ..Stats::default()
            },
            geometry,
            data: image,
            writes,
            ecc_bad: vec![false; units],
            powered: true,
            plan: PowerCut::default(),
            cut_log: Vec::new(),
            peeked: core::cell::Cell::new(0),
        })
    }

    /// The flash contents, readable whatever the power state (a test's view
    /// of the chip on a bench, not the device's).
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The flash contents, consuming the simulator.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// The geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Replaces the power-cut plan (cuts already fired stay in [`SimFlash::cut_log`]).
    pub fn set_power_cut(&mut self, plan: PowerCut) {
        self.plan = plan;
    }

    /// Builder form of [`SimFlash::set_power_cut`].
    pub fn with_power_cut(mut self, plan: PowerCut) -> Self {
        self.plan = plan;
        self
    }

    /// The cuts still to come.
    pub fn power_cut(&self) -> &PowerCut {
        &self.plan
    }

    /// Every cut that has fired, in order.
    pub fn cut_log(&self) -> &[CutEvent] {
        &self.cut_log
    }

    /// Cuts the power now, between operations.
    pub fn power_off(&mut self) {
        self.powered = false;
    }

    /// Restores power: a reboot. The contents, counters and remaining plan
    /// are kept; operations work again.
    pub fn power_on(&mut self) {
        if !self.powered {
            self.powered = true;
            self.stats.power_cycles += 1;
        }
    }

    /// Whether power is on.
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// Erase and write operations begun so far. A dry run of a scenario
    /// reads this to learn how many cut points an exhaustive sweep has.
    pub fn ops(&self) -> u64 {
        self.stats.ops
    }

    /// All counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Bytes read so far, through [`SimFlash::read`] and
    /// [`SimFlash::peek`] alike: how a host shell that reads an image
    /// more often than it must shows up in a test.
    pub fn bytes_read(&self) -> u64 {
        self.stats.bytes_read + self.peeked.get()
    }

    /// Borrows `len` bytes at `at` without copying (a memory-mapped read,
    /// as an MCU reads its internal flash), counted in
    /// [`SimFlash::bytes_read`]. `None` if the range is outside the flash.
    /// Unlike [`SimFlash::read`] it ignores power and ECC state: it is
    /// for the simulator's shells, not for code under a power-cut test.
    pub fn peek(&self, at: usize, len: usize) -> Option<&[u8]> {
        let b = self.data.get(at..at.checked_add(len)?)?;
        self.peeked.set(self.peeked.get() + len as u64);
        Some(b)
    }

    /// Zeroes the counters (not the contents, the plan or the op index a
    /// plan refers to: [`SimFlash::ops`] keeps counting so plans stay valid).
    pub fn reset_stats(&mut self) {
        let ops = self.stats.ops;
        self.stats = Stats {
            ops,
            sector_erases: vec![0; self.geometry.sectors().len()],
            ..Stats::default()
        };
    }

    /// Erases begun on sector `index` (0 past the end).
    pub fn erase_count(&self, index: usize) -> u32 {
        self.stats.sector_erases.get(index).copied().unwrap_or(0)
    }

    /// Erases begun per sector.
    pub fn erase_counts(&self) -> &[u32] {
        &self.stats.sector_erases
    }

    /// The largest per-sector erase count.
    pub fn max_erase_count(&self) -> u32 {
        self.stats.sector_erases.iter().copied().max().unwrap_or(0)
    }

    /// Bytes whose programming began.
    pub fn bytes_written(&self) -> u64 {
        self.stats.bytes_written
    }

    /// Modeled busy time so far.
    pub fn modeled_time(&self) -> Duration {
        self.stats.modeled_time
    }

    /// How many times the write unit holding `offset` was programmed since
    /// its sector was last erased (saturates at 255).
    pub fn writes_at(&self, offset: u32) -> u8 {
        self.writes
            .get(offset as usize / WRITE)
            .copied()
            .unwrap_or(0)
    }

    /// Whether the write unit holding `offset` would read as an ECC error.
    pub fn ecc_error_at(&self, offset: u32) -> bool {
        self.ecc_bad
            .get(offset as usize / WRITE)
            .copied()
            .unwrap_or(false)
    }

    fn check_range(&self, op: OpKind, offset: u32, len: usize, unit: usize) -> Result<(), Error> {
        let capacity = self.geometry.capacity();
        if u64::from(offset) + len as u64 > u64::from(capacity) {
            return Err(Error::OutOfBounds {
                op,
                offset,
                len,
                capacity,
            });
        }
        if !(offset as usize).is_multiple_of(unit) {
            return Err(Error::OffsetNotAligned { op, offset, unit });
        }
        if !len.is_multiple_of(unit) {
            return Err(Error::LengthNotAligned {
                op,
                offset,
                len,
                unit,
            });
        }
        Ok(())
    }

    /// Reads `bytes.len()` bytes at `offset`. Offset and length must be
    /// multiples of the read size. On an ECC geometry, a range touching a
    /// word whose programming was interrupted fails with [`Error::Ecc`].
    pub fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Error> {
        if !self.powered {
            return Err(Error::PowerCut);
        }
        self.check_range(OpKind::Read, offset, bytes.len(), READ)?;
        let start = offset as usize;
        let end = start + bytes.len();
        if self.geometry.ecc() && !bytes.is_empty() {
            for unit in start / WRITE..end.div_ceil(WRITE) {
                if self.ecc_bad[unit] {
                    return Err(Error::Ecc {
                        offset: (unit * WRITE) as u32,
                        unit: WRITE,
                    });
                }
            }
        }
        bytes.copy_from_slice(&self.data[start..end]);
        self.stats.bytes_read += bytes.len() as u64;
        Ok(())
    }

    /// Programs `bytes` at `offset`. Offset and length must be multiples of
    /// the write size, and every bit the write asks to be erased must still
    /// be erased: a write may repeat a unit's value or program more of its
    /// bits, up to the geometry's writes-per-unit limit (ECC: one write per
    /// erase, even of identical data). An empty write does nothing and is
    /// not counted. A refused write changes nothing.
    pub fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Error> {
        if !self.powered {
            return Err(Error::PowerCut);
        }
        self.check_range(OpKind::Write, offset, bytes.len(), WRITE)?;
        if bytes.is_empty() {
            return Ok(());
        }
        let start = offset as usize;
        let erased = self.geometry.erased_value();
        let limit = self.geometry.max_writes_per_unit();
        for (i, chunk) in bytes.chunks_exact(WRITE).enumerate() {
            let unit = start / WRITE + i;
            if let Some(limit) = limit
                && self.writes[unit] >= limit
            {
                return Err(Error::TooManyWrites {
                    offset: (unit * WRITE) as u32,
                    unit: WRITE,
                    attempt: u32::from(self.writes[unit]) + 1,
                    limit,
                });
            }
            for (j, &wanted) in chunk.iter().enumerate() {
                let at = unit * WRITE + j;
                let existing = self.data[at];
                if programmed(existing, erased) & !programmed(wanted, erased) != 0 {
                    return Err(Error::NotErased {
                        offset: at as u32,
                        existing,
                        wanted,
                        erased,
                    });
                }
            }
        }

        let op = self.stats.ops;
        match self.plan.take_if_due(op).map(|c| c.cut) {
            Some(Cut::Before) => {
                self.log_cut(op, Cut::Before, OpKind::Write, offset, bytes.len());
                self.powered = false;
                Err(Error::PowerCut)
            }
            Some(cut @ Cut::During { write, .. }) => {
                self.log_cut(op, cut, OpKind::Write, offset, bytes.len());
                self.stats.ops += 1;
                self.stats.write_ops += 1;
                let mut rng = self.rng(op);
                self.tear_write(&mut rng, start, bytes, write);
                self.powered = false;
                Err(Error::PowerCut)
            }
            None => {
                self.stats.ops += 1;
                self.stats.write_ops += 1;
                self.data[start..start + bytes.len()].copy_from_slice(bytes);
                for unit in start / WRITE..(start + bytes.len()) / WRITE {
                    self.begin_unit(unit);
                }
                Ok(())
            }
        }
    }

    /// Erases the sectors covering `from..to`, which must start and end on
    /// sector boundaries of the real (possibly mixed) sector map. An empty
    /// range does nothing and is not counted. One call is one operation,
    /// however many sectors it covers.
    pub fn erase(&mut self, from: u32, to: u32) -> Result<(), Error> {
        if !self.powered {
            return Err(Error::PowerCut);
        }
        if from > to {
            return Err(Error::EraseReversed { from, to });
        }
        let capacity = self.geometry.capacity();
        if to > capacity {
            return Err(Error::OutOfBounds {
                op: OpKind::Erase,
                offset: from,
                len: (to - from) as usize,
                capacity,
            });
        }
        if from == to {
            return Ok(());
        }
        let first = *self
            .geometry
            .sector_at(from)
            .expect("from < to <= capacity");
        if first.start != from {
            return Err(Error::PartialSector {
                from,
                to,
                sector: first.index,
                start: first.start,
                end: first.end(),
            });
        }
        let last_index = match self.geometry.sector_at(to) {
            None => self.geometry.sectors().len() - 1,
            Some(s) if s.start == to => s.index - 1,
            Some(s) => {
                return Err(Error::PartialSector {
                    from,
                    to,
                    sector: s.index,
                    start: s.start,
                    end: s.end(),
                });
            }
        };
        let sectors = first.index..=last_index;

        let op = self.stats.ops;
        let len = (to - from) as usize;
        match self.plan.take_if_due(op).map(|c| c.cut) {
            Some(Cut::Before) => {
                self.log_cut(op, Cut::Before, OpKind::Erase, from, len);
                self.powered = false;
                Err(Error::PowerCut)
            }
            Some(cut @ Cut::During { erase, .. }) => {
                self.log_cut(op, cut, OpKind::Erase, from, len);
                self.stats.ops += 1;
                self.stats.erase_ops += 1;
                let mut rng = self.rng(op);
                let count = (last_index - first.index + 1) as u64;
                let torn = first.index + below(&mut rng, count) as usize;
                for s in first.index..torn {
                    self.erase_sector(s);
                }
                self.tear_sector(&mut rng, torn, erase);
                self.powered = false;
                Err(Error::PowerCut)
            }
            None => {
                self.stats.ops += 1;
                self.stats.erase_ops += 1;
                for s in sectors {
                    self.erase_sector(s);
                }
                Ok(())
            }
        }
    }

    fn rng(&self, op: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.plan.seed());
        rng.set_stream(op);
        rng
    }

    fn log_cut(&mut self, op: u64, cut: Cut, kind: OpKind, offset: u32, len: usize) {
        self.cut_log.push(CutEvent {
            op,
            cut,
            kind,
            offset,
            len: len as u32,
        });
    }

    /// Charges a write unit whose programming began and counts the write.
    fn begin_unit(&mut self, unit: usize) {
        self.writes[unit] = self.writes[unit].saturating_add(1);
        self.stats.bytes_written += WRITE as u64;
        self.stats.modeled_time += self.geometry.program_time();
    }

    /// Programs a random subset of the bits byte `at` still needs to reach `wanted`.
    fn partial_byte(&mut self, rng: &mut ChaCha8Rng, at: usize, wanted: u8) {
        let erased = self.geometry.erased_value();
        let old = programmed(self.data[at], erased);
        let need = programmed(wanted, erased) & !old;
        let mask = rng.next_u32() as u8;
        self.data[at] = (old | (need & mask)) ^ erased;
    }

    fn tear_write(&mut self, rng: &mut ChaCha8Rng, start: usize, bytes: &[u8], mode: WriteTear) {
        let ecc = self.geometry.ecc();
        match mode {
            WriteTear::Prefix => {
                let k = below(rng, bytes.len() as u64) as usize;
                self.data[start..start + k].copy_from_slice(&bytes[..k]);
                self.partial_byte(rng, start + k, bytes[k]);
                let torn_unit = (start + k) / WRITE;
                for unit in start / WRITE..=torn_unit {
                    self.begin_unit(unit);
                }
                if ecc {
                    self.ecc_bad[torn_unit] = true;
                }
            }
            WriteTear::Subset => {
                for (i, chunk) in bytes.chunks_exact(WRITE).enumerate() {
                    let unit = start / WRITE + i;
                    let at = unit * WRITE;
                    match below(rng, 3) {
                        0 => {
                            self.data[at..at + WRITE].copy_from_slice(chunk);
                            self.begin_unit(unit);
                        }
                        1 => {}
                        _ => {
                            for (j, &b) in chunk.iter().enumerate() {
                                self.partial_byte(rng, at + j, b);
                            }
                            self.begin_unit(unit);
                            if ecc {
                                self.ecc_bad[unit] = true;
                            }
                        }
                    }
                }
            }
        }
    }

    fn sector_units(&self, index: usize) -> (usize, std::ops::Range<usize>) {
        let s = self.geometry.sectors()[index];
        let (a, b) = (s.start as usize, s.end() as usize);
        (a, a / WRITE..b / WRITE)
    }

    fn charge_erase(&mut self, index: usize) {
        self.stats.sector_erases[index] += 1;
        self.stats.modeled_time += self.geometry.sectors()[index].erase_time;
    }

    fn erase_sector(&mut self, index: usize) {
        let (_, units) = self.sector_units(index);
        let erased = self.geometry.erased_value();
        self.data[units.start * WRITE..units.end * WRITE].fill(erased);
        self.writes[units.clone()].fill(0);
        self.ecc_bad[units].fill(false);
        self.charge_erase(index);
    }

    fn tear_sector(&mut self, rng: &mut ChaCha8Rng, index: usize, mode: EraseTear) {
        let (_, units) = self.sector_units(index);
        let erased = self.geometry.erased_value();
        let ecc = self.geometry.ecc();
        let limit = self.geometry.max_writes_per_unit().unwrap_or(u8::MAX);
        for unit in units {
            let range = unit * WRITE..(unit + 1) * WRITE;
            let was_erased = self.data[range.clone()].iter().all(|&b| b == erased);
            match mode {
                EraseTear::Partial => {
                    for at in range {
                        let kept = programmed(self.data[at], erased) & rng.next_u32() as u8;
                        self.data[at] = kept ^ erased;
                    }
                }
                EraseTear::Random => {
                    rng.fill_bytes(&mut self.data[range]);
                }
            }
            // ECC: a word left in any state but "was erased and still is"
            // has a code that no longer matches; it cannot be programmed
            // again before a complete erase either.
            let damaged = ecc && (mode == EraseTear::Random || !was_erased);
            self.ecc_bad[unit] = damaged;
            self.writes[unit] = if damaged { limit } else { 0 };
        }
        self.charge_erase(index);
    }
}

impl<const WRITE: usize, const ERASE: usize, const READ: usize> ErrorType
    for SimFlash<WRITE, ERASE, READ>
{
    type Error = Error;
}

impl<const WRITE: usize, const ERASE: usize, const READ: usize> ReadNorFlash
    for SimFlash<WRITE, ERASE, READ>
{
    const READ_SIZE: usize = READ;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Error> {
        SimFlash::read(self, offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.geometry.capacity() as usize
    }
}

impl<const WRITE: usize, const ERASE: usize, const READ: usize> NorFlash
    for SimFlash<WRITE, ERASE, READ>
{
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Error> {
        SimFlash::erase(self, from, to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Error> {
        SimFlash::write(self, offset, bytes)
    }
}
