//! A fixed-stride record ring over `NorFlash` erase sectors: the part that
//! Keyway's power-fail-safe stores share.
//!
//! `#![no_std]`, no heap, sans-IO: every operation borrows the flash
//! through the `embedded-storage` 0.3 [`NorFlash`] traits.
//!
//! # What it is
//!
//! A [`Ring`] owns `pages` erase sectors of `F::ERASE_SIZE` bytes from
//! `offset` ([`Config`]). Each sector is a *page*, cut into *slots* of a
//! fixed *stride*. A slot holds at most one record in its *record area*:
//! the longest record of the store rounded up to the flash's write and
//! read sizes. The stride is the record area (the densest layout) or a
//! larger slot size the caller asks for (the journal's sparse slots); the
//! bytes of a slot after its record area, and after the last slot of a
//! page, are never used.
//!
//! The ring knows nothing of what a record means. It gives a store the
//! four things every Keyway record store needs, which the state journal
//! (`keyway-device`) and the audit log (`keyway-audit`) each wrote for
//! themselves before it. All three stores build on it: the state journal,
//! the audit log and the owner store (`keyway-agent`);
//! `keyway-agent/tests/ring_compat.rs` reads regions the journal and the
//! audit log wrote slot for slot through a bare ring, so their on-flash
//! formats are the ones they had before. The four things:
//!
//! * the layout checks ([`Ring::new`], [`ConfigError`]): the region starts
//!   on a sector, holds at least two pages, fits the flash, and a page
//!   holds at least the slots the store needs;
//! * slot addressing ([`Ring::slot_offset`], [`Ring::next_page`]);
//! * slot I/O with the rules that make a store power-fail safe:
//!   [`Ring::write`] programs a record with **one** `write` of its bytes
//!   padded with the erased value to the write size, so a torn write
//!   damages that slot only; [`Ring::read`] tells an erased slot from a
//!   written one; [`Ring::erase`] erases one page;
//! * the scan for the next free slot ([`Ring::last_used`]): a slot that
//!   fails to read (an ECC error on a torn word) counts as used, so it is
//!   never programmed twice.
//!
//! A store keeps these rules on top: it writes only into slots after the
//! last used slot of a page, never erases the page holding its newest
//! valid state, and checks each record itself (the [`CRC`] here is the
//! CRC-32 all Keyway records use).
//!
//! # On-flash formats
//!
//! The ring adds no bytes of its own: a store that builds on it keeps its
//! record format. The padding it writes is the erased value, which is what
//! the unwritten bytes of a slot read anyway, so the journal's and the
//! audit log's formats (FORMAT.md) are unchanged when they move onto it.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use embedded_storage::nor_flash::NorFlash;

/// The largest record area this code handles: a record padded to the
/// write and read sizes (write sizes up to 256 bytes).
pub const MAX_AREA: usize = 256;

/// CRC-32 (ISO-HDLC, bitwise: no table in flash), the checksum of every
/// Keyway flash record.
pub const CRC: crc::Crc<u32, crc::NoTable> =
    crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);

/// Where a ring lives and how its slots are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// The region's start: a multiple of `F::ERASE_SIZE`.
    pub offset: u32,
    /// The number of `F::ERASE_SIZE` sectors (pages) in the region; at least 2.
    pub pages: u32,
    /// The distance between slots, or `None` for the record area (the
    /// record length rounded up to the write and read sizes: the densest
    /// layout). Must be a multiple of the write and read sizes, at least
    /// the record area and at most a page.
    pub slot_size: Option<u32>,
    /// The value of an erased byte (0xFF on most parts, 0x00 on some).
    pub erased: u8,
}

impl Config {
    /// `pages` erase sectors from `offset`, dense slots, erased value 0xFF.
    pub const fn new(offset: u32, pages: u32) -> Self {
        Self {
            offset,
            pages,
            slot_size: None,
            erased: 0xFF,
        }
    }

    /// The same region with slots `slot_size` bytes apart.
    pub const fn with_slot_size(mut self, slot_size: u32) -> Self {
        self.slot_size = Some(slot_size);
        self
    }

    /// The same region on a part whose erased bytes read `erased`.
    pub const fn with_erased_value(mut self, erased: u8) -> Self {
        self.erased = erased;
        self
    }
}

/// Why a [`Config`] does not fit the flash or the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigError {
    /// The region does not start on an erase-sector boundary.
    OffsetNotAligned {
        /// The configured offset.
        offset: u32,
        /// `F::ERASE_SIZE`.
        erase_size: usize,
    },
    /// Fewer than two pages: a page could not be erased while another
    /// keeps the store.
    TooFewPages {
        /// The configured count.
        pages: u32,
    },
    /// The region runs past the end of the flash (or of the 32-bit
    /// address space).
    OutOfBounds {
        /// The region's end (exclusive).
        end: u64,
        /// The flash capacity.
        capacity: usize,
    },
    /// The record rounded up to the write and read sizes exceeds
    /// [`MAX_AREA`], or a size is zero.
    UnitTooLarge {
        /// `F::WRITE_SIZE`.
        write_size: usize,
        /// `F::READ_SIZE`.
        read_size: usize,
    },
    /// The slot size is not a multiple of the write and read sizes, is
    /// smaller than the record area, or is larger than a page.
    BadSlotSize {
        /// The configured slot size.
        slot_size: u32,
        /// The padded record length (the smallest slot).
        record_len: usize,
    },
    /// A page holds fewer slots than the store needs.
    PageTooSmall {
        /// The page (erase sector) size.
        page_size: usize,
        /// The slot stride.
        stride: usize,
        /// The slots the store needs in one page.
        min_slots: u32,
    },
}

/// The flash operation that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlashOp {
    /// A read.
    Read,
    /// A write (one record).
    Write,
    /// An erase (one page).
    Erase,
}

/// A flash operation the driver failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlashError<E> {
    /// Which operation.
    pub op: FlashOp,
    /// Its start offset in the flash.
    pub offset: u32,
    /// The driver's error.
    pub error: E,
}

impl<E> FlashError<E> {
    /// What a failed `op` at `offset` maps the driver's error to (for
    /// `map_err`).
    fn at(op: FlashOp, offset: u32) -> impl FnOnce(E) -> Self {
        move |error| Self { op, offset, error }
    }
}

/// Declares a store's error enum `$error<E>` with the two variants every
/// store over the ring shares, `Flash { op: FlashOp, offset: u32, error: E }`
/// and `Config(ConfigError)`, followed by the store's own variants; and
/// implements the conversions from [`FlashError`] and [`ConfigError`] (so
/// `?` works on the ring's results) and `Display`: the two shared variants
/// as `"<store>: flash <op> at <offset>: <error>"` and
/// `"<store>: region misconfigured: <why>"`, the store's own variants by
/// the match arms given after the enum.
///
/// The second form, `store_error!(Error, "store", |f| { .. })`, implements
/// the conversions and `Display` only, for an enum declared by hand with
/// those two variants.
///
/// ```
/// use keyway_ring::{FlashError, FlashOp};
///
/// keyway_ring::store_error! {
///     /// What a journal operation failed on.
///     #[derive(Debug)]
///     pub enum Error<E> "journal" {
///         /// The record sequence number reached `u32::MAX`.
///         SequenceExhausted,
///     }
///     |f| {
///         Error::SequenceExhausted => f.write_str("journal: record sequence exhausted"),
///     }
/// }
///
/// let e: Error<&str> = FlashError { op: FlashOp::Erase, offset: 0x1000, error: "busy" }.into();
/// assert_eq!(e.to_string(), "journal: flash Erase at 0x1000: \"busy\"");
/// let e: Error<()> = Error::SequenceExhausted;
/// assert_eq!(e.to_string(), "journal: record sequence exhausted");
/// ```
#[macro_export]
macro_rules! store_error {
    (
        $(#[$attr:meta])*
        $vis:vis enum $error:ident<E> $store:literal { $($variants:tt)* }
        |$f:ident| { $($pat:pat => $arm:expr),* $(,)? }
    ) => {
        $(#[$attr])*
        $vis enum $error<E> {
            /// The flash refused or failed an operation.
            Flash {
                /// Which operation.
                op: $crate::FlashOp,
                /// Its start offset in the flash.
                offset: u32,
                /// The driver's error.
                error: E,
            },
            /// The region does not fit the flash, or a page of it holds
            /// fewer slots than the store needs.
            Config($crate::ConfigError),
            $($variants)*
        }

        $crate::store_error!($error, $store, |$f| { $($pat => $arm),* });
    };
    ($error:ident, $store:literal, |$f:ident| { $($pat:pat => $arm:expr),* $(,)? }) => {
        impl<E> From<$crate::ConfigError> for $error<E> {
            fn from(e: $crate::ConfigError) -> Self {
                $error::Config(e)
            }
        }

        impl<E> From<$crate::FlashError<E>> for $error<E> {
            fn from(e: $crate::FlashError<E>) -> Self {
                $error::Flash {
                    op: e.op,
                    offset: e.offset,
                    error: e.error,
                }
            }
        }

        impl<E: ::core::fmt::Debug> ::core::fmt::Display for $error<E> {
            fn fmt(&self, $f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self {
                    $error::Flash { op, offset, error } => write!(
                        $f,
                        concat!($store, ": flash {:?} at {:#x}: {:?}"),
                        op, offset, error
                    ),
                    $error::Config(c) => {
                        write!($f, concat!($store, ": region misconfigured: {:?}"), c)
                    }
                    $($pat => $arm,)*
                }
            }
        }
    };
}

/// What a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot<'a> {
    /// Every byte of the slot reads erased: it may be written.
    Erased,
    /// Something was written: the slot's record area, for the store to
    /// decode (a valid record, or a torn or garbage one).
    Written(&'a [u8]),
}

/// Greatest common divisor (for the read/write unit).
const fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// A validated ring layout. It does not own the flash: every operation
/// borrows it, so the same flash can hold other regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ring {
    offset: u32,
    pages: u32,
    page_size: u32,
    stride: u32,
    area: u32,
    slots: u32,
    erased: u8,
    write_size: u32,
}

impl Ring {
    /// Checks `config` against `flash` for records of at most `record_len`
    /// bytes and at least `min_slots` slots per page, and computes the
    /// layout. Reads nothing.
    pub fn new<F: NorFlash>(
        flash: &F,
        config: Config,
        record_len: usize,
        min_slots: u32,
    ) -> Result<Self, ConfigError> {
        let erase_size = F::ERASE_SIZE;
        if erase_size == 0 || !(config.offset as usize).is_multiple_of(erase_size) {
            return Err(ConfigError::OffsetNotAligned {
                offset: config.offset,
                erase_size,
            });
        }
        if config.pages < 2 {
            return Err(ConfigError::TooFewPages {
                pages: config.pages,
            });
        }
        let capacity = flash.capacity();
        let end = u64::from(config.offset) + u64::from(config.pages) * erase_size as u64;
        if end > capacity as u64 || end > u64::from(u32::MAX) + 1 {
            return Err(ConfigError::OutOfBounds { end, capacity });
        }
        let unit_error = ConfigError::UnitTooLarge {
            write_size: F::WRITE_SIZE,
            read_size: F::READ_SIZE,
        };
        if F::WRITE_SIZE == 0 || F::READ_SIZE == 0 || record_len == 0 {
            return Err(unit_error);
        }
        let unit = (F::WRITE_SIZE / gcd(F::WRITE_SIZE, F::READ_SIZE))
            .checked_mul(F::READ_SIZE)
            .ok_or(unit_error)?;
        let padded = record_len
            .div_ceil(unit)
            .checked_mul(unit)
            .filter(|&n| n <= MAX_AREA)
            .ok_or(unit_error)?;
        let stride = config.slot_size.map_or(padded, |s| s as usize);
        if stride < padded || !stride.is_multiple_of(unit) || stride > erase_size {
            return Err(ConfigError::BadSlotSize {
                slot_size: stride as u32,
                record_len: padded,
            });
        }
        let slots = erase_size / stride;
        if slots < min_slots as usize {
            return Err(ConfigError::PageTooSmall {
                page_size: erase_size,
                stride,
                min_slots,
            });
        }
        // `end` fits u32 + 1 and the region holds at least two pages, so a
        // page and its slot count fit u32.
        Ok(Self {
            offset: config.offset,
            pages: config.pages,
            page_size: erase_size as u32,
            stride: stride as u32,
            area: padded as u32,
            slots: slots as u32,
            erased: config.erased,
            write_size: F::WRITE_SIZE as u32,
        })
    }

    /// Pages in the ring.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// Slots per page.
    pub fn slots_per_page(&self) -> u32 {
        self.slots
    }

    /// The slot stride in bytes.
    pub fn stride(&self) -> u32 {
        self.stride
    }

    /// The record area in bytes: the longest record padded to the write
    /// and read sizes, what [`Ring::read`] reads of a slot.
    pub fn area(&self) -> u32 {
        self.area
    }

    /// The page (erase sector) size in bytes.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// The value of an erased byte.
    pub fn erased(&self) -> u8 {
        self.erased
    }

    /// The page after `page` in ring order.
    pub fn next_page(&self, page: u32) -> u32 {
        if page + 1 >= self.pages { 0 } else { page + 1 }
    }

    /// The flash offset of `page`'s first byte.
    pub fn page_offset(&self, page: u32) -> u32 {
        self.offset + page * self.page_size
    }

    /// The flash offset of `slot` of `page`.
    pub fn slot_offset(&self, page: u32, slot: u32) -> u32 {
        self.page_offset(page) + slot * self.stride
    }

    /// The bytes a record of `len` bytes programs: `len` rounded up to the
    /// write size.
    pub fn write_len(&self, len: usize) -> usize {
        len.div_ceil(self.write_size as usize) * self.write_size as usize
    }

    /// Reads the record area of `slot` of `page` into `buf` and says
    /// whether it is erased.
    pub fn read<'b, F: NorFlash>(
        &self,
        flash: &mut F,
        page: u32,
        slot: u32,
        buf: &'b mut [u8; MAX_AREA],
    ) -> Result<Slot<'b>, FlashError<F::Error>> {
        let at = self.slot_offset(page, slot);
        let bytes = &mut buf[..self.area as usize];
        flash
            .read(at, bytes)
            .map_err(FlashError::at(FlashOp::Read, at))?;
        if bytes.iter().all(|&b| b == self.erased) {
            Ok(Slot::Erased)
        } else {
            Ok(Slot::Written(bytes))
        }
    }

    /// The last slot of `page` that is not erased; a slot that fails to
    /// read counts as used. `None`: the page reads fully erased.
    pub fn last_used<F: NorFlash>(
        &self,
        flash: &mut F,
        page: u32,
        buf: &mut [u8; MAX_AREA],
    ) -> Option<u32> {
        (0..self.slots)
            .rev()
            .find(|&slot| !matches!(self.read(flash, page, slot, buf), Ok(Slot::Erased)))
    }

    /// Programs `record` (at most the record area) into `slot` of `page` with
    /// one `write`, padded with the erased value to the write size. The
    /// slot must read erased; the caller counts it used from now on,
    /// whatever this returns. A record longer than the area (a caller
    /// bug) is cut to the area.
    pub fn write<F: NorFlash>(
        &self,
        flash: &mut F,
        page: u32,
        slot: u32,
        record: &[u8],
    ) -> Result<(), FlashError<F::Error>> {
        let n = record.len().min(self.area as usize);
        let mut buf = [self.erased; MAX_AREA];
        buf[..n].copy_from_slice(&record[..n]);
        let len = self.write_len(n).min(self.area as usize);
        let at = self.slot_offset(page, slot);
        flash
            .write(at, &buf[..len])
            .map_err(FlashError::at(FlashOp::Write, at))
    }

    /// Erases `page` (one erase of one sector).
    pub fn erase<F: NorFlash>(&self, flash: &mut F, page: u32) -> Result<(), FlashError<F::Error>> {
        let from = self.page_offset(page);
        flash
            .erase(from, from + self.page_size)
            .map_err(FlashError::at(FlashOp::Erase, from))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use keyway_sim::SimFlash;

    #[test]
    fn layout_is_checked() {
        use ConfigError::*;
        let flash = SimFlash::<4, 4096>::nrf52840();
        let refused = |config, record_len, min_slots| {
            Ring::new(&flash, config, record_len, min_slots).unwrap_err()
        };
        let config = Config::new(0, 2);
        assert_eq!(
            refused(Config::new(100, 2), 10, 1),
            OffsetNotAligned {
                offset: 100,
                erase_size: 4096
            }
        );
        assert_eq!(refused(Config::new(0, 1), 10, 1), TooFewPages { pages: 1 });
        assert_eq!(
            refused(Config::new(0xFF000, 2), 10, 1),
            OutOfBounds {
                end: 0x101000,
                capacity: 0x100000
            }
        );
        assert_eq!(
            refused(config, 257, 1),
            UnitTooLarge {
                write_size: 4,
                read_size: 1
            }
        );
        assert_eq!(
            refused(config.with_slot_size(10), 10, 1),
            BadSlotSize {
                slot_size: 10,
                record_len: 12
            }
        );
        assert_eq!(
            refused(config, 150, 30),
            PageTooSmall {
                page_size: 4096,
                stride: 152,
                min_slots: 30
            }
        );
        assert_eq!(
            refused(config.with_slot_size(8192), 10, 1),
            BadSlotSize {
                slot_size: 8192,
                record_len: 12
            }
        );
        let ring = Ring::new(&flash, Config::new(0x1000, 3), 150, 2).unwrap();
        assert_eq!(
            (ring.stride(), ring.area(), ring.slots_per_page()),
            (152, 152, 26)
        );
        // Sparse slots (the journal's `slot_size`): reads cover the area only.
        let sparse = Ring::new(&flash, Config::new(0, 2).with_slot_size(1000), 83, 2).unwrap();
        assert_eq!(
            (sparse.stride(), sparse.area(), sparse.slots_per_page()),
            (1000, 84, 4)
        );
        assert_eq!(ring.slot_offset(2, 3), 0x1000 + 2 * 4096 + 3 * 152);
        assert_eq!(ring.next_page(2), 0);
    }

    #[test]
    fn write_read_scan_erase() {
        let mut flash = SimFlash::<4, 4096>::nrf52840();
        let ring = Ring::new(&flash, Config::new(0x2000, 2), 10, 2).unwrap();
        let mut buf = [0; MAX_AREA];
        assert_eq!(ring.last_used(&mut flash, 0, &mut buf), None);
        ring.write(&mut flash, 0, 5, b"0123456789").unwrap();
        assert_eq!(flash.stats().bytes_written, 12, "padded to the write size");
        match ring.read(&mut flash, 0, 5, &mut buf).unwrap() {
            Slot::Written(b) => assert_eq!(b, b"0123456789\xFF\xFF"),
            Slot::Erased => panic!("slot 5 was written"),
        }
        assert_eq!(ring.read(&mut flash, 0, 4, &mut buf).unwrap(), Slot::Erased);
        assert_eq!(ring.last_used(&mut flash, 0, &mut buf), Some(5));
        ring.erase(&mut flash, 0).unwrap();
        assert_eq!(ring.last_used(&mut flash, 0, &mut buf), None);
    }

    #[test]
    fn a_torn_unreadable_slot_counts_as_used() {
        use keyway_sim::{EraseTear, PowerCut, WriteTear};
        let mut flash = SimFlash::<32, 131072>::ecc32();
        let ring = Ring::new(&flash, Config::new(0x2_0000, 2), 100, 2).unwrap();
        flash.set_power_cut(PowerCut::new(3).during(0, WriteTear::Prefix, EraseTear::Partial));
        assert!(ring.write(&mut flash, 1, 4, &[0x42; 100]).is_err());
        flash.power_on();
        let mut buf = [0; MAX_AREA];
        let read = ring.read(&mut flash, 1, 4, &mut buf);
        assert!(
            matches!(
                read,
                Err(FlashError {
                    op: FlashOp::Read,
                    ..
                })
            ),
            "{read:?}"
        );
        assert_eq!(ring.last_used(&mut flash, 1, &mut buf), Some(4));
    }
}
