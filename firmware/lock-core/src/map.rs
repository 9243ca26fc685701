//! The lock's flash map and its factory record, shared by the bootloader
//! (`firmware/lock-boot`), the application (`firmware/lock-app`) and the
//! host's provisioner (`firmware/lock-provision`).
//!
//! One NOR flash of 4 KiB erase sectors (the nRF52840's page), 4-byte
//! writes:
//!
//! | sectors | what |
//! | --- | --- |
//! | 0 | factory record ([`Factory`]): written once by the provisioner |
//! | 1-2 | the update journal (`keyway-device`) |
//! | 3..68 | slot 0: 64 image sectors (256 KiB), then 1 manifest sector |
//! | 68..133 | slot 1: the same |
//! | 133..135 | the owner store (`keyway-agent`) |
//! | 135..143 | the audit log (`keyway-audit`) |
//!
//! Direct A/B: an image runs from the slot it was installed into (here:
//! RAM-loaded from it by the bootloader, [`APP_LOAD`]).

use keyway_device::install::{Mode, SlotLayout};
use keyway_device::journal;
use keyway_suit::DeviceIdentity;
use sha2::{Digest, Sha256};

/// The erase sector size (nRF52840 page).
pub const SECTOR: usize = 4096;
/// The write size.
pub const WORD: usize = 4;
/// Sectors of the flash.
pub const FLASH_SECTORS: u32 = 143;
/// The flash's size in bytes (the flash file's length).
pub const FLASH_LEN: usize = FLASH_SECTORS as usize * SECTOR;

/// The factory record's sector.
pub const FACTORY: u32 = 0;
/// The journal's first sector.
pub const JOURNAL: u32 = 1;
/// Slot 0's first sector.
pub const SLOT0: u32 = 3;
/// Slot 1's first sector.
pub const SLOT1: u32 = 68;
/// The owner store's first sector.
pub const STORE: u32 = 133;
/// The audit log's first sector.
pub const AUDIT: u32 = 135;
const _: () = assert!(AUDIT + 8 == FLASH_SECTORS);

/// The most image bytes a slot holds (its sectors minus the manifest's).
pub const IMAGE_MAX: u32 = (SLOT1 - SLOT0 - 1) * SECTOR as u32;

/// Where the bootloader copies the verified image and the application is
/// linked to run (code SRAM of the MPS2 board, above the bootloader).
pub const APP_LOAD: u32 = 0x0010_0000;

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
#[cfg(feature = "agent")]
pub const fn store_region() -> keyway_agent::store::Config {
    keyway_agent::store::Config::new(at(STORE), AUDIT - STORE)
}

/// The audit log's region.
#[cfg(feature = "agent")]
pub const fn audit_region() -> keyway_audit::Config {
    keyway_audit::Config::new(at(AUDIT), FLASH_SECTORS - AUDIT)
}

/// The factory record's magic.
pub const FACTORY_MAGIC: [u8; 8] = *b"KWFACT01";
/// The factory record's length: magic, fields, SHA-256 of both.
pub const FACTORY_LEN: usize = 8 + 32 + 16 + 16 + 32 + 32 + 16 + 32;

/// What the factory programs into sector 0: the trust anchor, the
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
