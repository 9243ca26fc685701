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
use embedded_storage::nor_flash::NorFlash;
use keyway_channel::pairing::{DEFAULT_ITERATIONS, SALT_LEN};
use keyway_channel::{SetupCode, StoredVerifier};
use keyway_device::install::{Arm, Installer, Target};
use keyway_device::journal::{Journal, PersistentState, TrialState};
use keyway_suit::{DeviceState, TrustAnchors, Verified};
use lock_core::lock::Shared;
use lock_core::map::{self, Factory};
use lock_core::mem_flash::MemFlash;

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

    let cell = RefCell::new(MemFlash::erased());
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
        .finish(&mut flash, &mut journal, Arm::Later)
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
