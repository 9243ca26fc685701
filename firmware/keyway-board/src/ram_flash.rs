//! A NOR flash in RAM, with the rules of a real part: 4 KiB erase sectors
//! (an erase sets every byte to 0xFF and must cover whole sectors), 4-byte
//! aligned writes that can only clear bits (a write that would turn a 0
//! back into a 1 is refused and changes nothing), bounds checked. No
//! `unsafe`: the array is an ordinary field owned by its user.
//! (The tests' flash; the board's is [`crate::semi_flash`]. Its power cut
//! falls between operations, where the board's tears the interrupted one.)

use core::fmt;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// The erase sector.
pub const SECTOR: usize = 4096;
/// The write (program) unit.
pub const WORD: usize = 4;
/// The value of an erased byte.
pub const ERASED: u8 = 0xFF;

/// Why the RAM flash refused an operation. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashError {
    /// Offset or length not a multiple of the write (or erase) unit.
    NotAligned {
        /// The operation's first byte.
        offset: u32,
    },
    /// The range leaves the flash.
    OutOfBounds {
        /// The operation's first byte.
        offset: u32,
    },
    /// Programming would set a bit that is 0 (NOR can only clear bits;
    /// erase first).
    SetsBit {
        /// The first byte that would need a 0 -> 1 transition.
        offset: u32,
    },
    /// The power failed ([`RamFlash::cut_after`]): the operation did not
    /// happen, nor will any later one until [`RamFlash::power_on`].
    PowerCut {
        /// The operation's first byte.
        offset: u32,
    },
    /// The host refused a file operation ([`crate::semi_flash`] only).
    Io {
        /// The operation's first byte.
        offset: u32,
    },
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::NotAligned { .. } => NorFlashErrorKind::NotAligned,
            FlashError::OutOfBounds { .. } => NorFlashErrorKind::OutOfBounds,
            FlashError::SetsBit { .. } | FlashError::PowerCut { .. } | FlashError::Io { .. } => {
                NorFlashErrorKind::Other
            }
        }
    }
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlashError::NotAligned { offset } => {
                write!(f, "flash: unaligned access at {offset:#x}")
            }
            FlashError::OutOfBounds { offset } => write!(f, "flash: out of bounds at {offset:#x}"),
            FlashError::SetsBit { offset } => {
                write!(f, "flash: write at {offset:#x} would set a cleared bit")
            }
            FlashError::PowerCut { offset } => write!(f, "flash: power cut at {offset:#x}"),
            FlashError::Io { offset } => write!(f, "flash: host file I/O failed at {offset:#x}"),
        }
    }
}

/// The most sectors whose erases [`RamFlash::take_sector_erases`] counts.
pub const MAX_SECTORS: usize = 16;

/// `N` bytes of NOR flash (a multiple of [`SECTOR`], at most
/// [`MAX_SECTORS`] sectors), erased when made.
pub struct RamFlash<const N: usize> {
    mem: [u8; N],
    erases: u32,
    writes: u32,
    /// Erases per sector.
    sector_erases: [u16; MAX_SECTORS],
    /// Erases and writes left before the power cut (`None`: no cut).
    power_left: Option<u32>,
}

impl<const N: usize> RamFlash<N> {
    /// A fully erased flash.
    pub const fn new() -> Self {
        assert!(
            N.is_multiple_of(SECTOR) && N / SECTOR <= MAX_SECTORS,
            "RamFlash size must be whole sectors, at most MAX_SECTORS"
        );
        RamFlash {
            mem: [ERASED; N],
            erases: 0,
            writes: 0,
            sector_erases: [0; MAX_SECTORS],
            power_left: None,
        }
    }

    /// Erases of each sector so far (index = sector number), then zeroed:
    /// the counts of what happened since the last call.
    pub fn take_sector_erases(&mut self) -> [u16; MAX_SECTORS] {
        core::mem::take(&mut self.sector_erases)
    }

    /// Cuts the power after `ops` more erases and writes succeed: every
    /// later erase or write fails with [`FlashError::PowerCut`] and changes
    /// nothing (reads still work, as a test's probe would), until
    /// [`RamFlash::power_on`]. The cut falls between two operations, never
    /// inside one.
    pub fn cut_after(&mut self, ops: u32) {
        self.power_left = Some(ops);
    }

    /// Power back on (a reset): no cut pending.
    pub fn power_on(&mut self) {
        self.power_left = None;
    }

    /// Spends one operation of the power left, or refuses it after the cut.
    fn power(&mut self, offset: u32) -> Result<(), FlashError> {
        match &mut self.power_left {
            None => Ok(()),
            Some(0) => Err(FlashError::PowerCut { offset }),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
        }
    }

    /// Sector erases and write calls that succeeded so far.
    pub fn ops(&self) -> (u32, u32) {
        (self.erases, self.writes)
    }

    /// Corrupts the byte at `offset` (flips its low bit) behind the
    /// flash's back, as a fault or an attacker with a probe would: the test
    /// for a tampered slot. Returns false if `offset` is out of bounds.
    pub fn corrupt(&mut self, offset: u32) -> bool {
        match self.mem.get_mut(offset as usize) {
            Some(b) => {
                *b ^= 0x01;
                true
            }
            None => false,
        }
    }

    /// The range `offset..offset + len` if it lies inside the flash.
    fn range(offset: u32, len: usize) -> Result<core::ops::Range<usize>, FlashError> {
        let start = offset as usize;
        match start.checked_add(len) {
            Some(end) if end <= N => Ok(start..end),
            _ => Err(FlashError::OutOfBounds { offset }),
        }
    }
}

impl<const N: usize> Default for RamFlash<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ErrorType for RamFlash<N> {
    type Error = FlashError;
}

impl<const N: usize> ReadNorFlash for RamFlash<N> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let r = Self::range(offset, bytes.len())?;
        bytes.copy_from_slice(&self.mem[r]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        N
    }
}

impl<const N: usize> NorFlash for RamFlash<N> {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        if to < from {
            return Err(FlashError::OutOfBounds { offset: from });
        }
        let r = Self::range(from, (to - from) as usize)?;
        if !r.start.is_multiple_of(SECTOR) || !r.end.is_multiple_of(SECTOR) {
            return Err(FlashError::NotAligned { offset: from });
        }
        self.power(from)?;
        for count in &mut self.sector_erases[r.start / SECTOR..r.end / SECTOR] {
            *count = count.saturating_add(1);
        }
        self.mem[r].fill(ERASED);
        self.erases += ((to - from) as usize / SECTOR) as u32;
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let r = Self::range(offset, bytes.len())?;
        if !r.start.is_multiple_of(WORD) || !r.len().is_multiple_of(WORD) {
            return Err(FlashError::NotAligned { offset });
        }
        // Check the whole write first, so that a refused one changes nothing.
        if let Some(i) = self.mem[r.clone()]
            .iter()
            .zip(bytes)
            .position(|(old, new)| new & !old != 0)
        {
            return Err(FlashError::SetsBit {
                offset: offset + i as u32,
            });
        }
        self.power(offset)?;
        for (old, new) in self.mem[r].iter_mut().zip(bytes) {
            *old &= new;
        }
        self.writes += 1;
        Ok(())
    }
}
