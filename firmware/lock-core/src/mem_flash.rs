//! The lock's flash in host memory (feature `mem-flash`, and the tests):
//! [`map::FLASH_LEN`](crate::map::FLASH_LEN) bytes with a NOR part's rules
//! (erase whole pages to 0xFF, word-aligned writes that only clear bits),
//! for `lock-provision`, which writes the flash file from it, and for the
//! lock's tests on the host.

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

use crate::map::{FLASH_LEN, SECTOR, WORD};

/// The flash's bytes.
pub struct MemFlash(pub Vec<u8>);

impl MemFlash {
    /// An erased flash (every byte 0xFF).
    pub fn erased() -> Self {
        MemFlash(vec![0xff; FLASH_LEN])
    }
}

/// Why an operation was refused (out of bounds, not aligned, or a write
/// that would set a cleared bit); nothing changed.
#[derive(Debug)]
pub struct MemError;

impl NorFlashError for MemError {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

impl ErrorType for MemFlash {
    type Error = MemError;
}

impl ReadNorFlash for MemFlash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), MemError> {
        let at = offset as usize;
        let src = self.0.get(at..at + bytes.len()).ok_or(MemError)?;
        bytes.copy_from_slice(src);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.0.len()
    }
}

impl NorFlash for MemFlash {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), MemError> {
        let (f, t) = (from as usize, to as usize);
        if !f.is_multiple_of(SECTOR) || !t.is_multiple_of(SECTOR) || t > self.0.len() || f > t {
            return Err(MemError);
        }
        self.0[f..t].fill(0xff);
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MemError> {
        let at = offset as usize;
        if !at.is_multiple_of(WORD) || !bytes.len().is_multiple_of(WORD) {
            return Err(MemError);
        }
        let dst = self.0.get_mut(at..at + bytes.len()).ok_or(MemError)?;
        if dst.iter().zip(bytes).any(|(d, b)| d & b != *b) {
            return Err(MemError);
        }
        dst.copy_from_slice(bytes);
        Ok(())
    }
}
