//! The exhaustive power-cut sweep of the state journal.
//!
//! For each preset a script of 40 commits (turning pages at least twice) is
//! run once without cuts to count its flash operations. Then, for every
//! operation index N, it is replayed with the power cut before N, during N
//! with a prefix-torn write / partial erase, and during N with a
//! subset-torn write / random erase (the simulator applies the write or the
//! erase tear, whichever op N is). After each cut the lock reboots and
//! opens the journal: the state must be the last one whose commit
//! completed, or the one being committed. Then the script is finished from
//! there and the final state checked. Nested cuts: for each first cut, a
//! seeded sample of second cut points during that recovery.
//!
//! By default every op is swept on every preset, with 3 nested cuts per
//! first cut; `KEYWAY_FULL_SWEEP=1` sweeps every second cut point too.

mod common;

use common::{CutError, Seeded, cuts, full_sweep, scripted, slot_size_for};
use keyway_device::journal::{Config, Journal, PersistentState, RECORD_LEN};
use keyway_sim::{CutPoint, PowerCut, SimFlash};
use keyway_testkit::geometry::Part;

const SCRIPT_LEN: u32 = 40;
/// Slots per page in the sweep: 40 commits turn a page at least 3 times.
const SLOTS_PER_PAGE: usize = 12;
/// Second cut points sampled per first cut (default mode).
const NESTED_SAMPLE: usize = 3;

/// How a run of the script ended.
enum Run {
    /// Every commit from `start` completed.
    Done,
    /// The power failed inside the commit of script step `step`.
    Cut { step: u32 },
}

/// Commits script steps `start..SCRIPT_LEN` (after opening the journal).
/// Any error but a power cut fails the test.
fn run<const W: usize, const E: usize>(
    flash: &mut SimFlash<W, E>,
    config: Config,
    start: u32,
    what: &str,
) -> Run {
    let mut journal = match Journal::open(flash, config) {
        Ok(j) => j,
        Err(e) => panic!("{what}: open failed: {e:?}"),
    };
    for step in start..SCRIPT_LEN {
        match journal.commit(flash, &scripted(step)) {
            Ok(()) => {}
            Err(e) if e.is_cut() => return Run::Cut { step },
            Err(e) => panic!("{what}: commit {step} failed: {e:?}"),
        }
    }
    Run::Done
}

/// After a cut inside step `step`: reboot, open, check the state is step
/// `step - 1`'s (or the default before step 0) or step `step`'s, and
/// return the step to resume from.
fn recover<const W: usize, const E: usize>(
    flash: &mut SimFlash<W, E>,
    config: Config,
    step: u32,
    what: &str,
    outcomes: &mut [u64; 2],
) -> u32 {
    flash.power_on();
    let journal = match Journal::open(flash, config) {
        Ok(j) => j,
        Err(e) => panic!("{what}: open after the cut failed: {e:?}"),
    };
    let previous = if step == 0 {
        PersistentState::default()
    } else {
        scripted(step - 1)
    };
    let got = *journal.state();
    if got == scripted(step) {
        outcomes[1] += 1;
        step + 1
    } else if got == previous {
        outcomes[0] += 1;
        step
    } else {
        panic!(
            "{what}: after a cut in commit {step}, the journal holds {got:?}; \
             expected step {}'s or step {step}'s state",
            i64::from(step) - 1
        )
    }
}

/// Finishes the script from `resume` with no more cuts and checks the end.
fn finish<const W: usize, const E: usize>(
    flash: &mut SimFlash<W, E>,
    config: Config,
    resume: u32,
    what: &str,
) {
    flash.set_power_cut(PowerCut::new(0));
    assert!(matches!(run(flash, config, resume, what), Run::Done));
    let journal = Journal::open(flash, config).unwrap();
    assert_eq!(
        *journal.state(),
        scripted(SCRIPT_LEN - 1),
        "{what}: final state"
    );
}

fn sweep<const W: usize, const E: usize>(fresh: SimFlash<W, E>, offset: u32, sectors: u32) -> u64 {
    let name = fresh.geometry().name().to_owned();
    let record_len = RECORD_LEN.div_ceil(W) * W;
    let config = Config::new(offset, sectors).with_slot_size(slot_size_for(
        E,
        W,
        SLOTS_PER_PAGE,
        record_len,
    ));

    // Dry run: count the ops and check the script turns pages at least twice.
    let mut dry = fresh.clone();
    assert!(matches!(run(&mut dry, config, 0, "dry run"), Run::Done));
    let total_ops = dry.ops();
    assert!(
        dry.stats().erase_ops >= 2,
        "{name}: the script turns pages only {} times",
        dry.stats().erase_ops
    );

    let full = full_sweep();
    let mut scenarios = 0u64;
    let mut nested = 0u64;
    // Recoveries that found the previous state, and the new one.
    let mut outcomes = [0u64; 2];
    for n in 0..total_ops {
        for (k, first) in cuts(n).into_iter().enumerate() {
            let seed = n * 3 + k as u64;
            let what = format!("{name}: seed {seed}, cut {first:?}");
            let mut flash = fresh.clone();
            flash.set_power_cut(PowerCut::new(seed).then(first));
            let Run::Cut { step } = run(&mut flash, config, 0, &what) else {
                panic!("{what}: the cut did not fire");
            };
            assert_eq!(flash.cut_log().len(), 1, "{what}");
            let resume = recover(&mut flash, config, step, &what, &mut outcomes);
            let after_first = flash.clone();

            let mut done = flash;
            finish(&mut done, config, resume, &what);
            scenarios += 1;

            // Nested cuts: a second cut during the recovery commits.
            let base = after_first.ops();
            let mut count = after_first.clone();
            count.set_power_cut(PowerCut::new(0));
            assert!(matches!(run(&mut count, config, resume, &what), Run::Done));
            let recovery_ops = count.ops() - base;
            let mut rng = Seeded::new(seed ^ 0xC0FF_EE00);
            let second_points: Vec<u64> = if full {
                (0..recovery_ops).collect()
            } else if recovery_ops == 0 {
                Vec::new()
            } else {
                (0..NESTED_SAMPLE)
                    .map(|_| rng.next() % recovery_ops)
                    .collect()
            };
            let seconds: Vec<CutPoint> = second_points
                .into_iter()
                .flat_map(|r| {
                    let kinds = cuts(base + r);
                    if full {
                        kinds.to_vec()
                    } else {
                        vec![kinds[(rng.next() % 3) as usize]]
                    }
                })
                .collect();
            for second in seconds {
                let r = second.op - base;
                let what = format!("{what}, then {second:?}");
                let mut flash = after_first.clone();
                flash.set_power_cut(PowerCut::new(seed.wrapping_mul(31) + r).then(second));
                let Run::Cut { step } = run(&mut flash, config, resume, &what) else {
                    panic!("{what}: the second cut did not fire");
                };
                let resume2 = recover(&mut flash, config, step, &what, &mut outcomes);
                finish(&mut flash, config, resume2, &what);
                scenarios += 1;
                nested += 1;
            }
        }
    }
    println!(
        "journal power-cut sweep ({name}, {} mode): {total_ops} ops, {scenarios} scenarios \
         ({nested} with nested cuts), 0 failures; after a cut the journal held the previous \
         state {} times, the new one {} times",
        if full { "full" } else { "default" },
        outcomes[0],
        outcomes[1]
    );
    scenarios
}

/// The journal sweep on one row of the geometry table, in the region of
/// the row's direct layout (dense slots).
fn journal_sweep_on<const W: usize, const E: usize>(part: &Part<W, E>) {
    let region = part.direct.journal;
    let n = sweep(part.flash(), region.offset, region.pages);
    assert!(n > 0);
}

// The tests power_cut_sweep::{nrf52840, stm32f4, small_pages, ecc32}.
keyway_testkit::per_geometry!(power_cut_sweep => journal_sweep_on);
