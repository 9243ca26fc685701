//! The exhaustive power-cut sweep of the audit log.
//!
//! For each geometry a prepared log (possibly prefilled close to a page
//! turn) runs a script of appends that turns pages with a checkpoint and an
//! erase at least once. The script is run once without cuts to count its
//! flash operations; then, for every operation index N, it is replayed
//! with the power cut before N, during N with a prefix-torn write / a
//! partial erase, and during N with a subset-torn write / a random erase.
//! After each cut the lock reboots and reopens the log, and the oracle
//! checks: the export verifies (consecutive sequence numbers, hash chain,
//! signed checkpoints and head, a start no later than the newest
//! checkpoint's retained sequence); its events are exactly the events
//! whose append returned `Ok`, in order, possibly followed by the one in
//! flight, minus only records rotated out by design; then three more
//! appends succeed and verify, and a second cut is made during them (one
//! sampled operation and cut kind in CI, every operation three ways with
//! `KEYWAY_FULL_SWEEP=1`).

mod common;

use common::{check_export, device_key, events, export, full_sweep, step};
use keyway_audit::{AuditLog, Config, Error, Time};
use keyway_sim::{Cut, CutPoint, EraseTear, PowerCut, SimFlash, WriteTear};

fn cuts(n: u64) -> [CutPoint; 3] {
    [
        CutPoint {
            op: n,
            cut: Cut::Before,
        },
        CutPoint {
            op: n,
            cut: Cut::During {
                write: WriteTear::Prefix,
                erase: EraseTear::Partial,
            },
        },
        CutPoint {
            op: n,
            cut: Cut::During {
                write: WriteTear::Subset,
                erase: EraseTear::Random,
            },
        },
    ]
}

/// Appends script steps `from..to`; returns the steps that completed and
/// the one a power cut interrupted.
fn run<const W: usize, const E: usize>(
    flash: &mut SimFlash<W, E>,
    config: Config,
    from: u32,
    to: u32,
    what: &str,
) -> (Vec<u32>, Option<u32>) {
    let key = device_key();
    let mut log = AuditLog::open(flash, config).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let mut done = Vec::new();
    for i in from..to {
        let (t, e) = step(i);
        match log.append(flash, &key, t, &e) {
            Ok(_) => done.push(i),
            Err(Error::Flash {
                error: keyway_sim::Error::PowerCut,
                ..
            }) => return (done, Some(i)),
            Err(e) => panic!("{what}: append {i}: {e}"),
        }
    }
    (done, None)
}

struct Totals {
    scenarios: u64,
    nested: u64,
    lost_in_flight: u64,
    kept_in_flight: u64,
}

/// After a cut: reopen, export, and check the log holds exactly the steps
/// in `done` (minus only records rotated out by design, at least
/// `min_kept` events), possibly followed by `in_flight`. Returns the steps
/// the log now holds as completed.
fn check_after<const W: usize, const E: usize>(
    flash: &mut SimFlash<W, E>,
    config: Config,
    mut done: Vec<u32>,
    in_flight: u32,
    min_kept: usize,
    totals: &mut Totals,
    what: &str,
) -> Vec<u32> {
    flash.power_on();
    let log = AuditLog::open(flash, config).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
    let bytes = export(&log, flash, 256, Time { rtc: 1, boot: 999 });
    let records = check_export(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    let got = events(&records);
    let expected: Vec<_> = done.iter().copied().map(step).collect();
    let mut with_flight = expected.clone();
    with_flight.push(step(in_flight));
    if with_flight.ends_with(&got) && !got.is_empty() && got.last() == with_flight.last() {
        totals.kept_in_flight += 1;
        done.push(in_flight);
    } else {
        totals.lost_in_flight += 1;
        assert!(
            expected.ends_with(&got),
            "{what}: the log's events are not the completed appends"
        );
    }
    assert!(
        got.len() >= min_kept.min(done.len()),
        "{what}: only {} of {} events kept",
        got.len(),
        done.len()
    );
    done
}

fn sweep<const W: usize, const E: usize>(
    fresh: SimFlash<W, E>,
    config: Config,
    prefill: u32,
    script: u32,
    min_erases: u64,
) -> Totals {
    let name = fresh.geometry().name().to_owned();
    let mut base = fresh;
    let (pre, cut) = run(&mut base, config, 0, prefill, "prefill");
    assert_eq!((pre.len() as u32, cut), (prefill, None));
    let base_ops = base.ops();
    let base_erases = base.stats().erase_ops;

    let mut dry = base.clone();
    let (done, cut) = run(&mut dry, config, prefill, prefill + script, "dry run");
    assert_eq!((done.len() as u32, cut), (script, None));
    let total_ops = dry.ops() - base_ops;
    assert!(
        dry.stats().erase_ops - base_erases >= min_erases,
        "{name}: the script erases only {} pages",
        dry.stats().erase_ops - base_erases
    );
    let probe = AuditLog::open(&mut dry, config).unwrap();
    let min_kept = ((probe.pages() - 1) * (probe.slots_per_page() - 2)) as usize;
    let full = full_sweep();

    let mut totals = Totals {
        scenarios: 0,
        nested: 0,
        lost_in_flight: 0,
        kept_in_flight: 0,
    };
    for n in 0..total_ops {
        for (k, point) in cuts(base_ops + n).into_iter().enumerate() {
            let seed = n * 3 + k as u64;
            let what = format!("{name}: cut {point:?} (seed {seed})");
            let mut flash = base.clone();
            flash.set_power_cut(PowerCut::new(seed).then(point));
            let (done, in_flight) = run(&mut flash, config, prefill, prefill + script, &what);
            let Some(in_flight) = in_flight else {
                panic!("{what}: the cut did not fire");
            };
            let done: Vec<u32> = (0..prefill).chain(done).collect();
            let done = check_after(
                &mut flash,
                config,
                done,
                in_flight,
                min_kept,
                &mut totals,
                &what,
            );
            totals.scenarios += 1;

            // Appending continues on the same chain: three more appends,
            // first without a cut, then with a second cut at sampled (or,
            // in the full sweep, all) operations of them.
            let resume = in_flight + 1;
            let after_first = flash.clone();
            let (more, cut) = run(&mut flash, config, resume, resume + 3, &what);
            assert_eq!((more.len(), cut), (3, None), "{what}");
            let recovery_ops = flash.ops() - after_first.ops();
            let mut all = done.clone();
            all.extend(resume..resume + 3);
            let log = AuditLog::open(&mut flash, config).unwrap();
            let bytes = export(&log, &mut flash, 256, Time { rtc: 2, boot: 1000 });
            let records =
                check_export(&bytes).unwrap_or_else(|e| panic!("{what}: after resuming: {e}"));
            let want: Vec<_> = all.iter().copied().map(step).collect();
            assert!(want.ends_with(&events(&records)), "{what}: resumed appends");

            // (op within the recovery, cut kind)
            let seconds: Vec<(u64, usize)> = if full {
                (0..recovery_ops)
                    .flat_map(|r| (0..3).map(move |k| (r, k)))
                    .collect()
            } else {
                let r = (seed * 7 + 3) % recovery_ops;
                vec![(r, ((seed + r) % 3) as usize)]
            };
            for (r, kind) in seconds {
                let second = cuts(after_first.ops() + r)[kind];
                let what = format!("{what}, then {second:?}");
                let mut flash = after_first.clone();
                flash.set_power_cut(PowerCut::new(seed.wrapping_mul(31) + r).then(second));
                let (more, in_flight2) = run(&mut flash, config, resume, resume + 3, &what);
                let Some(in_flight2) = in_flight2 else {
                    panic!("{what}: the second cut did not fire");
                };
                let mut done2 = done.clone();
                done2.extend(more);
                check_after(
                    &mut flash,
                    config,
                    done2,
                    in_flight2,
                    min_kept,
                    &mut totals,
                    &what,
                );
                totals.scenarios += 1;
                totals.nested += 1;
            }
        }
    }
    println!(
        "audit power-cut sweep ({name}, {} pages, prefill {prefill}, script {script} appends, \
         {} mode): {total_ops} ops, {} scenarios ({} with a second cut during recovery), \
         0 failures; the record in flight was kept {} times, lost {} times",
        config.pages,
        if full { "full" } else { "CI" },
        totals.scenarios,
        totals.nested,
        totals.kept_in_flight,
        totals.lost_in_flight
    );
    totals
}

/// One test per row: `name: flash, region, prefilled events, appends
/// swept, least journal erases => what the totals must show`.
macro_rules! sweeps {
    ($($test:ident: $flash:expr, $config:expr, $prefill:expr, $script:expr, $erases:expr
        => |$t:ident| $check:expr;)*) => {$(
        #[test]
        fn $test() {
            let $t = sweep($flash, $config, $prefill, $script, $erases);
            assert!($check);
        }
    )*};
}

sweeps! {
    // 29 slots per 4 KiB page, three pages: 150 appends turn pages five
    // times, three of them with a checkpoint and an erase.
    power_cut_sweep_nrf52840: SimFlash::<4, 4096>::nrf52840(), Config::new(0x8_0000, 3), 0, 150, 2
        => |t| t.scenarios > 400 && t.lost_in_flight > 0 && t.kept_in_flight > 0;
    power_cut_sweep_nrf52840_two_pages:
        SimFlash::<4, 4096>::nrf52840(), Config::new(0x8_0000, 2), 0, 100, 2
        => |t| t.scenarios > 300;
    // Three 140-byte slots per 512-byte page: a checkpoint and two events.
    power_cut_sweep_small_pages: SimFlash::<1, 512>::small_pages(), Config::new(0x1_0000, 4), 0, 40, 8
        => |t| t.scenarios > 100;
    // 819 slots of 160 bytes per 128 KiB sector: prefilled to just before
    // the turn that erases the oldest sector (ECC errors on torn words).
    power_cut_sweep_ecc32: SimFlash::<32, 131072>::ecc32(), Config::new(0x4_0000, 2), 1620, 40, 1
        => |t| t.scenarios > 100;
}
