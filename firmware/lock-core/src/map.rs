//! The lock's flash map and its factory record, shared by the application
//! (`firmware/lock-app`), the host's provisioner (`firmware/lock-provision`)
//! and, for the record, the bootloader (`firmware/lock-boot`). The
//! numbers are `keyway_board::map`'s (the board crate owns the memory
//! map; lock-app asserts at compile time that both agree); this copy
//! exists so that the host's provisioner, which cannot link the board
//! crate, writes the same layout.
//!
//! One NOR flash (the 1 MiB flash file), 4 KiB erase pages (the
//! nRF52840's), 4-byte writes:
//!
//! | pages | what |
//! | --- | --- |
//! | 0-1 | the update journal (`keyway-device`) |
//! | 2..98 | slot 0: 95 image pages (380 KiB), then 1 manifest page |
//! | 98..194 | slot 1: the same |
//! | 194-195 | the owner store (`keyway-agent`) |
//! | 196..200 | the audit log (`keyway-audit`) |
//! | 200 | the factory record ([`Factory`]), written once by the provisioner |
//!
//! Direct A/B: an image runs from the slot it was installed into
//! (RAM-loaded from it by the bootloader to [`APP_LOAD`]).

use keyway_device::install::{Mode, SlotLayout};
use keyway_device::journal;
use keyway_suit::DeviceIdentity;
use sha2::{Digest, Sha256};

/// The erase page size (nRF52840).
pub const SECTOR: usize = 4096;
/// The write size.
pub const WORD: usize = 4;
/// Pages of the flash.
pub const FLASH_SECTORS: u32 = 256;
/// The flash's size in bytes (the flash file's length).
pub const FLASH_LEN: usize = FLASH_SECTORS as usize * SECTOR;

/// The journal's first page.
pub const JOURNAL: u32 = 0;
/// Slot 0's first page.
pub const SLOT0: u32 = 2;
/// Slot 1's first page.
pub const SLOT1: u32 = 98;
/// The owner store's first page.
pub const STORE: u32 = 194;
/// The audit log's first page.
pub const AUDIT: u32 = 196;
/// The audit log's pages.
pub const AUDIT_SECTORS: u32 = 4;
/// The factory record's page.
pub const FACTORY: u32 = 200;
const _: () = assert!(AUDIT + AUDIT_SECTORS == FACTORY && FACTORY < FLASH_SECTORS);

/// The most image bytes a slot holds (its pages minus the manifest's).
pub const IMAGE_MAX: u32 = (SLOT1 - SLOT0 - 1) * SECTOR as u32;

/// Where the bootloader copies the verified image and the application is
/// linked to run (code SRAM of the MPS2 board, above the bootloader).
pub const APP_LOAD: u32 = 0x0010_0000;

/// The first byte of `sector`.
pub const fn at(sector: u32) -> u32 {
    sector * SECTOR as u32
}

/// Where a lock's flash keeps what, in [`SECTOR`]-byte pages, each region
/// running up to the next one's first page: the journal, slot 0, slot 1
/// (each with its manifest page last), the owner store, the audit log.
/// The lock ([`crate::lock::Lock`]) is opened on one: the application's
/// is [`LOCK_MAP`]; the on-target harness (`firmware/qemu-core`) passes a
/// smaller one for its RAM flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashMap {
    /// The journal's first page.
    pub journal: u32,
    /// Slot 0's first page.
    pub slot0: u32,
    /// Slot 1's first page (as many pages as slot 0).
    pub slot1: u32,
    /// The owner store's first page.
    pub store: u32,
    /// The audit log's first page.
    pub audit: u32,
    /// One past the audit log's last page.
    pub end: u32,
}

/// The application's map (the table above).
pub const LOCK_MAP: FlashMap = FlashMap {
    journal: JOURNAL,
    slot0: SLOT0,
    slot1: SLOT1,
    store: STORE,
    audit: AUDIT,
    end: AUDIT + AUDIT_SECTORS,
};

impl FlashMap {
    /// The A/B layout (Direct mode, one manifest page per slot).
    pub const fn layout(&self) -> SlotLayout {
        SlotLayout {
            slots: [
                at(self.slot0)..at(self.slot1),
                at(self.slot1)..at(self.store),
            ],
            journal: journal::Config::new(at(self.journal), self.slot0 - self.journal),
            manifest_sectors: 1,
            sector_size: None,
            mode: Mode::Direct,
        }
    }

    /// A slot's bytes (image and manifest page): the largest upload.
    pub const fn slot_len(&self) -> u32 {
        at(self.slot1) - at(self.slot0)
    }

    /// The owner store's region.
    #[cfg(feature = "agent")]
    pub const fn store_region(&self) -> keyway_agent::store::Config {
        keyway_agent::store::Config::new(at(self.store), self.audit - self.store)
    }

    /// The audit log's region.
    #[cfg(feature = "agent")]
    pub const fn audit_region(&self) -> keyway_audit::Config {
        keyway_audit::Config::new(at(self.audit), self.end - self.audit)
    }
}

/// The A/B layout on the flash map.
pub const fn layout() -> SlotLayout {
    LOCK_MAP.layout()
}

/// The owner store's region.
#[cfg(feature = "agent")]
pub const fn store_region() -> keyway_agent::store::Config {
    LOCK_MAP.store_region()
}

/// The audit log's region.
#[cfg(feature = "agent")]
pub const fn audit_region() -> keyway_audit::Config {
    LOCK_MAP.audit_region()
}

/// The factory record's magic.
pub const FACTORY_MAGIC: [u8; 8] = *b"KWFACT01";
/// The factory record's length: magic, fields, SHA-256 of both.
pub const FACTORY_LEN: usize = 8 + 32 + 16 + 16 + 32 + 32 + 16 + 32;

/// What the factory programs into page [`FACTORY`]: the trust anchor, the
/// identity, the device key's seed, the RNG seed and the label's setup
/// code. Layout: `KWFACT01` | root Ed25519 key 32 | vendor id 16 | class
/// id 16 | device seed 32 | RNG seed 32 | setup code 16 (ASCII, NUL
/// padded) | SHA-256 of the preceding 152 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Factory {
    /// The vendor's raw Ed25519 public key (the trust anchor).
    pub root_key: [u8; 32],
    /// The vendor id (UUID).
    pub vendor_id: [u8; 16],
    /// The device class id (UUID).
    pub class_id: [u8; 16],
    /// The device key's seed (Ed25519; the audit log's signer too).
    pub device_seed: [u8; 32],
    /// The RNG's factory seed (mixed with per-boot inputs, see lock-app).
    pub rng_seed: [u8; 32],
    /// The setup code as the label prints it (`1234-5670`), NUL padded.
    pub label: [u8; 16],
}

/// Why a factory record does not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactoryError {
    /// No record: the sector is erased (an unprovisioned lock).
    Blank,
    /// Not the magic, or the checksum does not match.
    Corrupt,
}

impl Factory {
    /// The device identity the images must name.
    pub fn identity(&self) -> DeviceIdentity {
        DeviceIdentity::new(self.vendor_id, self.class_id)
    }

    /// The label's text.
    pub fn label(&self) -> &str {
        let n = self.label.iter().position(|&b| b == 0).unwrap_or(16);
        core::str::from_utf8(&self.label[..n]).unwrap_or("")
    }

    /// The record's bytes.
    pub fn encode(&self) -> [u8; FACTORY_LEN] {
        let mut b = [0u8; FACTORY_LEN];
        let mut at = 0;
        for part in [
            &FACTORY_MAGIC[..],
            &self.root_key,
            &self.vendor_id,
            &self.class_id,
            &self.device_seed,
            &self.rng_seed,
            &self.label,
        ] {
            b[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        let sum: [u8; 32] = Sha256::digest(&b[..at]).into();
        b[at..].copy_from_slice(&sum);
        b
    }

    /// Reads a record.
    pub fn decode(b: &[u8; FACTORY_LEN]) -> Result<Factory, FactoryError> {
        if b.iter().all(|&x| x == 0xff) {
            return Err(FactoryError::Blank);
        }
        let body = FACTORY_LEN - 32;
        let sum: [u8; 32] = Sha256::digest(&b[..body]).into();
        if b[..8] != FACTORY_MAGIC || sum[..] != b[body..] {
            return Err(FactoryError::Corrupt);
        }
        let mut at = 8;
        let mut take = |n: usize| {
            let s = &b[at..at + n];
            at += n;
            s
        };
        let mut f = Factory {
            root_key: [0; 32],
            vendor_id: [0; 16],
            class_id: [0; 16],
            device_seed: [0; 32],
            rng_seed: [0; 32],
            label: [0; 16],
        };
        f.root_key.copy_from_slice(take(32));
        f.vendor_id.copy_from_slice(take(16));
        f.class_id.copy_from_slice(take(16));
        f.device_seed.copy_from_slice(take(32));
        f.rng_seed.copy_from_slice(take(32));
        f.label.copy_from_slice(take(16));
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The application's map is the page table above: each region ends
    /// where the next begins, the factory record after the audit log.
    #[test]
    fn lock_map_is_the_page_table() {
        let l = LOCK_MAP.layout();
        assert_eq!(l.slots, [at(2)..at(98), at(98)..at(194)]);
        assert_eq!(l.journal, journal::Config::new(0, 2));
        assert_eq!(LOCK_MAP.slot_len(), IMAGE_MAX + SECTOR as u32);
        assert_eq!(LOCK_MAP.end, FACTORY);
        #[cfg(feature = "agent")]
        {
            assert_eq!(
                LOCK_MAP.store_region(),
                keyway_agent::store::Config::new(at(194), 2)
            );
            assert_eq!(
                LOCK_MAP.audit_region(),
                keyway_audit::Config::new(at(196), 4)
            );
        }
    }

    /// Another map (as the on-target harness's for its smaller flash)
    /// lays out the same regions on its own pages.
    #[test]
    fn a_smaller_map_lays_out_its_own_pages() {
        let m = FlashMap {
            journal: 1,
            slot0: 3,
            slot1: 8,
            store: 13,
            audit: 16,
            end: 19,
        };
        assert_eq!(m.layout().slots, [at(3)..at(8), at(8)..at(13)]);
        assert_eq!(m.layout().journal, journal::Config::new(at(1), 2));
        assert_eq!(m.slot_len(), 5 * SECTOR as u32);
        #[cfg(feature = "agent")]
        assert_eq!(m.audit_region(), keyway_audit::Config::new(at(16), 3));
    }
}
