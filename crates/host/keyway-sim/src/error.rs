//! What a [`crate::SimFlash`] operation can refuse, and why.

use embedded_storage::nor_flash::{NorFlashError, NorFlashErrorKind};
use thiserror::Error;

/// The kind of flash operation, for error messages and the cut log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// A read (never counted as an operation, never cut).
    Read,
    /// A program operation.
    Write,
    /// An erase operation.
    Erase,
}

impl core::fmt::Display for OpKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Erase => "erase",
        })
    }
}

/// Why a simulated flash operation failed. A failed operation changes
/// nothing (except [`Error::PowerCut`] returned by the operation that was
/// interrupted, which did what the fault plan says).
///
/// `Display` names exactly what was violated, with hexadecimal offsets.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// Power is off: a planned cut happened (or [`crate::SimFlash::power_off`]
    /// was called) and [`crate::SimFlash::power_on`] has not been called since.
    #[error("power is cut")]
    PowerCut,
    /// The range runs past the end of the flash.
    #[error("{op} of {len} bytes at {offset:#x} runs past the end of the flash ({capacity:#x})")]
    OutOfBounds {
        /// The operation.
        op: OpKind,
        /// Its start offset.
        offset: u32,
        /// Its length in bytes.
        len: usize,
        /// The flash capacity.
        capacity: u32,
    },
    /// An erase whose end lies before its start.
    #[error("erase {from:#x}..{to:#x} ends before it starts")]
    EraseReversed {
        /// The start offset.
        from: u32,
        /// The end offset (exclusive).
        to: u32,
    },
    /// A write or read whose offset is not a multiple of the unit.
    #[error("{op} at {offset:#x} not aligned to {unit}-byte words")]
    OffsetNotAligned {
        /// The operation.
        op: OpKind,
        /// The offset.
        offset: u32,
        /// The write or read size.
        unit: usize,
    },
    /// A write or read whose length is not a multiple of the unit.
    #[error("{op} of {len} bytes at {offset:#x} is not a whole number of {unit}-byte words")]
    LengthNotAligned {
        /// The operation.
        op: OpKind,
        /// The offset.
        offset: u32,
        /// The length.
        len: usize,
        /// The write or read size.
        unit: usize,
    },
    /// An erase range that starts or ends inside a sector.
    #[error("erase {from:#x}..{to:#x} does not cover whole sector {sector} ({start:#x}..{end:#x})")]
    PartialSector {
        /// The erase start.
        from: u32,
        /// The erase end (exclusive).
        to: u32,
        /// The sector cut by the range.
        sector: usize,
        /// That sector's start.
        start: u32,
        /// That sector's end (exclusive).
        end: u32,
    },
    /// A write that would move a programmed bit back to the erased state
    /// (0→1 on 0xFF-erased flash, 1→0 on 0x00-erased flash): only an erase can.
    #[error("programming {dir} bits at {offset:#x} (byte {wanted:#04x} over {existing:#04x})", dir = if *erased == 0xFF { "0→1" } else { "1→0" })]
    NotErased {
        /// The offset of the first offending byte.
        offset: u32,
        /// The byte in flash.
        existing: u8,
        /// The byte the write wanted.
        wanted: u8,
        /// The geometry's erased value.
        erased: u8,
    },
    /// A write to a unit already programmed as often as the part allows
    /// since its sector was erased (ECC flash: once; nRF52840: twice).
    #[error(
        "write to the {unit}-byte word at {offset:#x} would be write number {attempt} since its erase; the part allows {limit}"
    )]
    TooManyWrites {
        /// The offset of the unit.
        offset: u32,
        /// The write size.
        unit: usize,
        /// Which write this would have been (1-based).
        attempt: u32,
        /// The geometry's limit.
        limit: u8,
    },
    /// A read covering an ECC word whose programming (or whose sector's
    /// erase) was interrupted: the code does not match the data.
    #[error("uncorrectable ECC error in the {unit}-byte word at {offset:#x}")]
    Ecc {
        /// The offset of the word.
        offset: u32,
        /// The write size.
        unit: usize,
    },
}

impl NorFlashError for Error {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Error::OutOfBounds { .. } | Error::EraseReversed { .. } => {
                NorFlashErrorKind::OutOfBounds
            }
            Error::OffsetNotAligned { .. }
            | Error::LengthNotAligned { .. }
            | Error::PartialSector { .. } => NorFlashErrorKind::NotAligned,
            Error::PowerCut
            | Error::NotErased { .. }
            | Error::TooManyWrites { .. }
            | Error::Ecc { .. } => NorFlashErrorKind::Other,
        }
    }
}
