//! The bootloader's real slot check: envelopes signed by the host encoder,
//! installed with their envelope head in the slot's manifest area, then
//! re-verified by `VerifiedSlot` (signature, anti-rollback boot rule,
//! image digest) on the simulated nRF52840 flash; tampered images,
//! manifests and unknown signers are never booted. On all four geometries:
//! a verified update end to end, and a power-cut sweep over every flash
//! operation of it (manifest area, image, trial, confirm) with the real
//! `VerifiedSlot` as the bootloader's check.

mod common;

use common::{
    CutError, PASS, Vendor, assert_reverted, assert_settled, boot_verified, slot_check, vendor,
    verified_layout as layout,
};

use keyway_device::boot::{self, Boot, Confirmation, Reason, RevertCause, SlotCheck};
use keyway_device::install::{Arm, InstallError, Installer, LayoutError, Mode, SlotLayout, Target};
use keyway_device::journal::{Config, Journal};
use keyway_device::manifest_area::{HEADER_LEN, MAX_MANIFEST_LEN};
use keyway_device::verified::{HEAD_BUF_LEN, SlotError, boot_floor};
use keyway_sim::SimFlash;
use keyway_suit::DeviceState;
use keyway_vendor::keys::{Algorithm, SigningKey};

type Flash = SimFlash<4, 4096>;

fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn envelope(key: &SigningKey, sequence: u64, payload: Vec<u8>) -> Vec<u8> {
    common::release(key, "1.2.3", sequence, payload)
        .build()
        .unwrap()
        .envelope
}

/// Installs `env` into the inactive slot as a lock would: verify the head,
/// store it with `begin_with_manifest`, stream the payload. `tamper_head`
/// changes the stored head (after the lock's own check). Returns the slot.
fn install(
    flash: &mut Flash,
    journal: &mut Journal<Flash>,
    v: &Vendor,
    env: &[u8],
    tamper_head: Option<usize>,
) -> u8 {
    // The envelope's parts, unchecked (a lock runs verify_envelope first;
    // here an unknown signer's envelope must be writable for the tests).
    let _ = v;
    let checked = keyway_suit::inspect_envelope(env).unwrap();
    let exp = checked.payload.unwrap();
    let payload = checked.integrated.unwrap();
    let mut head = env[..payload.offset].to_vec();
    if let Some(at) = tamper_head {
        head[at] ^= 0x01;
    }
    let mut inst = Installer::<_>::begin_with_manifest(
        flash,
        journal,
        Target::new(&layout(), &exp, checked.manifest_digest),
        &head,
    )
    .unwrap();
    for chunk in payload.available.chunks(1000) {
        inst.push(flash, journal, chunk).unwrap();
    }
    inst.finish(flash, journal, Arm::Now).unwrap()
}

fn fresh() -> (Flash, Journal<Flash>) {
    let mut flash = Flash::nrf52840();
    let journal = Journal::open(&mut flash, layout().journal).unwrap();
    (flash, journal)
}

fn check(flash: &mut Flash, j: &Journal<Flash>, v: &Vendor, slot: u8) -> Result<u64, SlotError> {
    let l = layout();
    let mut buf = [0u8; HEAD_BUF_LEN];
    let state = *j.state();
    let mut c = slot_check(v, &l, &state, &mut buf);
    c.check(flash, slot).map(|i| i.sequence)
}

fn flip(flash: &Flash, offset: u32) -> Flash {
    let mut bytes = flash.as_bytes().to_vec();
    bytes[offset as usize] ^= 0x01;
    Flash::from_bytes(flash.geometry().clone(), bytes).unwrap()
}

/// Slot 1 holds a confirmed image of sequence 5; returns the lock.
fn confirmed(v: &Vendor) -> (Flash, Journal<Flash>) {
    let (mut flash, mut j) = fresh();
    let env = envelope(&v.key, 5, image(20_000, 1));
    assert_eq!(install(&mut flash, &mut j, v, &env, None), 1);
    let d = boot_verified(&mut flash, &mut j, v);
    assert_eq!(d.boot, Boot::Slot(1));
    let conf = Confirmation {
        sequence: 5,
        keyset_version: 0,
    };
    assert_eq!(boot::confirm(&mut j, &mut flash, PASS, conf), Ok(1));
    (flash, j)
}

/// [`confirmed`], then `env` installed into slot 0 (pending).
fn updated(v: &Vendor, env: &[u8]) -> (Flash, Journal<Flash>) {
    let (mut flash, mut j) = confirmed(v);
    assert_eq!(install(&mut flash, &mut j, v, env, None), 0);
    (flash, j)
}

#[test]
fn installed_slot_verifies_and_boots_on_trial_then_as_confirmed() {
    let v = vendor();
    let (mut flash, mut j) = fresh();
    let env = envelope(&v.key, 5, image(20_000, 1));
    assert_eq!(install(&mut flash, &mut j, &v, &env, None), 1);
    assert_eq!(check(&mut flash, &j, &v, 1), Ok(5));
    assert_eq!(check(&mut flash, &j, &v, 0), Err(SlotError::NoManifest));

    let d = boot_verified(&mut flash, &mut j, &v);
    assert_eq!(
        (d.boot, d.reason),
        (
            Boot::Slot(1),
            Reason::StartTrial {
                slot: 1,
                attempts_left: boot::MAX_TRIAL_BOOTS
            }
        )
    );
    let conf = Confirmation {
        sequence: 5,
        keyset_version: 0,
    };
    assert_eq!(boot::confirm(&mut j, &mut flash, PASS, conf), Ok(1));
    assert_eq!(j.state().floor, Some(5));
    // Boot rule: the running image's sequence equals the floor and boots.
    assert_eq!(check(&mut flash, &j, &v, 1), Ok(5));
    assert_settled(&boot_verified(&mut flash, &mut j, &v), 1);
}

#[test]
fn boot_rule_floor_is_sequence_at_least_floor() {
    assert_eq!(boot_floor(None), None);
    assert_eq!(boot_floor(Some(0)), None);
    assert_eq!(boot_floor(Some(5)), Some(4));
    assert_eq!(boot_floor(Some(u64::MAX)), Some(u64::MAX - 1));

    // A floor above the image's sequence refuses it (rollback).
    let v = vendor();
    let (mut flash, j) = confirmed(&v);
    let l = layout();
    let mut buf = [0u8; HEAD_BUF_LEN];
    let mut state = *j.state();
    state.floor = Some(6);
    let mut c = slot_check(&v, &l, &state, &mut buf);
    assert!(matches!(
        c.check(&mut flash, 1),
        Err(SlotError::BelowFloor {
            sequence: 5,
            floor: 6
        })
    ));
    // A key-set version below the journal's refuses it too.
    let mut state = *j.state();
    state.keyset_version = 1;
    let mut c = slot_check(&v, &l, &state, &mut buf);
    assert_eq!(
        c.check(&mut flash, 1),
        Err(SlotError::KeysetDown { stored: 1, got: 0 })
    );
}

#[test]
fn a_flipped_image_byte_is_refused_and_reverted() {
    let v = vendor();
    // Update: sequence 6 into slot 0.
    let env = envelope(&v.key, 6, image(30_000, 2));
    let (mut flash, j) = updated(&v, &env);
    assert_eq!(check(&mut flash, &j, &v, 0), Ok(6));
    for at in [0u32, 12_345, 29_999] {
        let mut bad = flip(&flash, layout().slots[0].start + at);
        assert!(matches!(
            check(&mut bad, &j, &v, 0),
            Err(SlotError::Image(keyway_suit::Error::PayloadDigestMismatch))
        ));
    }
    let mut bad = flip(&flash, layout().slots[0].start + 777);
    let mut j = Journal::open(&mut bad, layout().journal).unwrap();
    let d = boot_verified(&mut bad, &mut j, &v);
    assert_reverted(&d, Boot::Slot(1), 0, RevertCause::Unverified);
    assert_eq!(j.state().active_slot, 1);
}

#[test]
fn a_flipped_manifest_byte_is_refused() {
    let v = vendor();
    let env = envelope(&v.key, 6, image(30_000, 2));
    let (flash, j) = updated(&v, &env);
    let area = layout().manifest_area::<Flash>(0).unwrap();
    let head_len = keyway_suit::inspect_envelope(&env)
        .unwrap()
        .integrated
        .unwrap()
        .offset as u32;
    // Header (magic, version, length, CRC) and every 3rd head byte.
    let mut refused = 0;
    for at in (0..HEADER_LEN as u32 + head_len)
        .step_by(3)
        .chain([1, 5, 9, 13])
    {
        let mut bad = flip(&flash, area.start + at);
        let e = check(&mut bad, &j, &v, 0).unwrap_err();
        assert!(
            matches!(
                e,
                SlotError::NoManifest | SlotError::Crc | SlotError::Read { .. }
            ),
            "{at}: {e:?}"
        );
        refused += 1;
    }
    assert!(refused > 50, "{refused}");
    let mut bad = flip(&flash, area.start + HEADER_LEN as u32 + 40);
    let mut j2 = Journal::open(&mut bad, layout().journal).unwrap();
    assert_eq!(boot_verified(&mut bad, &mut j2, &v).boot, Boot::Slot(1));

    // A head altered before it was stored (valid CRC): the signature check
    // refuses it, wherever the byte is.
    for at in [30usize, 80, 200, head_len as usize - 3] {
        let (mut flash, mut j) = confirmed(&v);
        assert_eq!(install(&mut flash, &mut j, &v, &env, Some(at)), 0);
        assert!(
            matches!(check(&mut flash, &j, &v, 0), Err(SlotError::Envelope(_))),
            "{at}"
        );
        let d = boot_verified(&mut flash, &mut j, &v);
        assert_eq!(d.boot, Boot::Slot(1), "{at}");
        assert!(matches!(d.reason, Reason::Reverted { slot: 0, .. }));
    }
}

#[test]
fn an_unknown_signer_is_refused_and_never_booted() {
    let v = vendor();
    let stranger = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let (mut flash, mut j) = fresh();
    let env = envelope(&stranger, 5, image(20_000, 1));
    assert_eq!(install(&mut flash, &mut j, &v, &env, None), 1);
    assert!(matches!(
        check(&mut flash, &j, &v, 1),
        Err(SlotError::Envelope(
            keyway_suit::Error::BelowThreshold { .. }
        ))
    ));
    // Neither slot verifies: recovery, and the pending slot is dropped.
    let d = boot_verified(&mut flash, &mut j, &v);
    assert_eq!(d.boot, Boot::Recovery);
    // With a good active image, the stranger's update is reverted.
    let env = envelope(&stranger, 6, image(20_000, 3));
    let (mut flash, mut j) = updated(&v, &env);
    let d = boot_verified(&mut flash, &mut j, &v);
    assert_eq!(d.boot, Boot::Slot(1));
    assert!(matches!(
        d.reason,
        Reason::Reverted {
            slot: 0,
            cause: RevertCause::Unverified
        }
    ));
}

#[test]
fn a_tampered_active_slot_falls_back_to_the_verified_one() {
    let v = vendor();
    // An older image (sequence 4) in slot 0 fails the boot rule after the
    // confirm of 5: never a fallback target.
    let env = envelope(&v.key, 4, image(10_000, 9));
    let (mut flash, j) = updated(&v, &env);
    assert!(matches!(
        check(&mut flash, &j, &v, 0),
        Err(SlotError::BelowFloor {
            sequence: 4,
            floor: 5
        })
    ));
    // Sequence 5 again in slot 0 (same release, re-installed) verifies; a
    // tampered slot 1 then falls back to it.
    let env = envelope(&v.key, 5, image(10_000, 9));
    let (mut flash, mut j) = updated(&v, &env);
    let d = boot_verified(&mut flash, &mut j, &v);
    assert_eq!(d.boot, Boot::Slot(0));
    let conf = Confirmation {
        sequence: 5,
        keyset_version: 0,
    };
    assert_eq!(boot::confirm(&mut j, &mut flash, PASS, conf), Ok(0));
    // Slot 0 (active) is tampered: the bootloader falls back to slot 1.
    let mut bad = flip(&flash, layout().slots[0].start + 5);
    let mut j = Journal::open(&mut bad, layout().journal).unwrap();
    let d = boot_verified(&mut bad, &mut j, &v);
    assert_eq!(
        (d.boot, d.reason),
        (Boot::Slot(1), Reason::FellBack { unverified: 0 })
    );
    assert_eq!(j.state().active_slot, 1);
}

#[test]
fn installer_refuses_oversized_heads_and_layouts_without_an_area() {
    let v = vendor();
    let env = envelope(&v.key, 5, image(1000, 1));
    let checked = keyway_suit::inspect_envelope(&env).unwrap();
    let exp = checked.payload.unwrap();
    let (mut flash, mut j) = fresh();
    let ops = flash.ops();
    let big = vec![0u8; MAX_MANIFEST_LEN + 1];
    let e = Installer::<_>::begin_with_manifest(
        &mut flash,
        &mut j,
        Target::new(&layout(), &exp, checked.manifest_digest),
        &big,
    )
    .unwrap_err();
    assert_eq!(
        e,
        InstallError::ManifestTooLarge {
            len: MAX_MANIFEST_LEN + 1,
            max: MAX_MANIFEST_LEN
        }
    );
    assert!(e.to_string().contains("exceeds"));
    let none = SlotLayout {
        manifest_sectors: 0,
        sector_size: None,
        mode: Mode::Direct,
        ..layout()
    };
    let e = Installer::<_>::begin_with_manifest(
        &mut flash,
        &mut j,
        Target::new(&none, &exp, checked.manifest_digest),
        &[1, 2, 3],
    )
    .unwrap_err();
    assert_eq!(e, InstallError::NoManifestArea);
    assert_eq!(flash.ops(), ops, "nothing written or erased");

    // The area is excluded from the image capacity.
    let l = layout();
    assert_eq!(l.image_capacity::<Flash>(0), 0x2_0000 - 4096);
    assert_eq!(l.manifest_area::<Flash>(1), Some(0x4_F000..0x5_0000));
    assert_eq!(none.manifest_area::<Flash>(1), None);
    assert_eq!(none.image_capacity::<Flash>(1), 0x2_0000);

    // Validation: too small an area, no room left for the image.
    type Small = SimFlash<1, 512>;
    let small = SlotLayout::direct([0x4000..0x8000, 0x8000..0xC000], Config::new(0x2_0000, 3))
        .with_manifest_sectors(7);
    assert_eq!(
        small.validate::<Small>(0x10_0000),
        Err(LayoutError::ManifestAreaTooSmall {
            len: 7 * 512,
            min: 4096
        })
    );
    let full = SlotLayout {
        manifest_sectors: 32,
        sector_size: None,
        mode: Mode::Direct,
        ..small.clone()
    };
    assert_eq!(
        full.validate::<Small>(0x10_0000),
        Err(LayoutError::NoImageRoom { slot: 0 })
    );
    let ok = SlotLayout {
        manifest_sectors: 8,
        sector_size: None,
        mode: Mode::Direct,
        ..small
    };
    assert_eq!(ok.validate::<Small>(0x10_0000), Ok(()));
}

#[test]
fn arbitrary_manifest_area_contents_never_verify_or_panic() {
    let v = vendor();
    let (flash, j) = confirmed(&v);
    let area = layout().manifest_area::<Flash>(0).unwrap();
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as u32
    };
    for round in 0..200 {
        let mut bytes = flash.as_bytes().to_vec();
        let a = area.start as usize;
        for b in &mut bytes[a..a + 4096] {
            *b = next() as u8;
        }
        if round % 2 == 0 {
            bytes[a..a + 4].copy_from_slice(b"KWMF");
            bytes[a + 4..a + 8].copy_from_slice(&1u32.to_le_bytes());
            let len = next() % (MAX_MANIFEST_LEN as u32 + 64);
            bytes[a + 8..a + 12].copy_from_slice(&len.to_le_bytes());
            if round % 4 == 0 {
                let end = (a + HEADER_LEN + len as usize).min(a + 4096);
                let crc = crc32(&bytes[a + HEADER_LEN..end]);
                bytes[a + 12..a + 16].copy_from_slice(&crc.to_le_bytes());
            }
        }
        let mut f = Flash::from_bytes(flash.geometry().clone(), bytes).unwrap();
        assert!(!SlotCheck::verified(
            &mut slot_check(&v, &layout(), j.state(), &mut [0u8; HEAD_BUF_LEN]),
            &mut f,
            0
        ));
    }
    // A too-small head buffer is refused, not a panic.
    let mut f = flash.clone();
    let l = layout();
    let mut tiny = [0u8; 8];
    let mut c = slot_check(&v, &l, j.state(), &mut tiny);
    assert_eq!(c.check(&mut f, 1), Err(SlotError::Buffer));
    let _ = DeviceState::fresh();
}

fn crc32(bytes: &[u8]) -> u32 {
    // CRC-32 (ISO-HDLC), bitwise.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The verified update on every geometry, and its power-cut sweep.
mod geometries {
    use super::*;
    use crate::common::{Seeded, Watch, cuts, full_sweep};
    use keyway_device::boot::MAX_TRIAL_BOOTS;
    use keyway_device::journal::{PersistentState, TrialState};
    use keyway_sim::PowerCut;

    type SimError = keyway_sim::Error;

    const OLD_SEQ: u64 = 3;
    const NEW_SEQ: u64 = 5;
    const IMAGE_LEN: usize = 3000;

    /// A lock whose slot 0 holds a confirmed, verified image of sequence
    /// 3, to be updated to sequence 5 in slot 1.
    struct VLock {
        v: Vendor,
        layout: SlotLayout,
        old_env: Vec<u8>,
        new_env: Vec<u8>,
        old: Vec<u8>,
        new: Vec<u8>,
    }

    impl VLock {
        fn new(layout: SlotLayout) -> Self {
            let v = vendor();
            let (old, new) = (image(IMAGE_LEN, 3), image(IMAGE_LEN, 5));
            VLock {
                old_env: envelope(&v.key, OLD_SEQ, old.clone()),
                new_env: envelope(&v.key, NEW_SEQ, new.clone()),
                v,
                layout,
                old,
                new,
            }
        }

        /// The image bytes `slot` holds.
        fn held<'f, const W: usize, const E: usize>(
            &self,
            f: &'f SimFlash<W, E>,
            slot: u8,
        ) -> &'f [u8] {
            let place = self.layout.place::<SimFlash<W, E>>(slot).unwrap();
            let at = place.image.start as usize;
            &f.as_bytes()[at..at + IMAGE_LEN]
        }
    }

    /// Installs `env` as a lock does: resume the recorded download, or
    /// begin one that stores the envelope head in the manifest area.
    fn install_env<const W: usize, const E: usize>(
        flash: &mut SimFlash<W, E>,
        j: &mut Journal<SimFlash<W, E>>,
        layout: &SlotLayout,
        env: &[u8],
    ) -> Result<u8, InstallError<SimError>> {
        let checked = keyway_suit::inspect_envelope(env).unwrap();
        let exp = checked.payload.unwrap();
        let payload = checked.integrated.unwrap();
        let md = checked.manifest_digest;
        let mut inst = match j.state().download {
            Some(_) => Installer::<_>::resume(flash, j, Target::new(layout, &exp, md))?,
            None => Installer::<_>::begin_with_manifest(
                flash,
                j,
                Target::new(layout, &exp, md),
                &env[..payload.offset],
            )?,
        };
        let from = usize::try_from(inst.offset()).unwrap();
        for c in payload.available[from..].chunks(1000) {
            inst.push(flash, j, c)?;
        }
        inst.finish(flash, j, Arm::Now)
    }

    fn prepared<const W: usize, const E: usize>(
        lock: &VLock,
        mut flash: SimFlash<W, E>,
    ) -> SimFlash<W, E> {
        let mut j = Journal::open(&mut flash, lock.layout.journal).unwrap();
        // Install the old image into slot 0 (active 1 for a moment), then
        // record it as the confirmed active image.
        let s = PersistentState {
            active_slot: 1,
            ..PersistentState::default()
        };
        j.commit(&mut flash, &s).unwrap();
        assert_eq!(
            install_env(&mut flash, &mut j, &lock.layout, &lock.old_env),
            Ok(0)
        );
        let s = PersistentState {
            floor: Some(OLD_SEQ),
            active_slot: 0,
            trial: TrialState::Confirmed,
            ..PersistentState::default()
        };
        j.commit(&mut flash, &s).unwrap();
        flash
    }

    /// Power cycles until the lock settles (`true`) or the power fails.
    fn live<const W: usize, const E: usize>(
        lock: &VLock,
        flash: &mut SimFlash<W, E>,
        w: &mut Watch,
        what: &str,
    ) -> bool {
        for _ in 0..4 * usize::from(MAX_TRIAL_BOOTS) + 8 {
            flash.power_on();
            let mut j = Journal::open(flash, lock.layout.journal).unwrap();
            let s = *j.state();
            w.power_on(&s, what);
            if w.confirmed {
                assert_eq!(
                    (s.active_slot, s.trial, s.floor),
                    (1, TrialState::Confirmed, Some(NEW_SEQ)),
                    "{what}: confirm lost"
                );
            }
            w.installed |= s.active_slot == 1
                || matches!(
                    s.trial,
                    TrialState::Pending { slot: 1 } | TrialState::Trial { slot: 1, .. }
                );
            let mut head = [0u8; HEAD_BUF_LEN];
            let mut check = slot_check(&lock.v, &lock.layout, &s, &mut head);
            let d = match boot::boot(&mut j, flash, &mut check) {
                Ok(d) => d,
                Err(e) if e.is_cut() => return false,
                Err(e) => panic!("{what}: boot: {e:?}"),
            };
            let Boot::Slot(slot) = d.boot else {
                panic!("{what}: recovery: {d:?} from {s:?}");
            };
            let want = if slot == 0 { &lock.old } else { &lock.new };
            assert!(
                lock.held(flash, slot) == want.as_slice(),
                "{what}: slot {slot} booted without exactly its image"
            );
            match d.reason {
                Reason::StartTrial { slot: 1, .. } | Reason::ContinueTrial { slot: 1, .. } => {
                    w.trial_boots += 1;
                    assert!(w.trial_boots <= u32::from(MAX_TRIAL_BOOTS), "{what}");
                    let conf = Confirmation {
                        sequence: NEW_SEQ,
                        keyset_version: 0,
                    };
                    match boot::confirm(&mut j, flash, PASS, conf) {
                        Ok(1) => w.confirmed = true,
                        Err(e) if e.is_cut() => return false,
                        other => panic!("{what}: confirm: {other:?}"),
                    }
                    continue;
                }
                Reason::Reverted {
                    slot: 1,
                    cause: RevertCause::AttemptsExhausted,
                } if w.trial_boots == u32::from(MAX_TRIAL_BOOTS) => {}
                Reason::Active => {}
                other => panic!("{what}: unexpected {other:?} from {s:?}"),
            }
            if !w.installed && slot == 0 {
                match install_env(flash, &mut j, &lock.layout, &lock.new_env) {
                    Ok(1) => w.installed = true,
                    Err(e) if e.is_cut() => return false,
                    other => panic!("{what}: install: {other:?}"),
                }
                continue;
            }
            if d.commit.is_none() {
                return true;
            }
        }
        panic!("{what}: the lock never settled");
    }

    fn check_end<const W: usize, const E: usize>(
        lock: &VLock,
        flash: &mut SimFlash<W, E>,
        w: &Watch,
        what: &str,
    ) {
        let s = *Journal::open(flash, lock.layout.journal).unwrap().state();
        if s.active_slot == 1 {
            assert_eq!(
                (s.trial, s.floor, s.download),
                (TrialState::Confirmed, Some(NEW_SEQ), None),
                "{what}"
            );
        } else {
            // Only when every trial boot lost its confirm to a cut.
            assert_eq!(w.trial_boots, u32::from(MAX_TRIAL_BOOTS), "{what}: {s:?}");
            assert_eq!((s.trial, s.floor), (TrialState::None, Some(OLD_SEQ)));
        }
    }

    /// The update end to end, then every op cut three ways; returns the
    /// scenarios run.
    fn sweep<const W: usize, const E: usize>(fresh: SimFlash<W, E>, layout: SlotLayout) -> u64 {
        let name = fresh.geometry().name().to_owned();
        let lock = VLock::new(layout);
        let base = prepared(&lock, fresh);
        let mut dry = base.clone();
        let mut w = Watch::default();
        assert!(live(&lock, &mut dry, &mut w, "dry run"));
        assert!(w.confirmed, "{name}: the update did not confirm");
        check_end(&lock, &mut dry, &w, "dry run");
        let ops = dry.ops() - base.ops();
        let full = full_sweep();
        let (mut scenarios, mut nested) = (0u64, 0u64);
        for n in base.ops()..dry.ops() {
            for (k, first) in cuts(n).into_iter().enumerate() {
                let seed = n * 3 + k as u64;
                let what = format!("{name}: cut {first:?}");
                let mut flash = base.clone();
                flash.set_power_cut(PowerCut::new(seed).then(first));
                let mut w = Watch::default();
                assert!(!live(&lock, &mut flash, &mut w, &what), "{what}: no cut");
                flash.power_on();
                let (after, w_after) = (flash.clone(), w.clone());
                assert!(live(&lock, &mut flash, &mut w, &what));
                check_end(&lock, &mut flash, &w, &what);
                scenarios += 1;
                // A second cut during the recovery: every op (full sweep)
                // or one sampled.
                let rec = flash.ops() - after.ops();
                let mut rng = Seeded::new(seed ^ 0x5EED);
                let points: Vec<u64> = match (full, rec) {
                    (_, 0) => Vec::new(),
                    (true, _) => (0..rec).collect(),
                    (false, _) => vec![rng.next() % rec],
                };
                for r in points {
                    let second = cuts(after.ops() + r)[(rng.next() % 3) as usize];
                    let what = format!("{what}, then {second:?}");
                    let mut flash = after.clone();
                    flash.set_power_cut(PowerCut::new(seed * 31 + r).then(second));
                    let mut w = w_after.clone();
                    assert!(!live(&lock, &mut flash, &mut w, &what), "{what}: no cut");
                    assert!(live(&lock, &mut flash, &mut w, &what));
                    check_end(&lock, &mut flash, &w, &what);
                    scenarios += 1;
                    nested += 1;
                }
            }
        }
        println!(
            "verified update power-cut sweep ({name}, {} mode): {ops} ops, {scenarios} \
             scenarios ({nested} with nested cuts), VerifiedSlot as the boot check; 0 failures",
            if full { "full" } else { "default" }
        );
        scenarios
    }

    #[test]
    fn verified_update_power_cut_sweep_nrf52840() {
        let n = sweep(SimFlash::<4, 4096>::nrf52840(), layout());
        assert!(n > 0);
    }

    #[test]
    fn verified_update_power_cut_sweep_small_pages() {
        // An 8-page (4 KiB) manifest area.
        let layout = SlotLayout::direct([0x4000..0x8000, 0x8000..0xC000], Config::new(0x2_0000, 3))
            .with_manifest_sectors(8);
        assert!(sweep(SimFlash::<1, 512>::small_pages(), layout) > 0);
    }

    #[test]
    fn verified_update_power_cut_sweep_stm32f4() {
        // Slots of two 128 KiB sectors, the last one the manifest area.
        let layout = SlotLayout::direct(
            [0x2_0000..0x6_0000, 0x6_0000..0xA_0000],
            Config::new(0x4000, 2).with_slot_size(4096),
        )
        .with_manifest_sectors(1)
        .with_sector_size(128 * 1024);
        assert!(sweep(SimFlash::<4, 16384>::stm32f4(), layout) > 0);
    }

    #[test]
    fn verified_update_power_cut_sweep_ecc32() {
        let layout = SlotLayout::direct(
            [0..0x4_0000, 0x4_0000..0x8_0000],
            Config::new(0xC_0000, 2).with_slot_size(32 * 1024),
        )
        .with_manifest_sectors(1);
        assert!(sweep(SimFlash::<32, 131072>::ecc32(), layout) > 0);
    }
}
