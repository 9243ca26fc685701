//! Random multi-cut runs: a whole direct A/B update (download, install,
//! trial boot, confirm) and a failed one (download, install, trial boot,
//! self-test failure, revert), with 1–4 power cuts per scenario at seeded
//! random flash operations and of seeded random kinds (before the
//! operation; during it with a prefix- or subset-torn write, a partial or
//! random erase). The first cut lands anywhere in the run; each later one
//! lands during the recovery from the previous one (nested).
//!
//! After every cut the lock runs what a real lock runs until an image
//! boots and nothing is left to do: reopen the journal, run the bootloader
//! (`boot::boot`, with a slot check that accepts a slot only if it holds
//! exactly the old or the new image), confirm (or fail the self-test) when
//! on trial, and, while the update is still wanted, resume (or begin) the
//! download the journal records with `Installer::resume_or_begin`.
//!
//! Checked all along: only slots holding exactly the old (slot 0) or the
//! new (slot 1) image boot, never a mix; the floor and the key-set version
//! never go down; a confirm that returned `Ok` is never lost; a trial gets
//! at most `MAX_TRIAL_BOOTS` boots; a finished install is never refused by
//! the boot check. At the end: the update is confirmed (the new image, floor
//! 42), or, only when the self-test failed or every trial boot lost its
//! confirm to a cut, reverted (the old image, floor 41).
//!
//! Seeds are fixed per geometry; `KEYWAY_SEED=<u64>` replaces them, and
//! `KEYWAY_SCENARIO=<n>` runs only scenario `n` of each run. A failure
//! prints the seed, the scenario and its cut plan. `KEYWAY_FULL_SWEEP=1`
//! runs 3,000 scenarios per run (24,000 in all) instead of 200.

mod common;
use common::{App, CutError, NEW, OnTrial, Seeded, bytes, full_sweep, initial, on_trial, sha256};

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::Instant;

use keyway_device::boot::{self, Boot, MAX_TRIAL_BOOTS, Reason, RevertCause};
use keyway_device::install::{Arm, Installer, SlotLayout, Target};
use keyway_device::journal::{Journal, PersistentState, TrialState};
use keyway_sim::{Cut, CutPoint, EraseTear, OpKind, PowerCut, SimFlash, WriteTear};
use keyway_suit::ImageExpectation;
use keyway_testkit::geometry::Part;

/// The image: not a multiple of any write or sector size.
const IMAGE_LEN: usize = 6000;
const MANIFEST: [u8; 32] = [0x6B; 32];

/// Scenarios per (geometry, story).
fn scenarios_per_run() -> u64 {
    if full_sweep() { 3000 } else { 200 }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a u64"))
    })
}

/// What the lock's application does when the image on trial runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Story {
    /// Install, boot on trial, self-test passes, confirm.
    Update,
    /// Install, boot on trial, self-test fails, revert.
    Revert,
}

/// The lock: layout and images. Slot 0 holds the old image (active,
/// confirmed, floor 41, key set 3); slot 1 starts with junk.
struct Lock {
    layout: SlotLayout,
    old: Vec<u8>,
    new: Vec<u8>,
    digest: [u8; 32],
}

/// What a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    Old,
    New,
    Neither,
}

impl Lock {
    fn new(layout: SlotLayout) -> Self {
        let new = bytes(IMAGE_LEN, 0xB1);
        Lock {
            layout,
            old: bytes(IMAGE_LEN, 0xA0),
            digest: sha256(&new),
            new,
        }
    }

    fn held<const W: usize, const E: usize>(&self, flash: &SimFlash<W, E>, slot: u8) -> Held {
        let r = &self.layout.slots[usize::from(slot)];
        let at = &flash.as_bytes()[r.start as usize..r.start as usize + IMAGE_LEN];
        if at == self.old.as_slice() {
            Held::Old
        } else if at == self.new.as_slice() {
            Held::New
        } else {
            Held::Neither
        }
    }

    /// The journal's state in `flash`.
    fn state<const W: usize, const E: usize>(&self, flash: &mut SimFlash<W, E>) -> PersistentState {
        *Journal::open(flash, self.layout.journal).unwrap().state()
    }

    fn exp(&self) -> ImageExpectation<'_> {
        ImageExpectation {
            digest: &self.digest,
            size: Some(IMAGE_LEN as u64),
            uri: None,
        }
    }

    /// The flash before the update, with `fill` extra records of the
    /// initial state (they move where the journal's pages turn).
    fn prepared<const W: usize, const E: usize>(
        &self,
        mut flash: SimFlash<W, E>,
        fill: usize,
    ) -> SimFlash<W, E> {
        let [s0, s1] = &self.layout.slots;
        let mut old = self.old.clone();
        old.resize(IMAGE_LEN.div_ceil(W) * W, 0xFF);
        flash.write(s0.start, &old).unwrap();
        let junk = bytes(IMAGE_LEN.div_ceil(W) * W, 0x3C);
        flash.write(s1.start, &junk).unwrap();
        let mut j = Journal::open(&mut flash, self.layout.journal).unwrap();
        for _ in 0..=fill {
            j.commit(&mut flash, &initial()).unwrap();
        }
        flash
    }
}

/// What the lock remembers across power cuts, or what the test observed
/// (the server's view: whether the update was installed, confirmed or
/// given up).
#[derive(Clone, Debug, Default)]
struct Watch {
    floor: Option<u64>,
    keyset: u32,
    /// `confirm` returned `Ok`.
    confirmed: bool,
    /// The install finished (the journal recorded slot 1 as installable).
    installed: bool,
    /// The bootloader reverted the trial: the update is given up.
    reverted: bool,
    /// Boots of the image on trial.
    trial_boots: u32,
    /// The image the last boot started.
    booted: Option<(u8, Held)>,
}

/// Power cycles of the lock from its current flash until it settles (an
/// image booted and nothing was left to do) or the power fails (a planned
/// cut fired). Every invariant is asserted as it goes. Returns `false` when
/// the power failed, as `run` does for [`common::cut_sweep`].
fn live<const W: usize, const E: usize>(
    lock: &Lock,
    flash: &mut SimFlash<W, E>,
    story: Story,
    w: &mut Watch,
) -> bool {
    for _ in 0..4 * usize::from(MAX_TRIAL_BOOTS) + 8 {
        flash.power_on();
        let mut j = Journal::open(flash, lock.layout.journal)
            .unwrap_or_else(|e| panic!("journal does not open: {e:?}"));
        let s = *j.state();
        assert!(s.is_valid(), "invalid state {s:?}");
        assert!(s.floor >= w.floor, "floor went down: {s:?} after {w:?}");
        assert!(s.keyset_version >= w.keyset, "key set went down: {s:?}");
        w.floor = s.floor;
        w.keyset = s.keyset_version;
        if w.confirmed {
            assert_eq!(
                (s.active_slot, s.trial, s.floor, s.keyset_version),
                (
                    1,
                    TrialState::Confirmed,
                    Some(NEW.sequence),
                    NEW.keyset_version
                ),
                "a confirm that returned Ok was lost: {s:?}"
            );
        }
        if matches!(
            s.trial,
            TrialState::Pending { slot: 1 } | TrialState::Trial { slot: 1, .. }
        ) || s.active_slot == 1
        {
            w.installed = true;
        }
        if w.reverted {
            assert_eq!(
                (s.active_slot, s.trial),
                (0, TrialState::None),
                "a revert was undone: {s:?}"
            );
        }

        // The bootloader.
        let mut check = |f: &mut SimFlash<W, E>, slot: u8| lock.held(f, slot) != Held::Neither;
        let d = match boot::boot(&mut j, flash, &mut check) {
            Ok(d) => d,
            Err(e) if e.is_cut() => return false,
            Err(e) => panic!("boot failed: {e:?}"),
        };
        let slot = match d.boot {
            Boot::Slot(slot) => slot,
            Boot::Recovery => panic!("recovery mode with a good image: {d:?} from {s:?}"),
        };
        // Never a mix: slot 0 only ever holds the old image, slot 1 the
        // new one once it boots.
        let held = lock.held(flash, slot);
        let want = if slot == 0 { Held::Old } else { Held::New };
        assert_eq!(held, want, "slot {slot} booted holding {held:?}: {d:?}");
        w.booted = Some((slot, held));

        match d.reason {
            Reason::StartTrial { slot: 1, .. } | Reason::ContinueTrial { slot: 1, .. } => {
                let app = match story {
                    Story::Update => App::Pass,
                    Story::Revert => App::Fail,
                };
                let what = format!("{s:?}");
                match on_trial(app, &mut j, flash, 1, NEW, &mut w.trial_boots, &what) {
                    OnTrial::Cut => return false,
                    OnTrial::Confirmed => w.confirmed = true,
                    OnTrial::Crashed | OnTrial::Failed => {}
                }
                // The application reboots (or crashes) after its self-test.
                continue;
            }
            Reason::Reverted {
                slot: 1,
                cause: RevertCause::AttemptsExhausted,
            } => {
                match story {
                    Story::Revert => assert!(w.trial_boots >= 1, "reverted before a trial boot"),
                    // A passing self-test reverts only if every trial boot
                    // lost its confirm to a cut.
                    Story::Update => assert_eq!(
                        w.trial_boots,
                        u32::from(MAX_TRIAL_BOOTS),
                        "update reverted after {} trial boots",
                        w.trial_boots
                    ),
                }
                assert!(!w.confirmed, "reverted after a confirm");
                w.reverted = true;
            }
            Reason::Active => {}
            other => panic!("unexpected boot decision {other:?} ({d:?}) from {s:?}"),
        }

        // The application on the active image: download while wanted.
        if !w.installed && !w.reverted {
            let exp = lock.exp();
            let r = Installer::<_>::resume_or_begin(
                flash,
                &mut j,
                Target::new(&lock.layout, &exp, MANIFEST),
                None,
            )
            .and_then(|mut inst| {
                assert_eq!(inst.slot(), 1);
                let from = usize::try_from(inst.offset()).unwrap();
                for c in lock.new[from..].chunks(700) {
                    inst.push(flash, &mut j, c)?;
                }
                inst.finish(flash, &mut j, Arm::Now)
            });
            match r {
                Ok(1) => w.installed = true,
                Err(e) if e.is_cut() => return false,
                other => panic!("install: {other:?}"),
            }
            continue;
        }
        if d.commit.is_none() {
            return true;
        }
    }
    panic!("the lock never settled: {w:?}");
}

/// The end of a scenario: confirmed, or reverted for a legitimate reason.
fn check_end(s: PersistentState, story: Story, w: &Watch) -> bool {
    assert_eq!(s.download, None, "a download left over: {s:?}");
    let confirmed = PersistentState {
        floor: Some(NEW.sequence),
        keyset_version: NEW.keyset_version,
        active_slot: 1,
        trial: TrialState::Confirmed,
        ..initial()
    };
    let reverted = PersistentState {
        trial: TrialState::None,
        ..initial()
    };
    if s == confirmed {
        assert_eq!(story, Story::Update, "a failed self-test was confirmed");
        assert_eq!(w.booted, Some((1, Held::New)));
        true
    } else {
        assert_eq!(s, reverted, "end state");
        assert!(!w.confirmed, "confirm lost");
        assert_eq!(w.booted, Some((0, Held::Old)));
        if story == Story::Update {
            assert_eq!(w.trial_boots, u32::from(MAX_TRIAL_BOOTS));
        }
        false
    }
}

/// A random cut at `op`.
fn random_cut(rng: &mut Seeded, op: u64) -> CutPoint {
    let cut = match rng.next() % 5 {
        0 | 1 => Cut::Before,
        _ => Cut::During {
            write: if rng.next().is_multiple_of(2) {
                WriteTear::Prefix
            } else {
                WriteTear::Subset
            },
            erase: if rng.next().is_multiple_of(2) {
                EraseTear::Partial
            } else {
                EraseTear::Random
            },
        },
    };
    CutPoint { op, cut }
}

/// Totals of one run.
#[derive(Default)]
struct Totals {
    scenarios: u64,
    cuts: u64,
    erase_cuts: u64,
    confirmed: u64,
    reverted: u64,
}

/// `count` scenarios of `story` on one geometry.
fn run<const W: usize, const E: usize>(
    fresh: SimFlash<W, E>,
    layout: SlotLayout,
    story: Story,
    seed: u64,
) -> Totals {
    let name = fresh.geometry().name().to_owned();
    let lock = Lock::new(layout);
    let per_page = {
        let mut f = fresh.clone();
        Journal::open(&mut f, lock.layout.journal)
            .unwrap()
            .slots_per_page() as u64
    };
    let only = env_u64("KEYWAY_SCENARIO");
    let mut t = Totals::default();
    let plan = RefCell::new(Vec::<CutPoint>::new());
    for i in 0..scenarios_per_run() {
        if only.is_some_and(|n| n != i) {
            continue;
        }
        let mut rng = Seeded::new(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        plan.borrow_mut().clear();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let base = lock.prepared(fresh.clone(), (rng.next() % per_page) as usize);
            // A dry run: the ops of the whole story.
            let mut dry = base.clone();
            let mut w = Watch::default();
            assert!(live(&lock, &mut dry, story, &mut w));
            assert!(check_end(lock.state(&mut dry), story, &w) == (story == Story::Update));

            let n_cuts = 1 + rng.next() % 4;
            let tear_seed = rng.next();
            let mut flash = base;
            let mut w = Watch::default();
            let mut span = dry.ops() - flash.ops();
            for _ in 0..n_cuts {
                if span == 0 {
                    break;
                }
                let op = flash.ops() + rng.next() % span;
                let point = random_cut(&mut rng, op);
                plan.borrow_mut().push(point);
                flash.set_power_cut(PowerCut::new(tear_seed).then(point));
                assert!(
                    !live(&lock, &mut flash, story, &mut w),
                    "the cut did not fire"
                );
                flash.power_on();
                // The recovery's ops, for the next cut to land in.
                let mut count = flash.clone();
                count.set_power_cut(PowerCut::new(tear_seed));
                let mut cw = w.clone();
                assert!(live(&lock, &mut count, story, &mut cw));
                span = count.ops() - flash.ops();
            }
            flash.set_power_cut(PowerCut::new(tear_seed));
            assert!(live(&lock, &mut flash, story, &mut w));
            let done = check_end(lock.state(&mut flash), story, &w);
            let log = flash.cut_log();
            let erases = log.iter().filter(|c| c.kind == OpKind::Erase).count();
            (log.len() as u64, erases as u64, done)
        }));
        match result {
            Ok((cuts, erases, done)) => {
                t.scenarios += 1;
                t.cuts += cuts;
                t.erase_cuts += erases;
                if done {
                    t.confirmed += 1;
                } else {
                    t.reverted += 1;
                }
            }
            Err(panic) => {
                eprintln!(
                    "random cuts ({name}, {story:?}) FAILED: scenario {i}, seed {seed} \
                     (replay: KEYWAY_SEED={seed} KEYWAY_SCENARIO={i}), cut plan {:?}",
                    plan.borrow()
                );
                resume_unwind(panic);
            }
        }
    }
    println!(
        "random cuts ({name}, {story:?}): {} scenarios (seed {seed}), {} cuts ({} on erases); \
         ended confirmed {}, reverted {}; 0 failures",
        t.scenarios, t.cuts, t.erase_cuts, t.confirmed, t.reverted
    );
    t
}

/// Both stories on one geometry, seeded from `seed` unless `KEYWAY_SEED`.
fn both<const W: usize, const E: usize>(fresh: SimFlash<W, E>, layout: SlotLayout, seed: u64) {
    let t0 = Instant::now();
    let seed = env_u64("KEYWAY_SEED").unwrap_or(seed);
    let name = fresh.geometry().name().to_owned();
    let u = run(fresh.clone(), layout.clone(), Story::Update, seed);
    let r = run(fresh, layout, Story::Revert, seed.wrapping_add(1));
    println!(
        "random cuts: {} scenarios (seed {seed}), {} cuts on {name} in {:.1} s",
        u.scenarios + r.scenarios,
        u.cuts + r.cuts,
        t0.elapsed().as_secs_f64()
    );
    if env_u64("KEYWAY_SCENARIO").is_none() {
        assert!(u.cuts >= u.scenarios && r.cuts >= r.scenarios);
        assert!(u.confirmed > 0, "{name}: no update ended confirmed");
        assert!(
            r.reverted == r.scenarios,
            "{name}: a failed self-test confirmed"
        );
    }
}

/// Both stories on one row of the geometry table, with its direct
/// layout and seed.
fn random_multi_cuts_on<const W: usize, const E: usize>(part: &Part<W, E>) {
    both(part.flash(), part.direct.clone(), part.seed);
}

// The tests random_multi_cuts::{nrf52840, stm32f4, small_pages, ecc32}.
keyway_testkit::per_geometry!(random_multi_cuts => random_multi_cuts_on);
