//! Where the image slots and the state journal live: [`SlotLayout`], the
//! map that the installer ([`crate::install`]), the bootloaders
//! ([`crate::boot`], [`crate::swap`]), the slot check
//! ([`crate::verified`]) and the delta installer all read.
//!
//! A layout is plain data (two slot ranges, the journal's region, the
//! manifest area's size, the slot sector size and the [`Mode`]);
//! [`SlotLayout::validate`] checks it against a flash type once, and
//! [`SlotLayout::place`] says where a slot's image and manifest area lie,
//! in direct mode and in swap mode's staging area. [`BufferSizeError`]
//! checks a write or copy buffer against the flash's sizes.
//!
//! These types are also re-exported from [`crate::install`], where they
//! were first defined.

use core::ops::Range;

use embedded_storage::nor_flash::NorFlash;

use crate::journal;

/// How an update reaches the slot the MCU executes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Direct A/B: the MCU executes from either slot. The update is written
    /// once into the inactive slot and activated by a journal record.
    #[default]
    Direct,
    /// Swap: images are linked to slot 0 (the primary). The update is
    /// staged in slot 1 (the secondary) and swapped in by the bootloader
    /// ([`crate::swap`]).
    Swap,
}

/// Where the two image slots and the state journal live.
///
/// Slots are made of *slot sectors* of [`SlotLayout::sector_size`] bytes:
/// `F::ERASE_SIZE` by default, or a multiple of it for parts whose sectors
/// differ in size (the STM32F4's slots sit in 128 KiB sectors while its
/// smallest sector, `F::ERASE_SIZE`, is 16 KiB). Each slot sector is erased
/// as one `erase` call; every sector of both slots must be that size.
///
/// Each slot ends with its *manifest area*: its last `manifest_sectors`
/// slot sectors, which hold the signed envelope head of the image in the
/// slot (see [`crate::manifest_area`]). The area is reserved: an image may
/// use only [`SlotLayout::image_capacity`] bytes. With `manifest_sectors: 0`
/// there is no manifest area and
/// [`Installer::begin_with_manifest`](crate::install::Installer::begin_with_manifest) and
/// [`VerifiedSlot`](crate::verified::VerifiedSlot) refuse the layout.
///
/// In [`Mode::Swap`] the secondary slot (1) stages the update one sector in
/// (see [`SlotLayout::place`]) and must hold a spare sector beyond the
/// staged manifest area and image.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SlotLayout {
    /// The byte ranges of slot 0 and slot 1 in the flash.
    pub slots: [Range<u32>; 2],
    /// The state journal's region. Its `erased` value also pads the last
    /// write of an image to the write size.
    pub journal: journal::Config,
    /// Slot sectors at the end of each slot reserved for its manifest area
    /// (0: none). When not 0 they must span at least
    /// [`MANIFEST_AREA_MIN`](crate::manifest_area::MANIFEST_AREA_MIN)
    /// bytes and leave at least one sector for the image.
    pub manifest_sectors: u32,
    /// The slot sector size in bytes; `None`: `F::ERASE_SIZE`. Must be a
    /// multiple of `F::ERASE_SIZE`.
    pub sector_size: Option<u32>,
    /// Direct A/B or swap.
    pub mode: Mode,
}

/// Where an image and its manifest area lie in the flash: a slot in direct
/// mode, or (swap mode) the primary slot or the secondary's staging area.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Place {
    /// The image's bytes: from the start of its first sector up to its
    /// capacity.
    pub image: Range<u32>,
    /// The manifest area (`None` when the layout reserves none).
    pub manifest: Option<Range<u32>>,
}

/// Why a [`SlotLayout`] does not fit the flash.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LayoutError {
    /// A slot is empty (its end is not above its start).
    EmptySlot {
        /// The slot (0 or 1).
        slot: u8,
    },
    /// A slot's start or end is not a multiple of the slot sector size.
    SlotNotAligned {
        /// The slot (0 or 1).
        slot: u8,
        /// Its range.
        range: Range<u32>,
        /// The slot sector size.
        erase_size: usize,
    },
    /// A slot runs past the end of the flash.
    SlotOutOfBounds {
        /// The slot (0 or 1).
        slot: u8,
        /// Its end (exclusive).
        end: u32,
        /// The flash capacity.
        capacity: usize,
    },
    /// The two slots overlap.
    SlotsOverlap,
    /// A slot overlaps the journal's region.
    SlotOverlapsJournal {
        /// The slot (0 or 1).
        slot: u8,
    },
    /// The journal's region is misplaced (see [`journal::ConfigError`]).
    Journal(journal::ConfigError),
    /// The manifest area (`manifest_sectors` sectors) is smaller than
    /// [`MANIFEST_AREA_MIN`](crate::manifest_area::MANIFEST_AREA_MIN).
    ManifestAreaTooSmall {
        /// Its size in bytes.
        len: u64,
        /// The minimum.
        min: u32,
    },
    /// The manifest area leaves no sector of the slot for the image (swap
    /// mode: the secondary slot also needs its spare sector).
    NoImageRoom {
        /// The slot (0 or 1).
        slot: u8,
    },
    /// The slot sector size is zero or not a multiple of `F::ERASE_SIZE`.
    SectorSize {
        /// The slot sector size.
        sector_size: u32,
        /// `F::ERASE_SIZE`.
        erase_size: usize,
    },
}

/// Why the write buffer size `BUF` does not fit the flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufferSizeError {
    /// The buffer size.
    pub buf: usize,
    /// `F::WRITE_SIZE`.
    pub write_size: usize,
    /// `F::READ_SIZE`.
    pub read_size: usize,
    /// The erase unit the buffer must divide: `F::ERASE_SIZE` for the
    /// installer, the slot sector for the swap's copy buffer.
    pub erase_size: usize,
}

impl BufferSizeError {
    /// Checks a buffer of `buf` bytes for flash `F` and an erase unit of
    /// `erase_size` bytes: not zero, a multiple of `F::WRITE_SIZE` and
    /// `F::READ_SIZE`, and a divisor of `erase_size`.
    pub fn check<F: NorFlash>(buf: usize, erase_size: usize) -> Result<(), BufferSizeError> {
        let fits = buf != 0
            && F::WRITE_SIZE != 0
            && F::READ_SIZE != 0
            && buf.is_multiple_of(F::WRITE_SIZE)
            && buf.is_multiple_of(F::READ_SIZE)
            && erase_size.is_multiple_of(buf);
        if fits {
            Ok(())
        } else {
            Err(BufferSizeError {
                buf,
                write_size: F::WRITE_SIZE,
                read_size: F::READ_SIZE,
                erase_size,
            })
        }
    }
}

impl SlotLayout {
    /// A [`Mode::Direct`] layout of `slots` with the journal in `journal`:
    /// no manifest area, slot sectors of `F::ERASE_SIZE`.
    pub const fn direct(slots: [Range<u32>; 2], journal: journal::Config) -> Self {
        Self {
            slots,
            journal,
            manifest_sectors: 0,
            sector_size: None,
            mode: Mode::Direct,
        }
    }

    /// The same layout with a manifest area of `sectors` slot sectors.
    pub const fn with_manifest_sectors(mut self, sectors: u32) -> Self {
        self.manifest_sectors = sectors;
        self
    }

    /// The same layout with slot sectors of `size` bytes.
    pub const fn with_sector_size(mut self, size: u32) -> Self {
        self.sector_size = Some(size);
        self
    }

    /// The slot sector size: [`SlotLayout::sector_size`] or `F::ERASE_SIZE`.
    pub fn sector_size<F: NorFlash>(&self) -> u32 {
        self.sector_size
            .unwrap_or(u32::try_from(F::ERASE_SIZE).unwrap_or(0))
    }

    /// The manifest area's size in bytes: `manifest_sectors` × the slot
    /// sector size (saturating).
    pub fn manifest_area_len<F: NorFlash>(&self) -> u64 {
        u64::from(self.manifest_sectors).saturating_mul(u64::from(self.sector_size::<F>()))
    }

    /// Where the image of `slot` (0 or 1) and its manifest area lie.
    ///
    /// * Direct mode, and the primary slot (0) in swap mode: the image from
    ///   the slot's start, the manifest area in its last `manifest_sectors`
    ///   sectors.
    /// * Swap mode, slot 1: the *staging area*. Its first sector is the
    ///   spare the swap needs, then the manifest area, then the image:
    ///   sector `1 + j` of the secondary holds what the swap moves into the
    ///   primary's `j`-th moved sector (see [`crate::swap`]). The image
    ///   capacity is the smaller of the primary's and what the secondary
    ///   holds after the spare and the manifest area.
    ///
    /// `None` for another slot number or a slot too small for its area.
    pub fn place<F: NorFlash>(&self, slot: u8) -> Option<Place> {
        let r = self.slots.get(usize::from(slot))?;
        let sector = self.sector_size::<F>();
        let area = u32::try_from(self.manifest_area_len::<F>()).ok()?;
        let len = r.end.checked_sub(r.start)?;
        let direct = |r: &Range<u32>| -> Option<Place> {
            let len = r.end.checked_sub(r.start)?;
            let cap = len.checked_sub(area).filter(|c| *c > 0)?;
            Some(Place {
                image: r.start..r.start + cap,
                manifest: (area > 0).then(|| r.end - area..r.end),
            })
        };
        match (self.mode, slot) {
            (Mode::Direct, _) | (Mode::Swap, 0) => direct(r),
            (Mode::Swap, _) => {
                let primary = direct(&self.slots[0])?;
                let primary_cap = primary.image.end - primary.image.start;
                let lead = sector.checked_add(area)?;
                let cap = len.checked_sub(lead).filter(|c| *c > 0)?.min(primary_cap);
                let image = r.start + lead;
                Some(Place {
                    image: image..image + cap,
                    manifest: (area > 0).then(|| r.start + sector..r.start + lead),
                })
            }
        }
    }

    /// The bytes of `slot` (0 or 1) an image may use (see
    /// [`SlotLayout::place`]; 0 when it has no place).
    pub fn image_capacity<F: NorFlash>(&self, slot: u8) -> u32 {
        self.place::<F>(slot)
            .map_or(0, |p| p.image.end - p.image.start)
    }

    /// The byte range of `slot`'s manifest area in the flash (see
    /// [`SlotLayout::place`]). `None` without a manifest area, for another
    /// slot number, or when the area does not fit the slot.
    pub fn manifest_area<F: NorFlash>(&self, slot: u8) -> Option<Range<u32>> {
        self.place::<F>(slot)?.manifest
    }

    /// Checks the layout against a flash of type `F` and capacity
    /// `capacity`: each slot non-empty, aligned to `F::ERASE_SIZE` and
    /// inside the flash; the slots and the journal's region pairwise
    /// disjoint; the journal's region aligned and inside the flash; a
    /// manifest area, if any, of at least
    /// [`MANIFEST_AREA_MIN`](crate::manifest_area::MANIFEST_AREA_MIN) bytes
    /// that leaves each slot at least one sector for its image.
    pub fn validate<F: NorFlash>(&self, capacity: usize) -> Result<(), LayoutError> {
        let sector = self.sector_size::<F>();
        if F::ERASE_SIZE == 0 || sector == 0 || !(sector as usize).is_multiple_of(F::ERASE_SIZE) {
            return Err(LayoutError::SectorSize {
                sector_size: sector,
                erase_size: F::ERASE_SIZE,
            });
        }
        let erase_size = F::ERASE_SIZE;
        let cfg = &self.journal;
        if !(cfg.offset as usize).is_multiple_of(erase_size) {
            return Err(LayoutError::Journal(
                journal::ConfigError::OffsetNotAligned {
                    offset: cfg.offset,
                    erase_size,
                },
            ));
        }
        let journal_end = u64::from(cfg.offset) + u64::from(cfg.pages) * erase_size as u64;
        if journal_end > capacity as u64 {
            return Err(LayoutError::Journal(journal::ConfigError::OutOfBounds {
                end: journal_end,
                capacity,
            }));
        }
        let journal = u64::from(cfg.offset)..journal_end;
        for (i, r) in self.slots.iter().enumerate() {
            let slot = i as u8;
            if r.end <= r.start {
                return Err(LayoutError::EmptySlot { slot });
            }
            if !r.start.is_multiple_of(sector) || !r.end.is_multiple_of(sector) {
                return Err(LayoutError::SlotNotAligned {
                    slot,
                    range: r.clone(),
                    erase_size: sector as usize,
                });
            }
            if r.end as usize > capacity {
                return Err(LayoutError::SlotOutOfBounds {
                    slot,
                    end: r.end,
                    capacity,
                });
            }
            if u64::from(r.start) < journal.end && journal.start < u64::from(r.end) {
                return Err(LayoutError::SlotOverlapsJournal { slot });
            }
        }
        let [a, b] = &self.slots;
        if a.start < b.end && b.start < a.end {
            return Err(LayoutError::SlotsOverlap);
        }
        if self.manifest_sectors > 0 {
            let len = self.manifest_area_len::<F>();
            let min = crate::manifest_area::MANIFEST_AREA_MIN;
            if len < u64::from(min) {
                return Err(LayoutError::ManifestAreaTooSmall { len, min });
            }
        }
        for slot in 0..2u8 {
            if self.image_capacity::<F>(slot) == 0 {
                return Err(LayoutError::NoImageRoom { slot });
            }
        }
        Ok(())
    }
}
