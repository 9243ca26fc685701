//! The harness's flash map, shared by the firmware and build.rs (which
//! programs the factory image on the host): one 64 KiB NOR flash of
//! 4 KiB sectors: journal 2, slot 0 (3 image + 1 manifest), slot 1 (the
//! same), owner store 2, audit log 4. The lock is `lock_core::lock`
//! opened on this map (the application's is `lock_core::map::LOCK_MAP`,
//! 1 MiB).

use lock_core::map::FlashMap;
pub use lock_core::map::SECTOR;

/// The sectors of each region.
pub const MAP: FlashMap = FlashMap {
    journal: 0,
    slot0: 2,
    slot1: 6,
    store: 10,
    audit: 12,
    end: 16,
};

/// The emulated NOR flash's size.
pub const FLASH_LEN: usize = MAP.end as usize * SECTOR;
