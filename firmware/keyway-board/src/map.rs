//! The memory map of the emulated lock (QEMU `mps2-an386`) for RAM load,
//! and the layout of its flash file.
//!
//! # The board
//!
//! | range | QEMU region | use |
//! | --- | --- | --- |
//! | `0x0000_0000..0x0004_0000` | ZBT SSRAM1 | the bootloader's code ([`BOOT_CODE`]; QEMU's `-kernel` loads it here; budget 64 KiB) |
//! | `0x0010_0000..0x0020_0000` | ZBT SSRAM1 | the application's execution region ([`APP_EXEC`]): the bootloader copies the verified image here and the application is linked to run here |
//! | `0x2000_0000..0x2030_0000` | ZBT SSRAM2/3 | the application's RAM (statics and stack; [`APP_RAM`]) |
//! | `0x2030_0000..0x2040_0000` | ZBT SSRAM2/3 | the bootloader's RAM ([`BOOT_RAM`]), apart from the application's so the copy never runs over the bootloader's own stack |
//! | `0x4000_4000` | CMSDK APB UART0 | the SMP serial port ([`crate::uart::UART0`]) |
//! | `0x4000_5000` | CMSDK APB UART1 | the control channel ([`crate::uart::UART1`]) |
//!
//! The board has no execute-in-place flash controller: everything that
//! runs runs from RAM, which is MCUboot's "RAM load" mode. The "flash" is
//! a host file reached through semihosting ([`crate::semi_flash`]); it
//! behaves like the nRF52840's internal flash (4 KiB pages, 4-byte words,
//! program only clears bits) and outlives QEMU, so killing QEMU is a power
//! cut and starting it again is a boot.
//!
//! An application image is the raw binary of the application (objcopy
//! `-O binary`), starting with its vector table at [`APP_EXEC`]: word 0
//! the initial stack pointer (inside [`APP_RAM`]), word 1 the reset vector
//! (inside the image, Thumb bit set).
//!
//! # The flash file
//!
//! [`FLASH_SIZE`] bytes (1 MiB, as the nRF52840), in [`SECTOR`]-byte pages:
//!
//! | pages | what |
//! | --- | --- |
//! | [`JOURNAL`], 2 | the boot journal (`keyway_device::journal`) |
//! | [`SLOT0`], 96 | slot 0: 95 image pages (380 KiB), then 1 manifest page |
//! | [`SLOT1`], 96 | slot 1: the same |
//! | [`STORE`], 2 | the owner store (`keyway_agent::store`) |
//! | [`AUDIT`], 4 | the audit log (`keyway_audit`) |
//! | [`FREE`].. | unused |
//!
//! In each slot the image starts at the slot's first byte and the signed
//! manifest (the envelope head, `keyway_device::manifest_area`) sits in the
//! slot's last page: Direct (A/B) mode of `keyway_device::install::SlotLayout`
//! (built by `layout()` with the feature `layout`).

/// A flash page (the erase unit).
pub const SECTOR: u32 = 4096;
/// The write unit.
pub const WORD: u32 = 4;
/// Pages in the flash file.
pub const FLASH_SECTORS: u32 = 256;
/// The flash file's size in bytes (1 MiB).
pub const FLASH_SIZE: u32 = FLASH_SECTORS * SECTOR;

/// First page of the boot journal (2 pages).
pub const JOURNAL: u32 = 0;
/// First page of slot 0 (96 pages).
pub const SLOT0: u32 = 2;
/// First page of slot 1 (96 pages).
pub const SLOT1: u32 = 98;
/// First page of the owner store (2 pages).
pub const STORE: u32 = 194;
/// First page of the audit log (4 pages).
pub const AUDIT: u32 = 196;
/// First unused page.
pub const FREE: u32 = 200;
/// Pages per slot.
pub const SLOT_SECTORS: u32 = SLOT1 - SLOT0;
/// Manifest pages per slot (at the slot's end).
pub const MANIFEST_SECTORS: u32 = 1;
/// The largest image a slot holds, in bytes.
pub const IMAGE_CAPACITY: u32 = (SLOT_SECTORS - MANIFEST_SECTORS) * SECTOR;
const _: () = assert!(SLOT1 + SLOT_SECTORS == STORE && FREE <= FLASH_SECTORS);
const _: () = assert!(IMAGE_CAPACITY <= APP_EXEC.len);

/// The first byte of page `sector`.
pub const fn at(sector: u32) -> u32 {
    sector * SECTOR
}

/// A memory region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Its first address.
    pub start: u32,
    /// Its length in bytes.
    pub len: u32,
}

impl Region {
    /// The `len` bytes from `start`.
    pub const fn new(start: u32, len: u32) -> Self {
        Region { start, len }
    }

    /// One past its last address.
    pub const fn end(&self) -> u32 {
        self.start + self.len
    }

    /// Whether `addr..addr + len` lies inside.
    pub const fn holds(&self, addr: u32, len: u32) -> bool {
        match addr.checked_add(len) {
            Some(end) => addr >= self.start && end <= self.end(),
            None => false,
        }
    }
}

/// The bootloader's code (the linker region; the budget is 64 KiB).
pub const BOOT_CODE: Region = Region::new(0x0000_0000, 0x0004_0000);
/// The bootloader's RAM.
pub const BOOT_RAM: Region = Region::new(0x2030_0000, 0x0010_0000);
/// Where the application image is copied and runs.
pub const APP_EXEC: Region = Region::new(0x0010_0000, 0x0010_0000);
/// The application's RAM.
pub const APP_RAM: Region = Region::new(0x2000_0000, 0x0030_0000);

/// The lock's A/B layout on the flash file (Direct mode, one manifest page
/// per slot), for `keyway_device`'s installer, journal and boot.
#[cfg(feature = "layout")]
pub const fn layout() -> keyway_device::install::SlotLayout {
    use keyway_device::install::{Mode, SlotLayout};
    SlotLayout {
        slots: [at(SLOT0)..at(SLOT1), at(SLOT1)..at(STORE)],
        journal: keyway_device::journal::Config::new(at(JOURNAL), SLOT0 - JOURNAL),
        manifest_sectors: MANIFEST_SECTORS,
        sector_size: None,
        mode: Mode::Direct,
    }
}
