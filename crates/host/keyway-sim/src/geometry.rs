//! The shape and timing of a NOR flash part: its sectors, write and read
//! granularity, erased value, reprogramming rules and erase/program times.

use std::time::Duration;

use thiserror::Error;

/// Largest write unit the simulator models (STM32H7 programs 256-bit words).
pub const MAX_WRITE_SIZE: usize = 32;

/// A run of equally sized sectors, the input to [`GeometrySpec::sectors`].
///
/// The STM32F4's 1 MiB bank is three runs: 4 × 16 KiB, 1 × 64 KiB and
/// 7 × 128 KiB, each with its own erase time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectorRun {
    /// How many sectors of this size follow each other.
    pub count: u32,
    /// The size of each sector in bytes.
    pub size: u32,
    /// The modeled time to erase one sector of this run.
    pub erase_time: Duration,
}

/// Everything needed to describe a NOR part; [`Geometry::new`] validates it.
///
/// The fields are public so a caller (a test, or the future
/// `keyway flash-sim --page-size … --write-size …`) can describe any part;
/// the presets ([`Geometry::nrf52840`] and friends) are built from one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeometrySpec {
    /// A short name used in reports (`"nrf52840"`).
    pub name: String,
    /// The sectors from offset 0 upwards, as runs of equal size.
    pub sectors: Vec<SectorRun>,
    /// The program granularity in bytes: a power of two in 1..=32. Writes
    /// must start and end on multiples of it.
    pub write_size: usize,
    /// The read granularity in bytes: a power of two no larger than the
    /// smallest sector. Memory-mapped flash reads bytes (1).
    pub read_size: usize,
    /// The value of an erased byte: `0xFF` (almost all NOR) or `0x00`
    /// (e.g. the STM32L0/L1 families).
    pub erased: u8,
    /// The modeled time to program one write unit.
    pub program_time: Duration,
    /// How many times one write unit may be programmed between erases, or
    /// `None` for no limit. Every write may only move bits from the erased
    /// to the programmed state (writing the same value again is allowed).
    /// The nRF52840 allows 2 (`nWRITE`); ECC flash allows exactly 1.
    pub max_writes_per_unit: Option<u8>,
    /// Whether each write unit carries an error-correcting code, as on the
    /// STM32H7: a unit is programmed once per erase, and a unit whose
    /// programming was interrupted reads back as an ECC error until its
    /// sector is erased. Requires `max_writes_per_unit == Some(1)`.
    pub ecc: bool,
}

/// One erase sector of a [`Geometry`], at a fixed place in the address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sector {
    /// The sector's index, 0 for the sector at offset 0.
    pub index: usize,
    /// The offset of its first byte.
    pub start: u32,
    /// Its size in bytes.
    pub size: u32,
    /// The modeled time to erase it.
    pub erase_time: Duration,
}

impl Sector {
    /// The offset one past its last byte.
    pub fn end(&self) -> u32 {
        self.start + self.size
    }

    /// Whether `offset` lies inside it.
    pub fn contains(&self, offset: u32) -> bool {
        offset >= self.start && offset < self.end()
    }
}

/// Why a [`GeometrySpec`] does not describe a usable part.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum GeometryError {
    /// The sector list is empty (or every run has count 0).
    #[error("the geometry has no sectors")]
    NoSectors,
    /// A sector run has size 0.
    #[error("sector run {run} has size 0")]
    ZeroSectorSize {
        /// The index of the run in [`GeometrySpec::sectors`].
        run: usize,
    },
    /// The write size is not a power of two in 1..=32.
    #[error("write size {0} is not a power of two from 1 to 32 bytes")]
    WriteSize(usize),
    /// The read size is not a power of two, or is larger than the smallest sector.
    #[error(
        "read size {read} is not a power of two no larger than the smallest sector ({min_sector} bytes)"
    )]
    ReadSize {
        /// The rejected read size.
        read: usize,
        /// The smallest sector size.
        min_sector: u32,
    },
    /// A sector size is not a multiple of the write size.
    #[error("sector run {run}: size {size} is not a multiple of the {write}-byte write size")]
    SectorNotMultipleOfWrite {
        /// The index of the run.
        run: usize,
        /// Its sector size.
        size: u32,
        /// The write size.
        write: usize,
    },
    /// The erased value is neither 0xFF nor 0x00.
    #[error("erased value {0:#04x} is neither 0xff nor 0x00")]
    ErasedValue(u8),
    /// The total size does not fit a 32-bit offset (the embedded-storage traits use `u32`).
    #[error("total capacity {0} bytes does not fit in 32-bit offsets")]
    TooLarge(u64),
    /// `max_writes_per_unit` is `Some(0)`.
    #[error("max writes per unit is 0: nothing could ever be written")]
    ZeroWrites,
    /// ECC is enabled but units may be written more than once.
    #[error(
        "ECC flash must program each write unit once per erase (max_writes_per_unit = Some(1))"
    )]
    EccNeedsSingleWrite,
    /// A custom timing is negative, infinite or NaN.
    #[error("{what} {value} is not a finite, non-negative number")]
    Timing {
        /// Which value (`"erase ms"`, `"write µs"`).
        what: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// An image handed to [`crate::SimFlash::from_bytes`] is not the size of the flash.
    #[error("image of {got} bytes does not match the {expected}-byte flash")]
    ImageSize {
        /// The geometry's capacity.
        expected: u32,
        /// The image's length.
        got: usize,
    },
    /// The const parameters of a [`crate::SimFlash`] do not match the geometry.
    #[error(
        "SimFlash<{write}, {erase}, {read}> does not fit geometry {name}: it needs write size {g_write}, smallest sector {g_erase} (with every sector a multiple of it), read size {g_read}"
    )]
    ConstMismatch {
        /// The geometry's name.
        name: String,
        /// The `WRITE` parameter.
        write: usize,
        /// The `ERASE` parameter.
        erase: usize,
        /// The `READ` parameter.
        read: usize,
        /// The geometry's write size.
        g_write: usize,
        /// The geometry's smallest sector.
        g_erase: u32,
        /// The geometry's read size.
        g_read: usize,
    },
}

/// A validated NOR flash description. Build one with [`Geometry::new`],
/// [`Geometry::custom`] or a preset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    spec: GeometrySpec,
    sectors: Vec<Sector>,
    capacity: u32,
    min_sector: u32,
}

const KIB: u32 = 1024;

impl Geometry {
    /// Validates `spec` and lays its sectors out from offset 0.
    pub fn new(spec: GeometrySpec) -> Result<Self, GeometryError> {
        if !spec.write_size.is_power_of_two() || spec.write_size > MAX_WRITE_SIZE {
            return Err(GeometryError::WriteSize(spec.write_size));
        }
        if spec.erased != 0xFF && spec.erased != 0x00 {
            return Err(GeometryError::ErasedValue(spec.erased));
        }
        match spec.max_writes_per_unit {
            Some(0) => return Err(GeometryError::ZeroWrites),
            Some(1) => {}
            _ if spec.ecc => return Err(GeometryError::EccNeedsSingleWrite),
            _ => {}
        }
        let mut sectors = Vec::new();
        let mut offset: u64 = 0;
        let mut min_sector = u32::MAX;
        for (run, r) in spec.sectors.iter().enumerate() {
            if r.size == 0 {
                return Err(GeometryError::ZeroSectorSize { run });
            }
            if !(r.size as usize).is_multiple_of(spec.write_size) {
                return Err(GeometryError::SectorNotMultipleOfWrite {
                    run,
                    size: r.size,
                    write: spec.write_size,
                });
            }
            let total = offset + u64::from(r.count) * u64::from(r.size);
            if total > u64::from(u32::MAX) {
                return Err(GeometryError::TooLarge(total));
            }
            for _ in 0..r.count {
                sectors.push(Sector {
                    index: sectors.len(),
                    start: offset as u32,
                    size: r.size,
                    erase_time: r.erase_time,
                });
                offset += u64::from(r.size);
                min_sector = min_sector.min(r.size);
            }
        }
        if sectors.is_empty() {
            return Err(GeometryError::NoSectors);
        }
        if !spec.read_size.is_power_of_two() || spec.read_size > min_sector as usize {
            return Err(GeometryError::ReadSize {
                read: spec.read_size,
                min_sector,
            });
        }
        Ok(Self {
            spec,
            sectors,
            capacity: offset as u32,
            min_sector,
        })
    }

    /// A uniform part from the four numbers a firmware engineer knows
    /// (`keyway flash-sim --page-size B --write-size B --erase-ms MS
    /// --write-us US`): `pages` pages of `page_size` bytes, erased to 0xFF,
    /// byte reads, no rewrite limit and no ECC (set those through
    /// [`GeometrySpec`] if the part has them).
    pub fn custom(
        page_size: u32,
        pages: u32,
        write_size: usize,
        erase_ms: f64,
        write_us: f64,
    ) -> Result<Self, GeometryError> {
        let erase_time = duration("erase ms", erase_ms, 1e-3)?;
        let program_time = duration("write µs", write_us, 1e-6)?;
        Self::new(GeometrySpec {
            name: format!("custom-{page_size}x{pages}-w{write_size}"),
            sectors: vec![SectorRun {
                count: pages,
                size: page_size,
                erase_time,
            }],
            write_size,
            read_size: 1,
            erased: 0xFF,
            program_time,
            max_writes_per_unit: None,
            ecc: false,
        })
    }

    /// Nordic nRF52840: 1 MiB as 256 pages of 4 KiB, 32-bit word writes,
    /// erased to 0xFF, each word written at most twice between erases
    /// (`nWRITE` = 2). Times from the product specification's NVMC table:
    /// `tERASEPAGE` 85 ms, `tWRITE` 41 µs per word.
    pub fn nrf52840() -> Self {
        Self::nrf52840_timing(256).expect("the nrf52840 preset is valid")
    }

    /// The nRF52840's pages, rules and times with `pages` pages instead of
    /// 256 (named `nrf52840-timing`), for images larger than the real
    /// part holds twice (delta benchmarks on real firmware pairs).
    pub fn nrf52840_timing(pages: u32) -> Result<Self, GeometryError> {
        Self::new(GeometrySpec {
            name: if pages == 256 {
                "nrf52840"
            } else {
                "nrf52840-timing"
            }
            .into(),
            sectors: vec![SectorRun {
                count: pages,
                size: 4 * KIB,
                erase_time: Duration::from_millis(85),
            }],
            write_size: 4,
            read_size: 1,
            erased: 0xFF,
            program_time: Duration::from_micros(41),
            max_writes_per_unit: Some(2),
            ecc: false,
        })
    }

    /// ST STM32F405/407 bank: 1 MiB as 4 × 16 KiB, 1 × 64 KiB and
    /// 7 × 128 KiB sectors, erased to 0xFF. Writes are 32-bit words (the
    /// x32 parallelism RM0090 prescribes at 2.7–3.6 V); RM0090 allows
    /// successive writes that only clear more bits, so there is no rewrite
    /// limit. Times are the datasheet's typical x32 figures (DS8626,
    /// "Flash memory programming"): 16 µs per word, 250 ms per 16 KiB,
    /// 550 ms per 64 KiB and 1 s per 128 KiB sector. They were taken from
    /// the datasheet's typical column as remembered, not re-read from the
    /// PDF: treat them as typical, not worst case (the maxima are about 2×).
    pub fn stm32f4() -> Self {
        Self::new(GeometrySpec {
            name: "stm32f4".into(),
            sectors: vec![
                SectorRun {
                    count: 4,
                    size: 16 * KIB,
                    erase_time: Duration::from_millis(250),
                },
                SectorRun {
                    count: 1,
                    size: 64 * KIB,
                    erase_time: Duration::from_millis(550),
                },
                SectorRun {
                    count: 7,
                    size: 128 * KIB,
                    erase_time: Duration::from_millis(1000),
                },
            ],
            write_size: 4,
            read_size: 1,
            erased: 0xFF,
            program_time: Duration::from_micros(16),
            max_writes_per_unit: None,
            ecc: false,
        })
        .expect("the stm32f4 preset is valid")
    }

    /// A small-page part: 256 KiB as 512 pages of 512 bytes, byte writes,
    /// erased to 0xFF, no rewrite limit. Not a specific chip: it stresses
    /// layouts where a sector holds little (many sectors per image, many
    /// journal page turns). Illustrative times: 4 ms per page erase, 10 µs
    /// per byte.
    pub fn small_pages() -> Self {
        Self::new(GeometrySpec {
            name: "small-pages".into(),
            sectors: vec![SectorRun {
                count: 512,
                size: 512,
                erase_time: Duration::from_millis(4),
            }],
            write_size: 1,
            read_size: 1,
            erased: 0xFF,
            program_time: Duration::from_micros(10),
            max_writes_per_unit: None,
            ecc: false,
        })
        .expect("the small-pages preset is valid")
    }

    /// ECC flash like one STM32H743 bank: 1 MiB as 8 sectors of 128 KiB,
    /// 256-bit (32-byte) flash words each programmed once per erase, with
    /// ECC: an interrupted word reads back as an ECC error. Typical times
    /// (approximate, from the STM32H743 datasheet's x64 column as
    /// remembered): 1 s per sector erase, 100 µs per flash word.
    pub fn ecc32() -> Self {
        Self::new(GeometrySpec {
            name: "ecc32".into(),
            sectors: vec![SectorRun {
                count: 8,
                size: 128 * KIB,
                erase_time: Duration::from_millis(1000),
            }],
            write_size: 32,
            read_size: 1,
            erased: 0xFF,
            program_time: Duration::from_micros(100),
            max_writes_per_unit: Some(1),
            ecc: true,
        })
        .expect("the ecc32 preset is valid")
    }

    /// The preset with this name (`nrf52840`, `stm32f4`, `small-pages`,
    /// `ecc32`), as the `--geometry` option spells them.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "nrf52840" => Some(Self::nrf52840()),
            "stm32f4" => Some(Self::stm32f4()),
            "small-pages" => Some(Self::small_pages()),
            "ecc32" => Some(Self::ecc32()),
            _ => None,
        }
    }

    /// The names [`Geometry::preset`] accepts.
    pub const PRESETS: [&'static str; 4] = ["nrf52840", "stm32f4", "small-pages", "ecc32"];

    /// The description this geometry was built from.
    pub fn spec(&self) -> &GeometrySpec {
        &self.spec
    }

    /// The geometry's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Every sector, in address order.
    pub fn sectors(&self) -> &[Sector] {
        &self.sectors
    }

    /// The sector holding `offset`, or `None` past the end.
    pub fn sector_at(&self, offset: u32) -> Option<&Sector> {
        if offset >= self.capacity {
            return None;
        }
        let i = self.sectors.partition_point(|s| s.end() <= offset);
        self.sectors.get(i)
    }

    /// The total size in bytes.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The smallest sector size (the `ERASE_SIZE` a [`crate::SimFlash`] exposes).
    pub fn min_sector_size(&self) -> u32 {
        self.min_sector
    }

    /// Whether every sector has the same size.
    pub fn is_uniform(&self) -> bool {
        self.sectors.iter().all(|s| s.size == self.min_sector)
    }

    /// The program granularity in bytes.
    pub fn write_size(&self) -> usize {
        self.spec.write_size
    }

    /// The read granularity in bytes.
    pub fn read_size(&self) -> usize {
        self.spec.read_size
    }

    /// The value of an erased byte.
    pub fn erased_value(&self) -> u8 {
        self.spec.erased
    }

    /// The modeled time to program one write unit.
    pub fn program_time(&self) -> Duration {
        self.spec.program_time
    }

    /// How many times a write unit may be programmed between erases (`None`: no limit).
    pub fn max_writes_per_unit(&self) -> Option<u8> {
        self.spec.max_writes_per_unit
    }

    /// Whether write units carry ECC.
    pub fn ecc(&self) -> bool {
        self.spec.ecc
    }
}

fn duration(what: &'static str, value: f64, unit_secs: f64) -> Result<Duration, GeometryError> {
    if !value.is_finite() || value < 0.0 {
        return Err(GeometryError::Timing { what, value });
    }
    Duration::try_from_secs_f64(value * unit_secs)
        .map_err(|_| GeometryError::Timing { what, value })
}
