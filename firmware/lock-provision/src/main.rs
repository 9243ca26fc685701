//! `lock-provision`: the factory for the emulated lock. Writes the flash
//! file (`lock_core::map`'s layout) as the lock leaves the factory, with
//! the lock's own crates on the host:
//!
//! * the factory record: the vendor's raw Ed25519 key (the trust
//!   anchor), vendor and class ids, the device key's seed, a fresh RNG
//!   seed, and the label's setup code;
//! * the owner store with the setup code's SPAKE2+ verifier (random salt,
//!   keyway-channel's default iterations); the code itself is not stored
//!   there (the label's copy in the factory record answers `setup-code`
//!   on the control channel, as the simulated lock's state directory does);
//! * the factory image (a signed envelope with an integrated payload)
//!   verified and installed into slot 0 through the installer, slot 0
//!   active and confirmed, the floor at its sequence number.
//!
//! ```text
//! lock-provision --flash DIR/flash.bin --root-pub root.raw --vendor-id V.bin
//!                --class-id C.bin --device-seed device.seed --firmware v1.suit
//! ```
//! Prints `Setup code: 1234-5670`. Refuses an existing flash file unless
//! `--force`.

use std::cell::RefCell;
use std::io::Read as _;
use std::process::ExitCode;

use chacha20::ChaCha20Rng;
use chacha20::rand_core::SeedableRng;
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use keyway_channel::pairing::{DEFAULT_ITERATIONS, SALT_LEN};
use keyway_channel::{SetupCode, StoredVerifier};
use keyway_device::install::{Installer, Target};
use keyway_device::journal::{Journal, PersistentState, TrialState};
use keyway_suit::{DeviceState, TrustAnchors, Verified};
use lock_core::lock::Shared;
use lock_core::map::{self, FLASH_LEN, Factory, SECTOR, WORD};

/// The flash in memory, with a NOR part's rules (erase pages to 0xFF,
/// aligned writes that only clear bits).
struct MemFlash(Vec<u8>);

#[derive(Debug)]
struct MemError;

impl embedded_storage::nor_flash::NorFlashError for MemError {
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

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(b)
}

fn read_exact<const N: usize>(path: &str, what: &str) -> Result<[u8; N], String> {
    let b = std::fs::read(path).map_err(|e| format!("{what} {path}: {e}"))?;
    b.try_into()
        .map_err(|b: Vec<u8>| format!("{what} {path}: {} bytes, expected {N}", b.len()))
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| -> Result<String, String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .ok_or_else(|| format!("{name} is missing (see the module doc for the usage)"))
    };
    let out = get("--flash")?;
    if std::path::Path::new(&out).exists() && !args.iter().any(|a| a == "--force") {
        return Err(format!(
            "{out} exists (a provisioned lock); pass --force to make a new one"
        ));
    }
    let root_key: [u8; 32] = read_exact(&get("--root-pub")?, "--root-pub")?;
    let vendor_id: [u8; 16] = read_exact(&get("--vendor-id")?, "--vendor-id")?;
    let class_id: [u8; 16] = read_exact(&get("--class-id")?, "--class-id")?;
    let device_seed: [u8; 32] = read_exact(&get("--device-seed")?, "--device-seed")?;
    let fw_path = get("--firmware")?;
    let v1 = std::fs::read(&fw_path).map_err(|e| format!("--firmware {fw_path}: {e}"))?;

    let mut rng = ChaCha20Rng::from_seed(random::<32>()?);
    let code = SetupCode::generate(&mut rng);
    let salt: [u8; SALT_LEN] = random()?;
    let verifier = StoredVerifier::derive(&code, &salt, DEFAULT_ITERATIONS);
    let mut label = [0u8; 16];
    let text = code.to_string();
    label[..text.len()].copy_from_slice(text.as_bytes());
    let factory = Factory {
        root_key,
        vendor_id,
        class_id,
        device_seed,
        rng_seed: random()?,
        label,
    };

    let cell = RefCell::new(MemFlash(vec![0xff; FLASH_LEN]));
    let mut flash = Shared(&cell);
    let e = |what: &'static str| move |err: &dyn std::fmt::Debug| format!("{what}: {err:?}");
    flash
        .write(map::at(map::FACTORY), &factory.encode())
        .map_err(|x| e("factory record")(&x))?;
    let mut store = keyway_agent::store::Store::open(&mut flash, map::store_region())
        .map_err(|x| e("owner store")(&x))?;
    store
        .set_verifier(&mut flash, &keyway_agent::agent::store_verifier(&verifier))
        .map_err(|x| e("owner store")(&x))?;
    let layout = map::layout();
    let mut journal = Journal::open(&mut flash, layout.journal).map_err(|x| e("journal")(&x))?;
    // Slot 1 marked active first, so slot 0 is the installer's target.
    let fresh = *journal.state();
    journal
        .commit(
            &mut flash,
            &PersistentState {
                active_slot: 1,
                ..fresh
            },
        )
        .map_err(|x| e("journal")(&x))?;
    let anchors = keyway_suit::PublicKey::from_raw(&root_key)
        .and_then(|k| TrustAnchors::new(&[k], 1))
        .map_err(|x| e("--root-pub")(&x))?;
    let mut verified = Verified::empty();
    keyway_suit::verify_envelope_into(
        &mut verified,
        &v1,
        &anchors,
        &factory.identity(),
        &DeviceState::new(0),
    )
    .map_err(|x| format!("--firmware {fw_path} does not verify for this lock: {x}"))?;
    let integrated = verified
        .integrated
        .ok_or_else(|| format!("--firmware {fw_path}: no integrated payload"))?;
    let payload = verified
        .integrated_payload()
        .ok_or_else(|| format!("--firmware {fw_path}: no integrated payload"))?;
    if payload.len() > map::IMAGE_MAX as usize {
        return Err(format!(
            "--firmware {fw_path}: the image is larger than a slot"
        ));
    }
    let mut installer = Installer::<_>::begin_with_manifest(
        &mut flash,
        &mut journal,
        Target::new(
            &layout,
            verified.payload.as_ref().ok_or("no payload expectation")?,
            verified.manifest_digest,
        ),
        &v1[..integrated.offset],
    )
    .map_err(|x| e("installer")(&x))?;
    installer
        .push(&mut flash, &mut journal, payload)
        .map_err(|x| e("installer")(&x))?;
    installer
        .finish_unarmed(&mut flash, &mut journal)
        .map_err(|x| e("installer")(&x))?;
    let state = *journal.state();
    journal
        .commit(
            &mut flash,
            &PersistentState {
                active_slot: 0,
                trial: TrialState::Confirmed,
                floor: Some(verified.sequence),
                ..state
            },
        )
        .map_err(|x| e("journal")(&x))?;
    let sequence = verified.sequence;
    drop(verified);
    let bytes = cell.into_inner().0;
    let tmp = format!("{out}.tmp");
    std::fs::write(&tmp, &bytes).map_err(|x| format!("writing {tmp}: {x}"))?;
    std::fs::rename(&tmp, &out).map_err(|x| format!("writing {out}: {x}"))?;
    println!(
        "provisioned {out}: factory image sequence {sequence} ({} bytes) in slot 0, confirmed",
        payload_len(&v1, integrated.offset)
    );
    println!("Setup code: {text}");
    Ok(())
}

fn payload_len(envelope: &[u8], offset: usize) -> usize {
    envelope.len().saturating_sub(offset)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lock-provision: {e}");
            ExitCode::FAILURE
        }
    }
}
