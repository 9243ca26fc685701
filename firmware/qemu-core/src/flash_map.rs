//! The lock's flash map, shared by the firmware and build.rs (which
//! programs the factory image on the host): one 64 KiB NOR flash of
//! 4 KiB sectors: journal 2, slot 0 (3 image + 1 manifest), slot 1 (the
//! same), owner store 2, audit log 4.

use keyway_agent::store;
use keyway_device::install::{Mode, SlotLayout};
use keyway_device::journal;

/// The sector size.
pub const SECTOR: usize = 4096;
/// Sectors of the emulated NOR flash.
pub const FLASH_SECTORS: u32 = 16;
/// Its size.
pub const FLASH_LEN: usize = FLASH_SECTORS as usize * SECTOR;

pub const JOURNAL: u32 = 0;
pub const SLOT0: u32 = 2;
pub const SLOT1: u32 = 6;
pub const STORE: u32 = 10;
pub const AUDIT: u32 = 12;
const _: () = assert!(AUDIT + 4 == FLASH_SECTORS);

/// The first byte of `sector`.
pub const fn at(sector: u32) -> u32 {
    sector * SECTOR as u32
}

/// The A/B layout on the flash map.
pub const fn layout() -> SlotLayout {
    SlotLayout {
        slots: [at(SLOT0)..at(SLOT1), at(SLOT1)..at(STORE)],
        journal: journal::Config::new(at(JOURNAL), SLOT0 - JOURNAL),
        manifest_sectors: 1,
        sector_size: None,
        mode: Mode::Direct,
    }
}

/// The owner store's region.
pub const fn store_region() -> store::Config {
    store::Config::new(at(STORE), AUDIT - STORE)
}

/// The audit log's region.
pub const fn audit_region() -> keyway_audit::Config {
    keyway_audit::Config::new(at(AUDIT), FLASH_SECTORS - AUDIT)
}
