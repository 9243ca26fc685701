//! Swap mode: an update staged in the secondary slot (one sector in), swapped
//! into the primary by the bootloader with at most one erase per sector per
//! slot, booted on trial, confirmed or swapped back; real signed envelopes
//! re-verified by `VerifiedSlot`; power cut at every flash operation of the
//! whole update (download, swap, trial, confirm or revert) on every geometry,
//! with a second cut during the recovery.

mod common;

use common::{
    App, CLASS, CutError, Nested, OnTrial, PASS, VENDOR, Vendor, Watch, assert_reverted,
    assert_settled, cut_sweep, full_sweep, on_trial, slot_check, vendor,
};
use keyway_device::boot::{
    self, Boot, ConfirmError, Confirmation, MAX_TRIAL_BOOTS, Reason, RevertCause, SelfTest,
};
use keyway_device::install::{self, Arm, Installer, Mode, SlotLayout, Target};
use keyway_device::journal::{
    self, Config, Journal, PersistentState, SwapPhase, SwapProgress, TrialState,
};
use keyway_device::swap;
use keyway_device::verified::HEAD_BUF_LEN;
use keyway_sim::{Error as SimError, SimFlash};
use keyway_testkit::geometry::{NRF52840, Part};
use keyway_vendor::encode::EnvelopeBuilder;

const OLD_SEQ: u64 = 1;
const NEW_SEQ: u64 = 2;
const NEW: Confirmation = Confirmation {
    sequence: NEW_SEQ,
    keyset_version: 0,
};

/// One update: the vendor, the two signed images, the swap layout.
struct Update {
    v: Vendor,
    old: Image,
    new: Image,
    layout: SlotLayout,
}

struct Image {
    head: Vec<u8>,
    payload: Vec<u8>,
    envelope: Vec<u8>,
}

impl Update {
    fn new(layout: SlotLayout, old_len: usize, new_len: usize, seed: u64) -> Self {
        let v = vendor();
        let image = |sequence, len, seed| {
            let payload = common::bytes(len, seed);
            let envelope = EnvelopeBuilder {
                sequence,
                version: format!("1.{sequence}.0").parse().unwrap(),
                vendor_domain: VENDOR.into(),
                class_name: CLASS.into(),
                notes: Some("# update\n\nFixes.\n".into()),
                payload: payload.clone(),
                keys: vec![v.key.clone()],
                ..Default::default()
            }
            .build()
            .unwrap()
            .envelope;
            let at = keyway_suit::inspect_envelope(&envelope)
                .unwrap()
                .integrated
                .unwrap()
                .offset;
            Image {
                head: envelope[..at].to_vec(),
                payload,
                envelope,
            }
        };
        Update {
            old: image(OLD_SEQ, old_len, seed),
            new: image(NEW_SEQ, new_len, seed ^ 0x5A5A),
            layout,
            v,
        }
    }

    fn open<const W: usize, const E: usize>(
        &self,
        flash: &mut SimFlash<W, E>,
    ) -> Result<Journal<SimFlash<W, E>>, journal::JournalError<SimError>> {
        Journal::open(flash, self.layout.journal)
    }

    /// The bootloader's step with the real re-verification.
    fn boot<const W: usize, const E: usize>(
        &self,
        flash: &mut SimFlash<W, E>,
        j: &mut Journal<SimFlash<W, E>>,
    ) -> Result<boot::Decision, swap::SwapError<SimError>> {
        let mut buf = [0u8; HEAD_BUF_LEN];
        let state = *j.state();
        let mut check = slot_check(&self.v, &self.layout, &state, &mut buf);
        swap::boot::<_, _, 256>(j, flash, &self.layout, &mut check)
    }

    /// Which image the primary holds, byte for byte (image and manifest
    /// area); `None`: neither (a mix, or damaged).
    fn primary<const W: usize, const E: usize>(&self, flash: &SimFlash<W, E>) -> Option<Which> {
        let place = self.layout.place::<SimFlash<W, E>>(0).unwrap();
        let area = place.manifest.unwrap();
        let bytes = flash.as_bytes();
        let holds = |img: &Image| {
            let at = place.image.start as usize;
            let head_at = area.start as usize + keyway_device::manifest_area::HEADER_LEN;
            bytes[at..at + img.payload.len()] == img.payload[..]
                && bytes[head_at..head_at + img.head.len()] == img.head[..]
        };
        if holds(&self.new) {
            Some(Which::New)
        } else if holds(&self.old) {
            Some(Which::Old)
        } else {
            None
        }
    }

    /// A factory-programmed lock: the old image in the primary with its
    /// manifest, confirmed with floor `OLD_SEQ`.
    fn factory<const W: usize, const E: usize>(&self, mut flash: SimFlash<W, E>) -> SimFlash<W, E> {
        let direct = SlotLayout {
            mode: Mode::Direct,
            ..self.layout.clone()
        };
        let mut j = self.open(&mut flash).unwrap();
        j.commit(
            &mut flash,
            &PersistentState {
                active_slot: 1,
                ..PersistentState::default()
            },
        )
        .unwrap();
        let checked = keyway_suit::inspect_envelope(&self.old.envelope).unwrap();
        let mut inst = Installer::<_>::begin_with_manifest(
            &mut flash,
            &mut j,
            Target::new(&direct, &checked.payload.unwrap(), checked.manifest_digest),
            &self.old.head,
        )
        .unwrap();
        inst.push(&mut flash, &mut j, &self.old.payload).unwrap();
        assert_eq!(inst.finish(&mut flash, &mut j, Arm::Now).unwrap(), 0);
        j.commit(
            &mut flash,
            &PersistentState {
                floor: Some(OLD_SEQ),
                active_slot: 0,
                trial: TrialState::Confirmed,
                ..PersistentState::default()
            },
        )
        .unwrap();
        assert_eq!(self.primary(&flash), Some(Which::Old));
        flash
    }

    /// The application's download of the new image into the staging area
    /// (resumed if the journal records it). `Ok(false)`: power cut.
    fn download<const W: usize, const E: usize>(
        &self,
        flash: &mut SimFlash<W, E>,
        j: &mut Journal<SimFlash<W, E>>,
    ) -> Result<bool, install::InstallError<SimError>> {
        let checked = keyway_suit::inspect_envelope(&self.new.envelope).unwrap();
        let exp = checked.payload.unwrap();
        let digest = checked.manifest_digest;
        let started = Installer::<_>::resume_or_begin(
            flash,
            j,
            Target::new(&self.layout, &exp, digest),
            Some(&self.new.head),
        );
        let mut inst = match started {
            Ok(i) => i,
            Err(e) if e.is_cut() => return Ok(false),
            Err(e) => return Err(e),
        };
        let from = inst.offset() as usize;
        for chunk in self.new.payload[from..].chunks(1000) {
            match inst.push(flash, j, chunk) {
                Ok(()) => {}
                Err(e) if e.is_cut() => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        match inst.finish(flash, j, Arm::Now) {
            Ok(slot) => {
                assert_eq!(slot, 1);
                Ok(true)
            }
            Err(e) if e.is_cut() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Old,
    New,
}

/// Power cycles a lock that wants the new image until it settles: the
/// bootloader (swap mode), then the application, which downloads the update
/// if it runs the old image and has not tried the new one yet, runs its
/// self-test on trial, and stops when a boot changes nothing. Returns `false`
/// when the power failed.
fn run<const W: usize, const E: usize>(
    u: &Update,
    flash: &mut SimFlash<W, E>,
    app: App,
    watch: &mut Watch,
    what: &str,
) -> bool {
    for _ in 0..6 * usize::from(MAX_TRIAL_BOOTS) + 8 {
        let mut j = match u.open(flash) {
            Ok(j) => j,
            Err(e) if e.is_cut() => return false,
            Err(e) => panic!("{what}: journal: {e:?}"),
        };
        let s = *j.state();
        watch.power_on(&s, what);
        if watch.confirmed {
            assert_eq!(s.floor, Some(NEW_SEQ), "{what}: confirm lost: {s:?}");
            assert_eq!(s.trial, TrialState::Confirmed, "{what}: confirm lost");
        }
        let r = u.boot(flash, &mut j);
        if r.is_cut() {
            return false;
        }
        let d = r.unwrap_or_else(|e| panic!("{what}: boot failed: {e}"));
        assert_eq!(d.boot, Boot::Slot(0), "{what}: {d:?}");
        // Never a mix: the primary holds exactly one of the two images.
        let running = u
            .primary(flash)
            .unwrap_or_else(|| panic!("{what}: booted a primary that is neither image ({d:?})"));
        match d.reason {
            Reason::StartTrial { .. } | Reason::ContinueTrial { .. } => {
                assert_eq!(running, Which::New, "{what}: trial of the old image");
                watch.tried = true;
                match on_trial(app, &mut j, flash, 0, NEW, &mut watch.trial_boots, what) {
                    OnTrial::Cut => return false,
                    OnTrial::Confirmed => watch.confirmed = true,
                    OnTrial::Crashed | OnTrial::Failed => {}
                }
            }
            Reason::Active | Reason::Reverted { .. } => {
                if running == Which::Old && !watch.tried {
                    match u.download(flash, &mut j) {
                        Ok(true) => continue,
                        Ok(false) => return false,
                        Err(e) => panic!("{what}: download: {e}"),
                    }
                }
                if d.commit.is_none() {
                    return true;
                }
            }
            other => panic!("{what}: unexpected {other:?}"),
        }
    }
    panic!("{what}: the lock never settled");
}

fn check_settled<const W: usize, const E: usize>(
    u: &Update,
    flash: &mut SimFlash<W, E>,
    app: App,
    what: &str,
) {
    let s = *u.open(flash).unwrap().state();
    let running = u.primary(flash);
    match app {
        App::Pass => {
            assert_eq!(running, Some(Which::New), "{what}");
            assert_eq!(s.trial, TrialState::Confirmed, "{what}");
            assert_eq!(s.floor, Some(NEW_SEQ), "{what}");
        }
        App::Fail | App::Crash => {
            assert_eq!(running, Some(Which::Old), "{what}");
            assert_eq!(s.trial, TrialState::None, "{what}");
            assert_eq!(s.swap, None, "{what}");
            assert_eq!(s.floor, Some(OLD_SEQ), "{what}");
        }
    }
    assert_eq!(s.active_slot, 0, "{what}");
}

/// Cuts every operation of a whole update three ways, then (all or a
/// sample of) every operation of each recovery. Returns
/// (scenarios, nested).
fn sweep<const W: usize, const E: usize>(
    fresh: SimFlash<W, E>,
    u: &Update,
    nested_all: bool,
) -> (u64, u64) {
    let name = fresh.geometry().name().to_owned();
    let base = u.factory(fresh);
    let mut scenarios = 0u64;
    let mut nested = 0u64;
    for app in [App::Pass, App::Fail, App::Crash] {
        // With every nested cut: every other operation of the recovery, the
        // three cut kinds in turn (every one of them costs a whole recovery;
        // all three at every operation would be about 1.4 million scenarios
        // per geometry).
        let swept = cut_sweep(
            &base,
            &format!("{name}: {app:?}"),
            0,
            0x5AB,
            if nested_all {
                Nested::EveryOther
            } else {
                Nested::Sample
            },
            |flash, w: &mut Watch, what| run(u, flash, app, w, what),
            |flash, what| check_settled(u, flash, app, what),
        );
        scenarios += swept.scenarios;
        nested += swept.nested;
    }
    println!(
        "swap power-cut sweep ({name}): {scenarios} scenarios ({nested} with a second cut) over \
         download, swap, trial and confirm / self-test failure + swap back / crash loop + swap \
         back; 0 failures"
    );
    (scenarios, nested)
}

type Nrf = SimFlash<4, 4096>;

/// A factory nRF52840 lock with the new image staged (pending, not moved).
fn staged(u: &Update) -> (Nrf, Journal<Nrf>) {
    let mut flash = u.factory(Nrf::nrf52840());
    let mut j = u.open(&mut flash).unwrap();
    assert!(u.download(&mut flash, &mut j).unwrap());
    assert_eq!(j.state().trial, TrialState::Pending { slot: 1 });
    (flash, j)
}

fn nrf52840_layout(image_sectors: u32) -> SlotLayout {
    let sector = 4096;
    let primary = (image_sectors + 1) * sector;
    SlotLayout {
        slots: [
            0x1_0000..0x1_0000 + primary,
            0x1_0000 + primary..0x1_0000 + 2 * primary + sector,
        ],
        journal: Config::new(0xF_E000, 2),
        manifest_sectors: 1,
        sector_size: None,
        mode: Mode::Swap,
    }
}

#[test]
fn swap_installs_300_kib_with_one_erase_per_sector_per_slot() {
    // nRF52840: 300 KiB image (75 sectors) + 1 manifest sector per slot.
    let layout = nrf52840_layout(75);
    let u = Update::new(layout.clone(), 280 * 1024, 300 * 1024, 7);
    let mut flash = u.factory(SimFlash::<4, 4096>::nrf52840());
    let mut j = u.open(&mut flash).unwrap();

    // The download stages the image one sector into the secondary.
    flash.reset_stats();
    assert!(u.download(&mut flash, &mut j).unwrap());
    let s = *j.state();
    assert_eq!(s.trial, TrialState::Pending { slot: 1 });
    assert_eq!(
        s.swap,
        Some(SwapProgress {
            image_sectors: 75,
            phase: SwapPhase::Staged
        })
    );
    let download = flash.modeled_time();
    let spare = flash
        .geometry()
        .sector_at(layout.slots[1].start)
        .unwrap()
        .index;
    assert_eq!(flash.erase_count(spare), 0, "the spare is not written");
    assert!(
        (1..=76).all(|i| flash.erase_count(spare + i) == 1),
        "staging erases each sector once"
    );

    // The bootloader swaps it in: one erase per sector per slot.
    flash.reset_stats();
    let d = u.boot(&mut flash, &mut j).unwrap();
    assert_eq!(
        (d.boot, d.reason),
        (
            Boot::Slot(0),
            Reason::StartTrial {
                slot: 0,
                attempts_left: MAX_TRIAL_BOOTS
            }
        )
    );
    assert_eq!(u.primary(&flash), Some(Which::New));
    let geometry = flash.geometry().clone();
    let mut per_slot = [0u32; 2];
    for (i, &n) in flash.erase_counts().iter().enumerate() {
        let start = geometry.sectors()[i].start;
        for (slot, total) in per_slot.iter_mut().enumerate() {
            if layout.slots[slot].contains(&start) {
                assert!(n <= 1, "sector {i} of slot {slot} erased {n} times");
                *total += n;
            }
        }
    }
    assert_eq!(
        per_slot,
        [76, 76],
        "76 moved sectors, each erased once per slot"
    );
    let swap_time = flash.modeled_time().as_secs_f64();
    // Physical minimum: erase the image's 75 sectors and program it once.
    let minimum = 75.0 * 0.085 + (300.0 * 1024.0 / 4.0) * 41e-6;
    let ratio = swap_time / minimum;
    println!(
        "swap mode, 300 KiB on nrf52840: download (staging) {:.3} s; swap {swap_time:.3} s = \
         {ratio:.4}x the physical minimum {minimum:.3} s; {} bytes written, {} erases",
        download.as_secs_f64(),
        flash.bytes_written(),
        flash.stats().erase_ops
    );
    assert!(ratio <= 2.1, "swap ratio {ratio:.4} above 2.1");

    // Confirm raises the floor; the next boot changes nothing.
    assert_eq!(boot::confirm(&mut j, &mut flash, PASS, NEW), Ok(0));
    assert_eq!(j.state().floor, Some(NEW_SEQ));
    assert_settled(&u.boot(&mut flash, &mut j).unwrap(), 0);
}

#[test]
fn failed_self_test_swaps_the_previous_image_back() {
    // The old image is longer than the new one: its tail never moves.
    let u = Update::new(nrf52840_layout(6), 22_000, 9_000, 11);
    let (mut flash, mut j) = staged(&u);
    let d = u.boot(&mut flash, &mut j).unwrap();
    assert_eq!(d.boot, Boot::Slot(0));
    assert_eq!(u.primary(&flash), Some(Which::New));
    let failed = SelfTest {
        sensors: false,
        ..PASS
    };
    assert!(matches!(
        boot::confirm(&mut j, &mut flash, failed, NEW),
        Err(ConfirmError::SelfTestFailed { slot: 0, .. })
    ));
    flash.reset_stats();
    let d = u.boot(&mut flash, &mut j).unwrap();
    assert_reverted(&d, Boot::Slot(0), 0, RevertCause::AttemptsExhausted);
    assert_eq!(u.primary(&flash), Some(Which::Old));
    // The revert erases each moved primary sector once and nothing else.
    assert_eq!(flash.stats().erase_ops, 4, "1 manifest + 3 image sectors");
    assert!(flash.erase_counts().iter().all(|&n| n <= 1));
    let s = *j.state();
    assert_eq!(
        (s.trial, s.swap, s.floor),
        (TrialState::None, None, Some(OLD_SEQ))
    );
    // Settled: the old image boots as before.
    assert_settled(&u.boot(&mut flash, &mut j).unwrap(), 0);
}

#[test]
fn crash_loop_swaps_back_after_max_trial_boots() {
    let u = Update::new(NRF52840.swap, 12_000, 13_000, 12);
    let (mut flash, mut j) = staged(&u);
    for attempt in 0..MAX_TRIAL_BOOTS {
        let d = u.boot(&mut flash, &mut j).unwrap();
        assert_eq!(d.boot, Boot::Slot(0), "attempt {attempt}");
        assert_eq!(u.primary(&flash), Some(Which::New));
    }
    let d = u.boot(&mut flash, &mut j).unwrap();
    assert_eq!(
        d.reason,
        Reason::Reverted {
            slot: 0,
            cause: RevertCause::AttemptsExhausted
        }
    );
    assert_eq!(u.primary(&flash), Some(Which::Old));
}

#[test]
fn tampered_staged_image_is_never_swapped_in() {
    let u = Update::new(NRF52840.swap, 12_000, 13_000, 13);
    let (flash, _) = staged(&u);
    // Flip one bit of the staged image (a flash fault or an attack).
    let staged = u.layout.place::<SimFlash<4, 4096>>(1).unwrap().image.start;
    let mut bytes = flash.as_bytes().to_vec();
    bytes[staged as usize + 5000] ^= 0x01;
    let mut flash = SimFlash::<4, 4096>::from_bytes(flash.geometry().clone(), bytes).unwrap();
    let mut j = u.open(&mut flash).unwrap();
    flash.reset_stats();
    let d = u.boot(&mut flash, &mut j).unwrap();
    assert_reverted(&d, Boot::Slot(0), 1, RevertCause::Unverified);
    assert_eq!(flash.stats().erase_ops, 0, "nothing moved");
    assert_eq!(u.primary(&flash), Some(Which::Old));
    let s = *j.state();
    assert_eq!((s.trial, s.swap), (TrialState::None, None));
}

#[test]
fn primary_that_fails_verification_is_recovery_not_the_saved_image() {
    // After a confirmed swap the secondary holds the older image: it is
    // never booted (it is below the floor and linked to the primary).
    let u = Update::new(NRF52840.swap, 12_000, 13_000, 14);
    let (mut flash, mut j) = staged(&u);
    u.boot(&mut flash, &mut j).unwrap();
    assert_eq!(boot::confirm(&mut j, &mut flash, PASS, NEW), Ok(0));
    let mut bytes = flash.as_bytes().to_vec();
    bytes[u.layout.slots[0].start as usize + 100] ^= 0x80;
    let mut flash = SimFlash::<4, 4096>::from_bytes(flash.geometry().clone(), bytes).unwrap();
    let mut j = u.open(&mut flash).unwrap();
    let d = u.boot(&mut flash, &mut j).unwrap();
    assert_eq!((d.boot, d.reason), (Boot::Recovery, Reason::NoVerifiedSlot));
    // Recovery accepts a local update: stage a fresh one and it swaps in.
    let again = Update {
        old: Image {
            head: u.new.head.clone(),
            payload: u.new.payload.clone(),
            envelope: u.new.envelope.clone(),
        },
        ..u
    };
    assert!(again.download(&mut flash, &mut j).unwrap());
    let d = again.boot(&mut flash, &mut j).unwrap();
    assert_eq!(d.boot, Boot::Slot(0));
    assert_eq!(again.primary(&flash), Some(Which::New));
}

#[test]
fn swap_refuses_a_direct_layout_and_a_bad_buffer() {
    let u = Update::new(NRF52840.swap, 12_000, 13_000, 15);
    let mut flash = u.factory(SimFlash::<4, 4096>::nrf52840());
    let mut j = u.open(&mut flash).unwrap();
    let direct = SlotLayout {
        mode: Mode::Direct,
        ..u.layout.clone()
    };
    let mut ok = |_: &mut SimFlash<4, 4096>, _: u8| true;
    assert_eq!(
        swap::boot::<_, _, 256>(&mut j, &mut flash, &direct, &mut ok),
        Err(swap::SwapError::NotSwapMode)
    );
    assert!(matches!(
        swap::boot::<_, _, 6>(&mut j, &mut flash, &u.layout, &mut ok),
        Err(swap::SwapError::BufferSize(_))
    ));
    // A staging area needs the spare sector: a secondary no larger than
    // the primary leaves less room than the primary's capacity.
    let tight = SlotLayout {
        slots: [0x1_0000..0x1_5000, 0x1_5000..0x1_A000],
        ..u.layout.clone()
    };
    assert_eq!(tight.image_capacity::<SimFlash<4, 4096>>(0), 4 * 4096);
    assert_eq!(tight.image_capacity::<SimFlash<4, 4096>>(1), 3 * 4096);
}

/// The swap sweep's images on each row of the geometry table (the
/// row's swap layout): the old and new image lengths, the seed of their
/// bytes, and the fewest scenarios the sweep must run.
fn swap_images(part: &str) -> (usize, usize, u64, u64) {
    match part {
        "nrf52840" => (9_000, 13_000, 21, 1000),
        "small-pages" => (3_000, 4_100, 22, 1000),
        "ecc32" => (6_000, 9_000, 23, 300),
        "stm32f4" => (6_000, 9_000, 24, 300),
        other => panic!("no swap images for {other}"),
    }
}

/// The swap sweep on one row of the geometry table.
fn swap_sweep_on<const W: usize, const E: usize>(part: &Part<W, E>) {
    let (old_len, new_len, seed, least) = swap_images(part.name);
    let u = Update::new(part.swap.clone(), old_len, new_len, seed);
    let (n, _) = sweep(part.flash(), &u, full_sweep());
    assert!(n > least, "{}: {n} scenarios", part.name);
}

// The tests swap_power_cut_sweep::{nrf52840, stm32f4, small_pages, ecc32}.
keyway_testkit::per_geometry!(swap_power_cut_sweep => swap_sweep_on);
