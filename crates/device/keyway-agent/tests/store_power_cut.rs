//! The exhaustive power-cut sweep of the owner store.
//!
//! A script of changes (pair, re-pair, remove, grant and clear consent,
//! settings, the verifier, wrong codes, a factory reset, explicit
//! compactions, and the compactions full pages cause) runs once without
//! cuts to count its flash operations. Then, for every operation index N,
//! it is replayed with the power cut before N, during N with a
//! prefix-torn write / partial erase, and during N with a subset-torn
//! write / random erase. After each cut the lock reboots and opens the
//! store: its state must be exactly the model's state before the
//! interrupted change or after it (checked against an independent model,
//! not the store's own dry run). Then the script is finished from there
//! and the final state checked. Nested cuts: for each first cut, a seeded
//! sample of second cut points during the recovery that follows.
//!
//! `KEYWAY_FULL_SWEEP=1` cuts at every second cut point too.

mod common;

use std::collections::BTreeMap;

use common::{Model, Op, run_op, script};
use keyway_agent::store::{Config, Error, Store};
use keyway_sim::{CutPoint, PowerCut, SimFlash};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

const SCRIPT_LEN: u32 = 60;
/// Second cut points sampled per first cut (default mode).
const NESTED_SAMPLE: usize = 2;

fn full_sweep() -> bool {
    std::env::var("KEYWAY_FULL_SWEEP").is_ok_and(|v| v == "1")
}

enum Run {
    Done,
    Cut { step: usize },
}

/// The script on one store region: its changes and the model after each.
struct Script {
    config: Config,
    ops: Vec<Op>,
    models: Vec<Model>,
}

impl Script {
    /// Opens the store and runs script steps `start..`; any error but a
    /// power cut fails the test.
    fn run<const W: usize, const E: usize>(
        &self,
        flash: &mut SimFlash<W, E>,
        start: usize,
        what: &str,
    ) -> Run {
        let mut store = Store::open(flash, self.config)
            .unwrap_or_else(|e| panic!("{what}: open failed: {e:?}"));
        for (step, op) in self.ops.iter().enumerate().skip(start) {
            match run_op(&mut store, flash, op) {
                Ok(()) => {}
                Err(Error::Flash {
                    error: keyway_sim::Error::PowerCut,
                    ..
                }) => return Run::Cut { step },
                Err(e) => panic!("{what}: step {step} ({op:?}) failed: {e:?}"),
            }
        }
        Run::Done
    }

    /// After a cut inside `step`: reboot, open, check the state is the model's
    /// before or after that step; returns the step to resume from.
    fn recover<const W: usize, const E: usize>(
        &self,
        flash: &mut SimFlash<W, E>,
        step: usize,
        what: &str,
        outcomes: &mut [u64; 2],
    ) -> usize {
        let models = &self.models;
        flash.power_on();
        let store = Store::open(flash, self.config)
            .unwrap_or_else(|e| panic!("{what}: open after the cut failed: {e:?}"));
        let before = if step == 0 {
            Model::default()
        } else {
            models[step - 1].clone()
        };
        if before.matches(store.state()) {
            outcomes[0] += 1;
            step
        } else if models[step].matches(store.state()) {
            outcomes[1] += 1;
            step + 1
        } else {
            panic!(
                "{what}: after a cut in step {step}, the store holds {:?}; expected the state \
             before ({before:?}) or after ({:?})",
                store.state(),
                models[step]
            )
        }
    }

    /// Finishes the script from step `resume` without cuts and checks the
    /// final state.
    fn finish<const W: usize, const E: usize>(
        &self,
        flash: &mut SimFlash<W, E>,
        resume: usize,
        what: &str,
    ) {
        flash.set_power_cut(PowerCut::new(0));
        assert!(matches!(self.run(flash, resume, what), Run::Done));
        let store = Store::open(flash, self.config).unwrap();
        assert!(
            self.models.last().unwrap().matches(store.state()),
            "{what}: final state {:?}",
            store.state()
        );
    }
}

/// The sweep on one flash geometry and store region: prints its counts
/// and fails unless at least one scenario ran.
fn sweep<const W: usize, const E: usize>(fresh: SimFlash<W, E>, config: Config) {
    let name = fresh.geometry().name().to_owned();
    let (ops, models) = script(SCRIPT_LEN);
    let s = Script {
        config,
        ops,
        models,
    };
    let (ops, models) = (&s.ops, &s.models);

    // Dry run: the ops each step makes, and which steps compact (erase).
    let mut dry = fresh.clone();
    let mut store = Store::open(&mut dry, config).unwrap();
    let mut step_of_op = Vec::new();
    let mut compacts = vec![false; ops.len()];
    for (step, op) in ops.iter().enumerate() {
        let (ops0, erases0) = (dry.ops(), dry.stats().erase_ops);
        run_op(&mut store, &mut dry, op).unwrap();
        assert!(
            models[step].matches(store.state()),
            "{name}: dry step {step}"
        );
        step_of_op.extend(std::iter::repeat_n(step, (dry.ops() - ops0) as usize));
        compacts[step] = dry.stats().erase_ops > erases0;
    }
    let total_ops = dry.ops();
    let natural = compacts
        .iter()
        .zip(ops)
        .filter(|(c, op)| **c && **op != Op::Compact)
        .count();
    assert!(
        compacts.iter().filter(|c| **c).count() >= 3,
        "{name}: the script compacts too rarely"
    );

    let full = full_sweep();
    let mut scenarios = 0u64;
    let mut nested = 0u64;
    let mut outcomes = [0u64; 2];
    // Scenarios by what the first cut interrupted.
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for n in 0..total_ops {
        let step = step_of_op[n as usize];
        let kind = if compacts[step] && ops[step] != Op::Compact {
            format!("{} (compacting a full page)", ops[step].name())
        } else {
            ops[step].name().to_owned()
        };
        for (k, first) in CutPoint::three_ways(n).into_iter().enumerate() {
            let seed = n * 3 + k as u64;
            let what = format!("{name}: seed {seed}, cut {first:?} in step {step} ({kind})");
            let mut flash = fresh.clone();
            flash.set_power_cut(PowerCut::new(seed).then(first));
            let Run::Cut { step: cut_step } = s.run(&mut flash, 0, &what) else {
                panic!("{what}: the cut did not fire");
            };
            assert_eq!(cut_step, step, "{what}");
            let resume = s.recover(&mut flash, step, &what, &mut outcomes);
            let after_first = flash.clone();
            s.finish(&mut flash, resume, &what);
            scenarios += 1;
            *by_kind.entry(kind.clone()).or_default() += 1;

            // Nested: a second cut during the recovery's own operations.
            let base = after_first.ops();
            let mut count = after_first.clone();
            count.set_power_cut(PowerCut::new(0));
            assert!(matches!(s.run(&mut count, resume, &what), Run::Done));
            let recovery_ops = count.ops() - base;
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5707_E000);
            let seconds: Vec<CutPoint> = if recovery_ops == 0 {
                Vec::new()
            } else if full {
                (0..recovery_ops)
                    .flat_map(|r| CutPoint::three_ways(base + r))
                    .collect()
            } else {
                (0..NESTED_SAMPLE)
                    .map(|_| {
                        let r = rng.next_u64() % recovery_ops;
                        CutPoint::three_ways(base + r)[(rng.next_u64() % 3) as usize]
                    })
                    .collect()
            };
            for second in seconds {
                let what = format!("{what}, then {second:?}");
                let mut flash = after_first.clone();
                flash.set_power_cut(PowerCut::new(seed.wrapping_mul(31) ^ second.op).then(second));
                let Run::Cut { step } = s.run(&mut flash, resume, &what) else {
                    panic!("{what}: the second cut did not fire");
                };
                let resume2 = s.recover(&mut flash, step, &what, &mut outcomes);
                s.finish(&mut flash, resume2, &what);
                scenarios += 1;
                nested += 1;
            }
        }
    }
    println!(
        "owner store power-cut sweep ({name}, {} mode): {} steps, {total_ops} flash ops, \
         {} compactions ({natural} from full pages), {scenarios} scenarios ({nested} with \
         nested cuts), 0 failures; after a cut the store held the state before the change {} \
         times, after it {} times",
        if full { "full" } else { "default" },
        ops.len(),
        compacts.iter().filter(|c| **c).count(),
        outcomes[0],
        outcomes[1],
    );
    for (kind, n) in &by_kind {
        println!("  first cut inside {kind}: {n} scenarios");
    }
    assert!(scenarios > 0, "{name}: no scenario ran");
}

#[test]
fn power_cut_sweep_nrf52840() {
    sweep(SimFlash::<4, 4096>::nrf52840(), Config::new(0xF_8000, 2));
}

// Sparse slots (fewer per page) make full pages compact inside many kinds
// of change: with 292-byte slots (14 a page, 3 pages) settings, clear
// consent, clear wrong codes, factory reset, pair and remove; with
// 272-byte slots (15 a page, 2 pages) grant consent, count a wrong code,
// clear wrong codes, factory reset and pair.
#[test]
fn power_cut_sweep_nrf52840_three_sparse_pages() {
    sweep(
        SimFlash::<4, 4096>::nrf52840(),
        Config::new(0xF_0000, 3).with_slot_size(292),
    );
}

#[test]
fn power_cut_sweep_nrf52840_sparse_slots() {
    sweep(
        SimFlash::<4, 4096>::nrf52840(),
        Config::new(0xF_0000, 2).with_slot_size(272),
    );
}

#[test]
fn power_cut_sweep_stm32f4() {
    // Two of the 16 KiB sectors: 110 slots a page, so most compactions
    // are the script's explicit ones.
    sweep(SimFlash::<4, 16384>::stm32f4(), Config::new(0x8000, 2));
}

#[test]
fn power_cut_sweep_ecc32() {
    // 32-byte ECC words: a torn word reads back as an ECC error.
    sweep(SimFlash::<32, 131072>::ecc32(), Config::new(0xC_0000, 2));
}
