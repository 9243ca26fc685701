//! Delta installs end to end on the simulated nRF52840: an envelope signed
//! with `keyway sign --delta-from`'s builder, verified, the patch applied
//! by `DeltaInstaller` with the active slot as the base, the produced image
//! booted on trial through the real `VerifiedSlot`. A delta for another
//! base, or whose patch header differs from the signed manifest, is
//! refused before anything is written; a power cut at every flash
//! operation of the install leaves the old image booting and a retry
//! produces the exact new image.

mod common;

use common::{
    PASS, Vendor, boot_verified, bytes, cuts, full_sweep, vendor, verified_layout as layout,
};
use keyway_device::boot::{self, Boot, Confirmation};
use keyway_device::delta::{DeltaError, DeltaInstaller, HeaderField};
use keyway_device::install::{Arm, Installer, Target};
use keyway_device::journal::{Journal, TrialState};
use keyway_sim::{PowerCut, SimFlash};
use keyway_suit::{DeviceState, Verified};
use keyway_vendor::encode::{
    EnvelopeBuilder, assemble_envelope, encode_manifest, encode_text, sign_digest,
};

type Flash = SimFlash<4, 4096>;

fn builder(v: &Vendor, sequence: u64, payload: Vec<u8>, from: Option<Vec<u8>>) -> EnvelopeBuilder {
    EnvelopeBuilder {
        delta_from: from,
        ..common::release(&v.key, "1.4.0", sequence, payload)
    }
}

/// The old image and the new one: a few scattered edits, a block moved by
/// an insertion (pointers shifted), a new tail.
fn pair(len: usize) -> (Vec<u8>, Vec<u8>) {
    let old = bytes(len, 7);
    let mut new = old.clone();
    for i in (100..len).step_by(997) {
        new[i] = new[i].wrapping_add(4);
    }
    new.splice(len / 2..len / 2, bytes(300, 8));
    new.extend_from_slice(b"keyway 1.4.0");
    (old, new)
}

fn verify<'a>(v: &Vendor, env: &'a [u8], floor: u64) -> Verified<'a> {
    keyway_suit::verify_envelope(env, &v.anchors, &v.identity, &DeviceState::new(floor)).unwrap()
}

/// A lock running `old` (sequence 5, confirmed) in slot 1.
fn lock_running(v: &Vendor, old: &[u8]) -> Flash {
    let mut flash = Flash::nrf52840();
    let mut j = Journal::open(&mut flash, layout().journal).unwrap();
    let env = builder(v, 5, old.to_vec(), None).build().unwrap().envelope;
    let ver = verify(v, &env, 0);
    let ip = ver.integrated.unwrap();
    let mut inst = Installer::<_>::begin_with_manifest(
        &mut flash,
        &mut j,
        Target::new(
            &layout(),
            ver.payload.as_ref().unwrap(),
            ver.manifest_digest,
        ),
        &env[..ip.offset],
    )
    .unwrap();
    inst.push(&mut flash, &mut j, ip.available).unwrap();
    assert_eq!(inst.finish(&mut flash, &mut j, Arm::Now).unwrap(), 1);
    assert_eq!(boot_verified(&mut flash, &mut j, v).boot, Boot::Slot(1));
    let conf = Confirmation {
        sequence: 5,
        keyset_version: 0,
    };
    assert_eq!(boot::confirm(&mut j, &mut flash, PASS, conf), Ok(1));
    flash
}

/// Applies the delta envelope `env` as the lock would: begin (base check,
/// head stored), the patch in `chunk`-byte pieces, finish.
fn apply(
    flash: &mut Flash,
    v: &Vendor,
    env: &[u8],
    chunk: usize,
) -> Result<u8, DeltaError<keyway_sim::Error>> {
    let mut j = Journal::open(flash, layout().journal).expect("journal opens");
    let ver = verify(v, env, 5);
    let binding = ver.delta.expect("a delta manifest");
    let ip = ver.integrated.unwrap();
    let mut d = DeltaInstaller::<_>::begin(
        flash,
        &mut j,
        Target::new(
            &layout(),
            ver.payload.as_ref().unwrap(),
            ver.manifest_digest,
        ),
        &binding,
        Some(&env[..ip.offset]),
    )?;
    for c in ip.available.chunks(chunk) {
        d.push(flash, &mut j, c)?;
    }
    d.finish(flash, &mut j, Arm::Now)
}

fn slot(flash: &Flash, s: usize) -> &[u8] {
    let r = &layout().slots[s];
    &flash.as_bytes()[r.start as usize..r.end as usize]
}

#[test]
fn delta_envelope_binds_base_and_output_and_installs_the_exact_image() {
    let v = vendor();
    let (old, new) = pair(24_000);
    let built = builder(&v, 6, new.clone(), Some(old.clone()))
        .build()
        .unwrap();
    let patch = built.patch.clone().unwrap();
    let ver = verify(&v, &built.envelope, 5);
    let d = ver.delta.expect("delta binding");
    assert_eq!(*d.base_digest, common::sha256(&old));
    assert_eq!(d.base_size, old.len() as u64);
    assert_eq!(*d.out.digest, common::sha256(&new));
    assert_eq!(d.out.size, Some(new.len() as u64));
    let p = ver.payload.unwrap();
    assert_eq!(
        (*p.digest, p.size),
        (common::sha256(&patch), Some(patch.len() as u64))
    );
    assert_eq!(ver.integrated_payload(), Some(&patch[..]));
    println!(
        "delta envelope: image {} bytes, patch {} bytes, envelope {} bytes",
        new.len(),
        patch.len(),
        built.envelope.len()
    );
    // A full envelope has no binding.
    let full = builder(&v, 6, new.clone(), None).build().unwrap().envelope;
    assert_eq!(verify(&v, &full, 5).delta, None);

    let mut flash = lock_running(&v, &old);
    for chunk in [1, 80, 244, 4096] {
        let mut f = flash.clone();
        assert_eq!(
            apply(&mut f, &v, &built.envelope, chunk),
            Ok(0),
            "chunk {chunk}"
        );
        assert_eq!(&slot(&f, 0)[..new.len()], &new[..], "chunk {chunk}");
    }
    assert_eq!(apply(&mut flash, &v, &built.envelope, 512), Ok(0));
    // The bootloader re-verifies the produced image against the manifest's
    // output digest and boots it on trial.
    let mut j = Journal::open(&mut flash, layout().journal).unwrap();
    assert_eq!(boot_verified(&mut flash, &mut j, &v).boot, Boot::Slot(0));
}

#[test]
fn delta_for_another_base_is_refused_before_anything_is_written() {
    let v = vendor();
    let (old, new) = pair(24_000);
    let mut flash = lock_running(&v, &old);
    let other = bytes(24_000, 99);
    let env = builder(&v, 6, new, Some(other.clone()))
        .build()
        .unwrap()
        .envelope;
    let before = flash.as_bytes().to_vec();
    let erases = flash.erase_counts().to_vec();
    match apply(&mut flash, &v, &env, 512) {
        Err(
            e @ DeltaError::WrongBase {
                expected,
                found,
                base_size,
            },
        ) => {
            assert_eq!(expected, common::sha256(&other));
            assert_eq!(found, common::sha256(&old));
            assert_eq!(base_size, 24_000);
            let msg = e.to_string();
            assert!(msg.starts_with("delta for another image"), "{msg}");
        }
        other => panic!("expected WrongBase, got {other:?}"),
    }
    assert!(flash.as_bytes() == &before[..], "the flash changed");
    assert_eq!(flash.erase_counts(), &erases[..], "a sector was erased");
}

/// A manifest whose delta binding differs from the patch header it
/// carries (a signer's tool bug or a spliced patch) is refused when the
/// header arrives, before the body is decoded; nothing becomes pending.
#[test]
fn delta_patch_header_mismatching_the_manifest_is_refused() {
    let v = vendor();
    let (old, new) = pair(24_000);
    let flash = lock_running(&v, &old);
    let b = builder(&v, 6, new.clone(), Some(old.clone()));
    let text = b.text_params().map(|t| encode_text(&t));
    let sign = |patch: &[u8], edit: &dyn Fn(&mut keyway_vendor::encode::DeltaParams)| {
        let mut params = b.delta_manifest_params(text.as_deref(), patch);
        edit(params.delta.as_mut().unwrap());
        let manifest = encode_manifest(&params);
        let auth = sign_digest(&manifest, &b.keys, &b.sign_options);
        assemble_envelope(&auth, &manifest, text.as_deref(), None, Some(patch))
    };
    let patch = keyway_vendor::delta::diff(&old, &new).unwrap();
    // The manifest promises another output than the patch's header.
    let mut wrong_out = new.clone();
    wrong_out[10] ^= 1;
    let env = sign(&patch, &|d| d.out_digest = common::sha256(&wrong_out));
    let mut f = flash.clone();
    assert_eq!(
        apply(&mut f, &v, &env, 512),
        Err(DeltaError::Header {
            field: HeaderField::OutputDigest
        })
    );
    let j = Journal::open(&mut f, layout().journal).unwrap();
    assert!(!matches!(j.state().trial, TrialState::Pending { .. }));
    assert_eq!(slot(&f, 1), slot(&flash, 1));
    // The patch was made from another base than the one the manifest binds.
    let foreign = keyway_vendor::delta::diff(&bytes(24_000, 3), &new).unwrap();
    let env = sign(&foreign, &|_| {});
    let mut f = flash.clone();
    assert_eq!(
        apply(&mut f, &v, &env, 7),
        Err(DeltaError::Header {
            field: HeaderField::BaseDigest
        })
    );
    // The output size differs.
    let env = sign(&patch, &|d| d.out_size += 1);
    let mut f = flash.clone();
    assert_eq!(
        apply(&mut f, &v, &env, 100),
        Err(DeltaError::Header {
            field: HeaderField::OutputSize
        })
    );
}

#[test]
fn delta_installer_ram_is_fixed() {
    use core::mem::size_of;
    let patcher = size_of::<keyway_delta::Patcher>();
    let installer = size_of::<Installer<Flash>>();
    let total = size_of::<DeltaInstaller<Flash>>();
    println!(
        "size_of DeltaInstaller<nRF52840 flash>: {total} bytes = Patcher {patcher} + Installer<256> {installer} + patch hash, header and cursors {}",
        total - patcher - installer
    );
    assert!(patcher <= 8 * 1024, "patcher {patcher} over 8 KiB");
    assert!(total <= 9 * 1024, "delta installer {total} over 9 KiB");
}

/// A power cut at every flash operation of a delta install (manifest area,
/// journal records, each output sector, the final commit), each of the
/// three ways (before, torn, after): afterwards the old image still boots,
/// the new one is never pending before its digest verified, and a retry
/// from the first patch byte installs the exact new image, which boots.
#[test]
fn delta_power_cut_sweep_nrf52840() {
    let t = std::time::Instant::now();
    let v = vendor();
    let len = if full_sweep() { 120_000 } else { 24_000 };
    let (old, new) = pair(len);
    let base_flash = lock_running(&v, &old);
    let env = builder(&v, 6, new.clone(), Some(old.clone()))
        .build()
        .unwrap()
        .envelope;
    let old_slot = slot(&base_flash, 1).to_vec();

    let mut dry = base_flash.clone();
    let start = dry.ops();
    assert_eq!(apply(&mut dry, &v, &env, 244), Ok(0));
    let total = dry.ops() - start;
    let last = start + total - 1;

    let mut scenarios = 0u64;
    for n in start..start + total {
        for (k, cut) in cuts(n).into_iter().enumerate() {
            let what = format!("op {n}, cut {cut:?}");
            let mut flash = base_flash.clone();
            flash.set_power_cut(PowerCut::new(n * 3 + k as u64).then(cut));
            assert!(apply(&mut flash, &v, &env, 244).is_err(), "{what}: no cut");
            flash.power_on();
            assert_eq!(slot(&flash, 1), &old_slot[..], "{what}: the base changed");
            let mut j = Journal::open(&mut flash, layout().journal).unwrap();
            let pending = matches!(j.state().trial, TrialState::Pending { slot: 0 });
            assert!(
                !pending || (n == last && k > 0),
                "{what}: pending before the produced image verified"
            );
            if !pending {
                // The old image still boots.
                let d = boot_verified(&mut flash, &mut j, &v);
                assert_eq!(d.boot, Boot::Slot(1), "{what}: old image does not boot");
                // Retry from the first patch byte.
                assert_eq!(apply(&mut flash, &v, &env, 244), Ok(0), "{what}: retry");
            }
            assert_eq!(&slot(&flash, 0)[..new.len()], &new[..], "{what}: output");
            let mut j = Journal::open(&mut flash, layout().journal).unwrap();
            assert_eq!(
                boot_verified(&mut flash, &mut j, &v).boot,
                Boot::Slot(0),
                "{what}"
            );
            scenarios += 1;
        }
    }
    println!(
        "delta power-cut sweep (nrf52840, {} KiB image, {} mode): {total} ops, {scenarios} scenarios, 0 failures ({:.1} s)",
        new.len() / 1024,
        if full_sweep() { "full" } else { "default" },
        t.elapsed().as_secs_f64()
    );
    assert_eq!(scenarios, 3 * total);
}
