//! Trial boot, confirm and revert (direct A/B) on the simulated flash, with
//! states produced by the real installer: the happy path, a failed
//! self-test, a crash loop, a trial slot that fails verification, both
//! slots bad, and the exhaustive power-cut sweep over every flash
//! operation of "start trial", "confirm", "revert" and "decrement
//! attempts".
//!
//! The sweep runs a lock through power cycles (bootloader, then the
//! application's behaviour: confirm with a passing self-test, with a
//! failing one, or crash before confirming) until it settles, from every
//! alignment of the journal's page, cutting the power before / tearing /
//! interrupting every erase and write once, and, in each recovery, once
//! more at every operation. By default it covers nrf52840 and small-pages;
//! `KEYWAY_FULL_SWEEP=1` adds ecc32 and stm32f4.

mod common;
use common::{
    App, CutError, NEW, Nested, OLD_FLOOR, OLD_KEYSET, OnTrial, PASS, Watch, assert_reverted,
    assert_settled, bytes, cut_sweep, full_sweep, initial, on_trial,
};

use std::time::Instant;

use keyway_device::boot::{
    self, Boot, ConfirmError, Confirmation, Decision, MAX_TRIAL_BOOTS, Reason, RevertCause,
    SelfTest,
};
use keyway_device::install::{Arm, Installer, SlotLayout, Target};
use keyway_device::journal::{self, Config, Journal, PersistentState, TrialState};
use keyway_sim::SimFlash;
use keyway_suit::ImageExpectation;
use keyway_testkit::geometry::{NRF52840, Part};
use sha2::{Digest, Sha256};

type SimError = keyway_sim::Error;

/// A lock: its layout, and the image each slot must hold to verify. The
/// test's [`boot::SlotCheck`] compares the slot with that image; on a lock
/// it re-checks the digest and the signed manifest kept next to the image.
#[derive(Clone)]
struct Lock {
    layout: SlotLayout,
    images: [Vec<u8>; 2],
}

impl Lock {
    fn verified<const W: usize, const E: usize>(&self, flash: &SimFlash<W, E>, slot: u8) -> bool {
        let r = &self.layout.slots[usize::from(slot)];
        let image = &self.images[usize::from(slot)];
        let held = &flash.as_bytes()[r.start as usize..r.end as usize];
        held[..image.len()] == image[..]
    }

    fn check<const W: usize, const E: usize>(
        &self,
    ) -> impl FnMut(&mut SimFlash<W, E>, u8) -> bool + '_ {
        move |flash: &mut SimFlash<W, E>, slot| self.verified(flash, slot)
    }

    fn open<const W: usize, const E: usize>(
        &self,
        flash: &mut SimFlash<W, E>,
    ) -> Journal<SimFlash<W, E>> {
        Journal::open(flash, self.layout.journal).expect("journal opens")
    }

    /// One run of the bootloader (reopening the journal: a reset).
    fn boot<const W: usize, const E: usize>(
        &self,
        flash: &mut SimFlash<W, E>,
    ) -> Result<Decision, journal::JournalError<SimError>> {
        let mut journal = self.open(flash);
        let decision = boot::boot(&mut journal, flash, &mut self.check())?;
        if let Boot::Slot(s) = decision.boot {
            assert!(self.verified(flash, s), "booted unverified slot {s}");
        }
        Ok(decision)
    }
}

/// A lock with the old image in slot 0 (active, confirmed, floor 41, key
/// set 3) and the new image installed into slot 1 by the installer: the
/// journal holds `Pending { slot: 1 }`. `fill` extra records of that state
/// shift where the journal's page turns.
fn installed<const W: usize, const E: usize>(
    mut flash: SimFlash<W, E>,
    layout: SlotLayout,
    image_len: usize,
    fill: usize,
) -> (SimFlash<W, E>, Lock) {
    let old = bytes(image_len, 0xA0);
    let new = bytes(image_len, 0xB1);
    let r = &layout.slots[0];
    flash.write(r.start, &old).unwrap();
    let mut journal = Journal::open(&mut flash, layout.journal).unwrap();
    journal.commit(&mut flash, &initial()).unwrap();
    let digest: [u8; 32] = Sha256::digest(&new).into();
    let exp = ImageExpectation {
        digest: &digest,
        size: Some(new.len() as u64),
        uri: None,
    };
    let mut inst = Installer::<_>::begin(
        &mut flash,
        &mut journal,
        Target::new(&layout, &exp, [7; 32]),
    )
    .unwrap();
    for c in new.chunks(700) {
        inst.push(&mut flash, &mut journal, c).unwrap();
    }
    assert_eq!(inst.finish(&mut flash, &mut journal, Arm::Now).unwrap(), 1);
    let pending = *journal.state();
    assert_eq!(pending.trial, TrialState::Pending { slot: 1 });
    for _ in 0..fill {
        journal.commit(&mut flash, &pending).unwrap();
    }
    let lock = Lock {
        layout,
        images: [old, new],
    };
    (flash, lock)
}

fn ecc32_layout() -> SlotLayout {
    SlotLayout::direct(
        [0..0x6_0000, 0x6_0000..0xC_0000],
        Config::new(0xC_0000, 2).with_slot_size(32 * 1024),
    )
}

fn stm32f4_layout() -> SlotLayout {
    // 16 KiB sectors at the start of the bank: 0x0, 0x4000, 0x8000, 0xC000.
    SlotLayout::direct(
        [0x0..0x4000, 0x4000..0x8000],
        Config::new(0x8000, 2).with_slot_size(4096),
    )
}

fn nrf() -> (SimFlash<4, 4096>, Lock) {
    installed(NRF52840.flash(), NRF52840.direct, 8192, 0)
}

fn state<const W: usize, const E: usize>(
    lock: &Lock,
    flash: &mut SimFlash<W, E>,
) -> PersistentState {
    *lock.open(flash).state()
}

#[test]
fn happy_path_starts_a_trial_and_confirm_raises_the_floor() {
    let (mut flash, lock) = nrf();
    let d = lock.boot(&mut flash).unwrap();
    assert_eq!(d.boot, Boot::Slot(1));
    assert_eq!(
        d.reason,
        Reason::StartTrial {
            slot: 1,
            attempts_left: MAX_TRIAL_BOOTS
        }
    );
    let s = state(&lock, &mut flash);
    assert_eq!(
        s.trial,
        TrialState::Trial {
            slot: 1,
            attempts_left: MAX_TRIAL_BOOTS
        }
    );
    assert_eq!((s.active_slot, s.floor), (0, Some(OLD_FLOOR)), "not yet");

    // The application confirms; one record holds all of it.
    let mut j = lock.open(&mut flash);
    let seq = j.sequence();
    assert_eq!(boot::confirm(&mut j, &mut flash, PASS, NEW), Ok(1));
    assert_eq!(j.sequence(), seq.map(|s| s + 1));
    let s = state(&lock, &mut flash);
    assert_eq!(s.active_slot, 1);
    assert_eq!(s.trial, TrialState::Confirmed);
    assert_eq!(s.floor, Some(NEW.sequence));
    assert_eq!(s.keyset_version, NEW.keyset_version);

    // Later boots: the new image, nothing committed.
    for _ in 0..4 {
        assert_settled(&lock.boot(&mut flash).unwrap(), 1);
    }
    // A second confirm is refused and names why.
    let mut j = lock.open(&mut flash);
    let e = boot::confirm(&mut j, &mut flash, PASS, NEW).unwrap_err();
    assert_eq!(
        e,
        ConfirmError::NoTrial {
            trial: TrialState::Confirmed
        }
    );
    assert!(e.to_string().contains("no trial"));
}

#[test]
fn confirm_refuses_a_lower_floor_or_key_set() {
    let (mut flash, lock) = nrf();
    lock.boot(&mut flash).unwrap();
    let before = state(&lock, &mut flash);
    let mut j = lock.open(&mut flash);
    let (floor, keyset) = (OLD_FLOOR - 1, OLD_KEYSET - 1);
    for (low, refused) in [
        (
            Confirmation {
                sequence: floor,
                ..NEW
            },
            ConfirmError::FloorDown {
                floor: OLD_FLOOR,
                got: floor,
            },
        ),
        (
            Confirmation {
                keyset_version: keyset,
                ..NEW
            },
            ConfirmError::KeysetDown {
                current: OLD_KEYSET,
                got: keyset,
            },
        ),
    ] {
        assert_eq!(boot::confirm(&mut j, &mut flash, PASS, low), Err(refused));
    }
    assert_eq!(state(&lock, &mut flash), before, "nothing committed");
    // Equal values are kept.
    let same = Confirmation {
        sequence: OLD_FLOOR,
        keyset_version: OLD_KEYSET,
    };
    assert_eq!(boot::confirm(&mut j, &mut flash, PASS, same), Ok(1));
}

#[test]
fn failed_self_test_reverts_on_the_next_boot() {
    for failing in [
        SelfTest {
            motor: false,
            ..PASS
        },
        SelfTest {
            sensors: false,
            ..PASS
        },
        SelfTest {
            comms: false,
            ..PASS
        },
    ] {
        let (mut flash, lock) = nrf();
        assert_eq!(lock.boot(&mut flash).unwrap().boot, Boot::Slot(1));
        let mut j = lock.open(&mut flash);
        let e = boot::confirm(&mut j, &mut flash, failing, NEW).unwrap_err();
        assert_eq!(
            e,
            ConfirmError::SelfTestFailed {
                slot: 1,
                self_test: failing
            }
        );
        // A later pass in the same boot does not undo it.
        assert_eq!(
            boot::confirm(&mut j, &mut flash, PASS, NEW),
            Err(ConfirmError::RevertScheduled { slot: 1 })
        );
        let d = lock.boot(&mut flash).unwrap();
        assert_reverted(&d, Boot::Slot(0), 1, RevertCause::AttemptsExhausted);
        let s = state(&lock, &mut flash);
        assert_eq!(s.trial, TrialState::None);
        assert_eq!(s.active_slot, 0);
        assert_eq!(s.floor, Some(OLD_FLOOR), "floor unchanged");
        assert_eq!(s.keyset_version, OLD_KEYSET);
        assert_eq!(lock.boot(&mut flash).unwrap().reason, Reason::Active);
    }
}

#[test]
fn crash_loop_reverts_after_max_trial_boots() {
    let (mut flash, lock) = nrf();
    let mut trial_boots = 0;
    let mut boots = 0;
    loop {
        let d = lock.boot(&mut flash).unwrap();
        boots += 1;
        match d.boot {
            Boot::Slot(1) => trial_boots += 1, // crashes before confirming
            Boot::Slot(0) => {
                assert_eq!(
                    d.reason,
                    Reason::Reverted {
                        slot: 1,
                        cause: RevertCause::AttemptsExhausted
                    }
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(boots < 10);
    }
    assert_eq!(trial_boots, MAX_TRIAL_BOOTS);
    let s = state(&lock, &mut flash);
    assert_eq!(
        (s.active_slot, s.trial, s.floor),
        (0, TrialState::None, Some(OLD_FLOOR))
    );
}

#[test]
fn a_trial_slot_that_fails_verification_is_never_booted() {
    // Pending, then corrupted: the trial never starts.
    let (mut flash, lock) = nrf();
    let mut broken = lock.clone();
    broken.images[1][100] ^= 1;
    let d = broken.boot(&mut flash).unwrap();
    assert_reverted(&d, Boot::Slot(0), 1, RevertCause::Unverified);
    assert_eq!(state(&lock, &mut flash).trial, TrialState::None);

    // On trial, then fails verification: reverted at the next boot.
    let (mut flash, lock) = nrf();
    assert_eq!(lock.boot(&mut flash).unwrap().boot, Boot::Slot(1));
    let d = broken.boot(&mut flash).unwrap();
    assert_reverted(&d, Boot::Slot(0), 1, RevertCause::Unverified);
    let s = state(&lock, &mut flash);
    assert_eq!((s.active_slot, s.trial), (0, TrialState::None));
}

#[test]
fn both_slots_bad_is_recovery_and_a_local_install_leads_to_a_trial() {
    let (mut flash, lock) = nrf();
    // Start the trial, then both images go bad.
    assert_eq!(lock.boot(&mut flash).unwrap().boot, Boot::Slot(1));
    let mut bad = lock.clone();
    bad.images[0][0] ^= 1;
    bad.images[1][0] ^= 1;
    let d = bad.boot(&mut flash).unwrap();
    assert_reverted(&d, Boot::Recovery, 1, RevertCause::Unverified);
    let d = bad.boot(&mut flash).unwrap();
    assert_eq!(
        (d.boot, d.reason, d.commit),
        (Boot::Recovery, Reason::NoVerifiedSlot, None)
    );

    // Recovery accepts a local update into the inactive slot (1).
    let fresh = bytes(5000, 0xC2);
    let digest: [u8; 32] = Sha256::digest(&fresh).into();
    let exp = ImageExpectation {
        digest: &digest,
        size: Some(fresh.len() as u64),
        uri: None,
    };
    let mut j = lock.open(&mut flash);
    let mut inst =
        Installer::<_>::begin(&mut flash, &mut j, Target::new(&lock.layout, &exp, [9; 32]))
            .unwrap();
    inst.push(&mut flash, &mut j, &fresh).unwrap();
    assert_eq!(inst.finish(&mut flash, &mut j, Arm::Now).unwrap(), 1);
    let mut recovered = bad.clone();
    recovered.images[1] = fresh;
    let d = recovered.boot(&mut flash).unwrap();
    assert_eq!(d.boot, Boot::Slot(1));
    assert!(matches!(d.reason, Reason::StartTrial { slot: 1, .. }));
    let mut j = lock.open(&mut flash);
    assert_eq!(boot::confirm(&mut j, &mut flash, PASS, NEW), Ok(1));
}

#[test]
fn the_other_slot_boots_when_the_active_one_fails_verification() {
    let (mut flash, lock) = nrf();
    lock.boot(&mut flash).unwrap();
    let mut j = lock.open(&mut flash);
    boot::confirm(&mut j, &mut flash, PASS, NEW).unwrap();
    let mut bad = lock.clone();
    bad.images[1][0] ^= 1;
    let d = bad.boot(&mut flash).unwrap();
    assert_eq!(
        (d.boot, d.reason),
        (Boot::Slot(0), Reason::FellBack { unverified: 1 })
    );
    let s = state(&lock, &mut flash);
    assert_eq!(
        (s.active_slot, s.floor),
        (0, Some(NEW.sequence)),
        "floor kept"
    );
}

#[test]
fn decide_is_pure_and_never_picks_an_unverified_slot() {
    let trials = [
        TrialState::None,
        TrialState::Confirmed,
        TrialState::Pending { slot: 0 },
        TrialState::Pending { slot: 1 },
    ]
    .into_iter()
    .chain((0..=MAX_TRIAL_BOOTS + 1).flat_map(|n| {
        [0, 1].map(|slot| TrialState::Trial {
            slot,
            attempts_left: n,
        })
    }));
    let mut n = 0;
    for trial in trials {
        for active in [0u8, 1] {
            for ok in [[false, false], [false, true], [true, false], [true, true]] {
                let s = PersistentState {
                    active_slot: active,
                    trial,
                    floor: Some(5),
                    ..PersistentState::default()
                };
                let d = boot::decide(&s, ok);
                assert_eq!(d, boot::decide(&s, ok));
                match d.boot {
                    Boot::Slot(b) => assert!(ok[usize::from(b)], "{s:?} {ok:?} -> {d:?}"),
                    Boot::Recovery => assert_eq!(ok, [false, false]),
                }
                if let Some(c) = d.commit {
                    assert_eq!(c.floor, s.floor, "the bootloader never moves the floor");
                    assert!(c.is_valid());
                }
                n += 1;
            }
        }
    }
    assert!(n > 0);
}

/// Power cycles until the lock settles (a boot that changes nothing).
/// Returns `false` if the power failed (the cut plan fired).
fn run<const W: usize, const E: usize>(
    lock: &Lock,
    flash: &mut SimFlash<W, E>,
    app: App,
    watch: &mut Watch,
    what: &str,
) -> bool {
    for _ in 0..4 * usize::from(MAX_TRIAL_BOOTS) + 8 {
        let mut journal = lock.open(flash);
        let s = *journal.state();
        // The floor and key set never go down; a completed confirm stays.
        watch.power_on(&s, what);
        if watch.confirmed {
            assert_eq!(s.active_slot, 1, "{what}: confirm lost: {s:?}");
            assert_eq!(s.floor, Some(NEW.sequence), "{what}: confirm lost");
        }
        let r = boot::boot(&mut journal, flash, &mut lock.check());
        if r.is_cut() {
            return false;
        }
        let d = r.unwrap_or_else(|e| panic!("{what}: boot failed: {e:?}"));
        let slot = match d.boot {
            Boot::Slot(slot) => slot,
            Boot::Recovery => panic!("{what}: recovery with a good image"),
        };
        assert!(
            lock.verified(flash, slot),
            "{what}: booted unverified {slot}"
        );
        match d.reason {
            Reason::StartTrial { .. } | Reason::ContinueTrial { .. } => {
                match on_trial(
                    app,
                    &mut journal,
                    flash,
                    1,
                    NEW,
                    &mut watch.trial_boots,
                    what,
                ) {
                    OnTrial::Cut => return false,
                    OnTrial::Confirmed => watch.confirmed = true,
                    OnTrial::Crashed | OnTrial::Failed => {}
                }
            }
            Reason::Active if d.commit.is_none() => return true,
            _ => {}
        }
    }
    panic!("{what}: the lock never settled");
}

/// The settled state `s` after `app`'s run: confirmed or reverted.
fn check_settled(s: PersistentState, app: App, what: &str) {
    match app {
        App::Pass => {
            assert_eq!(s.active_slot, 1, "{what}");
            assert_eq!(s.trial, TrialState::Confirmed, "{what}");
            assert_eq!(s.floor, Some(NEW.sequence), "{what}");
            assert_eq!(s.keyset_version, NEW.keyset_version, "{what}");
        }
        App::Fail | App::Crash => {
            assert_eq!(s.active_slot, 0, "{what}");
            assert_eq!(s.trial, TrialState::None, "{what}");
            assert_eq!(s.floor, Some(OLD_FLOOR), "{what}");
            assert_eq!(s.keyset_version, OLD_KEYSET, "{what}");
        }
    }
}

/// The sweep on one geometry; returns (scenarios, nested).
fn sweep<const W: usize, const E: usize>(
    fresh: SimFlash<W, E>,
    layout: SlotLayout,
    image_len: usize,
    nested_all: bool,
) -> (u64, u64) {
    let name = fresh.geometry().name().to_owned();
    let per_page = {
        let mut f = fresh.clone();
        Journal::open(&mut f, layout.journal)
            .unwrap()
            .slots_per_page() as usize
    };
    let mut scenarios = 0u64;
    let mut nested = 0u64;
    let mut erases = 0u64;
    let second = if nested_all {
        Nested::All
    } else {
        Nested::Sample
    };
    for fill in 0..per_page {
        let (base, lock) = installed(fresh.clone(), layout.clone(), image_len, fill);
        for app in [App::Pass, App::Fail, App::Crash] {
            let swept = cut_sweep(
                &base,
                &format!("{name}: fill {fill}, {app:?}"),
                (fill as u64) << 32,
                0xB007,
                second,
                |flash, w: &mut Watch, what| run(&lock, flash, app, w, what),
                |flash, what| check_settled(state(&lock, flash), app, what),
            );
            scenarios += swept.scenarios;
            nested += swept.nested;
            erases += swept.dry_erases;
        }
    }
    assert!(erases > 0, "{name}: no sequence turned a journal page");
    println!(
        "boot power-cut sweep ({name}): {scenarios} scenarios ({nested} with nested cuts) over \
         start trial, confirm, self-test failure + revert, crash loop (decrement attempts + \
         revert), {per_page} journal alignments, {erases} journal page erases in the dry runs; \
         0 failures"
    );
    (scenarios, nested)
}

/// The boot sweep on one row of the geometry table: its image length
/// and layout. ecc32 and stm32f4 run with `KEYWAY_FULL_SWEEP=1`, with
/// this file's layouts for them (smaller sectors for the journal's
/// page turns).
fn boot_sweep_on<const W: usize, const E: usize>(part: &Part<W, E>) {
    let (image_len, layout) = match part.name {
        "nrf52840" => (8192, part.direct.clone()),
        "small-pages" => (2048, part.direct.clone()),
        _ if !full_sweep() => {
            println!("{} boot sweep: set KEYWAY_FULL_SWEEP=1", part.name);
            return;
        }
        "ecc32" => (8192, ecc32_layout()),
        _ => (8192, stm32f4_layout()),
    };
    let t = Instant::now();
    let (n, _) = sweep(part.flash(), layout, image_len, true);
    println!("{} sweep: {:.2} s", part.name, t.elapsed().as_secs_f64());
    assert!(n > 0);
}

// The tests power_cut_sweep::{nrf52840, stm32f4, small_pages, ecc32}.
keyway_testkit::per_geometry!(power_cut_sweep => boot_sweep_on);
