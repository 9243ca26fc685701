//! The board's flash: a NOR flash over a host file, reached through ARM
//! semihosting file I/O ([`crate::semi`]), with the rules of the
//! simulated nRF52840 enforced here, in the driver:
//!
//! - erase in whole 4 KiB pages ([`SECTOR`]); an erased byte is 0xFF;
//! - write in 4-byte words ([`WORD`]): offset and length multiples of 4;
//! - a write may only clear bits: one that would turn a 0 into a 1 is
//!   refused ([`FlashError::SetsBit`]) and changes nothing (the whole
//!   range is checked before a byte is written);
//! - reads of any length at any offset; everything bounds checked.
//!
//! The file outlives QEMU: every write and erase goes straight to the
//! host's `write(2)`, so killing QEMU (SIGKILL) is a power cut and starting
//! it again on the same file is the next boot. A file that does not exist
//! is created erased; a shorter one is extended with 0xFF.
//!
//! # The power-cut counter
//!
//! [`SemiFlash::cut_after`] (`n`, or `cut=N` on the command line for the
//! tests that cut from outside) lets `n` more erases and writes happen;
//! the next one is interrupted: a write stores its first half and the
//! first two bytes of the next word (a torn word, as a real part can leave
//! it), an erase sets the first half of its first page to 0xFF, and then
//! the driver ends the run with QEMU exit status [`POWER_CUT_EXIT`]. The
//! next QEMU run on the file is the boot after the cut.
//!
//! Reads and writes go through a 256-byte buffer on the stack; no heap.

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};

pub use crate::ram_flash::{ERASED, FlashError, SECTOR, WORD};
use crate::semi::{self, File, Mode};

/// QEMU's exit status when the driver cuts the power.
pub const POWER_CUT_EXIT: u32 = 3;

/// The chunk in which the driver reads, checks and writes.
const CHUNK: usize = 256;

/// A NOR flash of `capacity` bytes in a host file.
#[derive(Debug)]
pub struct SemiFlash {
    file: File,
    capacity: u32,
    erases: u32,
    writes: u32,
    /// Erases and writes left before the cut (`None`: no cut).
    power_left: Option<u32>,
}

impl SemiFlash {
    /// Opens (or creates, erased) the host file `path` as a flash of
    /// `capacity` bytes (a multiple of [`SECTOR`]). `None` if the host
    /// refuses the file or `capacity` is not whole pages.
    pub fn open(path: &str, capacity: u32) -> Option<Self> {
        if capacity == 0 || !capacity.is_multiple_of(SECTOR as u32) {
            return None;
        }
        let mut file = match semi::open(path, Mode::ReadWrite) {
            Some(f) => f,
            None => semi::open(path, Mode::Create)?,
        };
        // Extend a new or short file with erased pages.
        let len = file.len()?;
        if len < capacity {
            let erased = [ERASED; CHUNK];
            let mut at = len;
            if !file.seek(at) {
                return None;
            }
            while at < capacity {
                let n = (capacity - at).min(CHUNK as u32);
                if !file.write(&erased[..n as usize]) {
                    return None;
                }
                at += n;
            }
        }
        Some(SemiFlash {
            file,
            capacity,
            erases: 0,
            writes: 0,
            power_left: None,
        })
    }

    /// Lets `ops` more erases and writes happen, then cuts the power in
    /// the next one (see the [module documentation](self)).
    pub fn cut_after(&mut self, ops: u32) {
        self.power_left = Some(ops);
    }

    /// Reads `cut=N` from QEMU's semihosting command line, if given, and
    /// arms [`SemiFlash::cut_after`] with it. Returns the `N`.
    pub fn cut_from_cmdline(&mut self) -> Option<u32> {
        let mut buf = [0u8; 128];
        let n = semi::arg_u32(semi::cmdline(&mut buf)?, "cut")?;
        self.cut_after(n);
        Some(n)
    }

    /// Page erases and write calls that succeeded since the flash was
    /// opened.
    pub fn ops(&self) -> (u32, u32) {
        (self.erases, self.writes)
    }

    /// The range `offset..offset + len` if it lies inside the flash.
    fn check_range(&self, offset: u32, len: usize) -> Result<(), FlashError> {
        match u32::try_from(len).ok().and_then(|l| offset.checked_add(l)) {
            Some(end) if end <= self.capacity => Ok(()),
            _ => Err(FlashError::OutOfBounds { offset }),
        }
    }

    fn read_raw(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        if self.file.seek(offset) && self.file.read(buf) {
            Ok(())
        } else {
            Err(FlashError::Io { offset })
        }
    }

    fn write_raw(&mut self, offset: u32, buf: &[u8]) -> Result<(), FlashError> {
        if self.file.seek(offset) && self.file.write(buf) {
            Ok(())
        } else {
            Err(FlashError::Io { offset })
        }
    }

    /// Spends one operation of the power left; `true` if this one is cut.
    fn cut_now(&mut self) -> bool {
        match &mut self.power_left {
            None => false,
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                false
            }
        }
    }

    /// The power fails: report it and end the run.
    fn power_cut(&self, offset: u32) -> ! {
        cortex_m_semihosting::hprintln!("POWER CUT at {:#x}", offset);
        crate::exit_code(POWER_CUT_EXIT)
    }
}

impl ErrorType for SemiFlash {
    type Error = FlashError;
}

impl ReadNorFlash for SemiFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        self.check_range(offset, bytes.len())?;
        self.read_raw(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.capacity as usize
    }
}

impl NorFlash for SemiFlash {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        if to < from {
            return Err(FlashError::OutOfBounds { offset: from });
        }
        self.check_range(from, (to - from) as usize)?;
        if !from.is_multiple_of(SECTOR as u32) || !to.is_multiple_of(SECTOR as u32) {
            return Err(FlashError::NotAligned { offset: from });
        }
        let erased = [ERASED; CHUNK];
        if self.cut_now() {
            if to > from {
                for at in (from..from + SECTOR as u32 / 2).step_by(CHUNK) {
                    self.write_raw(at, &erased)?;
                }
            }
            self.power_cut(from)
        }
        for at in (from..to).step_by(CHUNK) {
            self.write_raw(at, &erased)?;
        }
        self.erases += (to - from) / SECTOR as u32;
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        self.check_range(offset, bytes.len())?;
        if !offset.is_multiple_of(WORD as u32) || !bytes.len().is_multiple_of(WORD) {
            return Err(FlashError::NotAligned { offset });
        }
        // Check the whole write first, so that a refused one changes nothing.
        let mut old = [0u8; CHUNK];
        for (i, new) in bytes.chunks(CHUNK).enumerate() {
            let at = offset + (i * CHUNK) as u32;
            let old = &mut old[..new.len()];
            self.read_raw(at, old)?;
            if let Some(j) = old.iter().zip(new).position(|(o, n)| n & !o != 0) {
                return Err(FlashError::SetsBit {
                    offset: at + j as u32,
                });
            }
        }
        // Programming only clears bits, so the result is `old & new`,
        // which the check above made equal to `new`.
        if self.cut_now() {
            let torn = (bytes.len() / 2 / WORD * WORD + WORD / 2).min(bytes.len());
            self.write_raw(offset, &bytes[..torn])?;
            self.power_cut(offset)
        }
        self.write_raw(offset, bytes)?;
        self.writes += 1;
        Ok(())
    }
}
