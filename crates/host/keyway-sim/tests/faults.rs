//! Power cuts: before, during (torn writes, interrupted erases), ECC errors
//! on torn words, nested cuts, determinism.

use std::time::Duration;

use keyway_sim::{
    Cut, EraseTear, Error, Geometry, GeometrySpec, Nrf52840Flash, OpKind, PowerCut, SectorRun,
    SimFlash, WriteTear,
};

type Small<const W: usize> = SimFlash<W, 256>;

fn small<const W: usize>(erased: u8, ecc: bool) -> Small<W> {
    Small::<W>::new(
        Geometry::new(GeometrySpec {
            name: "small".into(),
            sectors: vec![SectorRun {
                count: 4,
                size: 256,
                erase_time: Duration::from_millis(2),
            }],
            write_size: W,
            read_size: 1,
            erased,
            program_time: Duration::from_micros(3),
            max_writes_per_unit: if ecc { Some(1) } else { None },
            ecc,
        })
        .unwrap(),
    )
    .unwrap()
}

/// The scenario the cut tests replay: 6 operations.
fn scenario<const W: usize>(f: &mut Small<W>) -> Result<(), Error> {
    f.erase(0, 256)?;
    f.write(0, &[0x11; 64])?;
    f.write(64, &[0x22; 64])?;
    f.erase(256, 768)?;
    f.write(256, &[0x33; 128])?;
    f.write(512, &[0x44; 32])?;
    Ok(())
}

fn programmed(b: u8, erased: u8) -> u8 {
    b ^ erased
}

#[test]
fn cut_before_op_n_leaves_the_flash_as_after_op_n_minus_1() {
    let mut dry = small::<4>(0xFF, false);
    // Something for each erase to clear.
    dry.write(8, &[0x5A; 4]).unwrap();
    dry.write(300, &[0x5A; 4]).unwrap();
    dry.reset_stats();
    let base = dry.clone();
    let start = dry.ops();
    scenario(&mut dry).unwrap();
    let total = dry.ops() - start;
    assert_eq!(total, 6);

    // Snapshots after each prefix of the scenario, via cuts before each op.
    let mut states = Vec::new();
    for n in 0..=total {
        let mut f = base
            .clone()
            .with_power_cut(PowerCut::new(1).before(start + n));
        let r = scenario(&mut f);
        if n < total {
            assert_eq!(r, Err(Error::PowerCut));
            assert_eq!(f.ops(), start + n, "a cut-before op is not counted");
            assert_eq!(f.cut_log().len(), 1);
            assert_eq!(f.cut_log()[0].op, start + n);
        } else {
            r.unwrap();
        }
        states.push(f.as_bytes().to_vec());
    }
    // Each op changed something, so the states differ one from the next, and
    // the final state is the dry run's.
    for w in states.windows(2) {
        assert_ne!(w[0], w[1]);
    }
    assert_eq!(states[total as usize], dry.as_bytes());
    assert_eq!(states[0], base.as_bytes());
}

#[test]
fn after_a_cut_everything_fails_until_power_on() {
    let mut f = small::<4>(0xFF, false).with_power_cut(PowerCut::new(9).before(1));
    f.erase(0, 256).unwrap();
    assert_eq!(f.write(0, &[1; 4]), Err(Error::PowerCut));
    assert!(!f.is_powered());
    let mut buf = [0; 4];
    assert_eq!(f.read(0, &mut buf), Err(Error::PowerCut));
    assert_eq!(f.erase(256, 512), Err(Error::PowerCut));
    assert_eq!(f.write(0, &[1; 4]), Err(Error::PowerCut));
    assert_eq!(f.ops(), 1);
    f.power_on();
    assert!(f.is_powered());
    assert_eq!(f.stats().power_cycles, 1);
    f.write(0, &[1; 4]).unwrap();
    f.read(0, &mut buf).unwrap();
    assert_eq!(buf, [1; 4]);
    assert_eq!(f.ops(), 2, "counters keep counting across the reboot");
    assert_eq!(f.erase_count(0), 1);

    f.power_off();
    assert_eq!(f.read(0, &mut buf), Err(Error::PowerCut));
    f.power_on();
    assert_eq!(f.stats().power_cycles, 2);
}

/// Checks one torn write of `target` at `offset` over `old`: every byte lies
/// between its old value and the target, and the shape is a prefix or a
/// per-unit subset.
fn check_torn<const W: usize>(
    f: &Small<W>,
    old: &[u8],
    offset: usize,
    target: &[u8],
    mode: WriteTear,
) {
    let erased = f.geometry().erased_value();
    let now = f.as_bytes();
    assert_eq!(
        &now[..offset],
        &old[..offset],
        "bytes before the write changed"
    );
    assert_eq!(
        &now[offset + target.len()..],
        &old[offset + target.len()..],
        "bytes after changed"
    );
    for (i, &t) in target.iter().enumerate() {
        let (o, n) = (
            programmed(old[offset + i], erased),
            programmed(now[offset + i], erased),
        );
        let t = programmed(t, erased);
        assert_eq!(o & !n, 0, "a programmed bit was erased at {i}");
        assert_eq!(
            n & !(o | t),
            0,
            "a bit the write could not set was set at {i}"
        );
    }
    let done = |i: usize| now[offset + i] == target[i];
    let same = |i: usize| now[offset + i] == old[offset + i];
    match mode {
        WriteTear::Prefix => {
            // Some k: bytes before k done, bytes after k untouched.
            let k = (0..target.len())
                .find(|&i| !done(i))
                .unwrap_or(target.len());
            assert!((k + 1..target.len()).all(same), "not a prefix");
        }
        // Per unit: done, untouched or partial; the bit bounds above are the
        // rule, the caller counts the shapes.
        WriteTear::Subset => {}
    }
}

#[test]
fn torn_writes_leave_a_prefix_or_subset_and_never_set_extra_bits() {
    let mut prefixes_seen = std::collections::BTreeSet::new();
    let mut shapes = [0usize; 3]; // units done / untouched / partial in subset mode
    for erased in [0xFF, 0x00] {
        for seed in 0..200u64 {
            for mode in [WriteTear::Prefix, WriteTear::Subset] {
                let mut f = small::<4>(erased, false);
                // Old contents with some bits already programmed.
                let old_pat: Vec<u8> = (0..64u32)
                    .map(|i| erased ^ ((i * 37) as u8 & 0x81))
                    .collect();
                f.write(128, &old_pat).unwrap();
                let target: Vec<u8> = old_pat
                    .iter()
                    .enumerate()
                    .map(|(i, &o)| {
                        // Program more bits: a legal target.
                        let p = programmed(o, erased) | (i as u8).wrapping_mul(29) | 0x10;
                        p ^ erased
                    })
                    .collect();
                let old = f.as_bytes().to_vec();
                f.set_power_cut(PowerCut::new(seed).during(1, mode, EraseTear::Random));
                assert_eq!(f.write(128, &target), Err(Error::PowerCut));
                assert_eq!(f.ops(), 2, "a cut-during op is counted");
                check_torn(&f, &old, 128, &target, mode);
                let now = &f.as_bytes()[128..192];
                if mode == WriteTear::Prefix {
                    let k = (0..64).find(|&i| now[i] != target[i]).unwrap_or(64);
                    prefixes_seen.insert(k / 16);
                    // Units up to the torn one are charged, the rest not:
                    // at least every unit that changed, at most up to the
                    // first byte that is not done.
                    let charged = f.bytes_written() - 64;
                    let upper = 4 * (k as u64 / 4 + 1).min(16);
                    let changed = (0..64).rev().find(|&i| now[i] != old[128 + i]);
                    let lower = changed.map_or(4, |i| 4 * (i as u64 / 4 + 1));
                    assert!(
                        lower <= charged && charged <= upper,
                        "{lower} {charged} {upper}"
                    );
                } else {
                    for u in 0..16 {
                        let r = u * 4..u * 4 + 4;
                        if now[r.clone()] == target[r.clone()] {
                            shapes[0] += 1;
                        } else if now[r.clone()] == old[128 + u * 4..128 + u * 4 + 4] {
                            shapes[1] += 1;
                        } else {
                            shapes[2] += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(
        prefixes_seen.len(),
        4,
        "the tear point is spread over the write"
    );
    assert!(
        shapes.iter().all(|&n| n > 1000),
        "subset mode mixes all three shapes: {shapes:?}"
    );
}

#[test]
fn interrupted_erase_changes_only_that_sector() {
    for mode in [EraseTear::Partial, EraseTear::Random] {
        for seed in 0..20 {
            let mut f = small::<4>(0xFF, false);
            for s in 0..4u32 {
                f.write(s * 256, &vec![0x0F ^ s as u8; 256]).unwrap();
            }
            let old = f.as_bytes().to_vec();
            f.set_power_cut(PowerCut::new(seed).during(4, WriteTear::Prefix, mode));
            assert_eq!(f.erase(512, 768), Err(Error::PowerCut));
            let now = f.as_bytes();
            assert_eq!(&now[..512], &old[..512]);
            assert_eq!(&now[768..], &old[768..]);
            assert_ne!(
                &now[512..768],
                &old[512..768],
                "seed {seed}: nothing happened"
            );
            if mode == EraseTear::Partial {
                // Only programmed bits went back to erased.
                for i in 512..768 {
                    assert_eq!(now[i] & old[i], old[i], "a bit was programmed by an erase");
                }
                assert!(now[512..768].iter().any(|&b| b != 0xFF), "not fully erased");
            }
            assert_eq!(f.erase_counts(), &[0, 0, 1, 0]);
            assert_eq!(f.ops(), 5);
            assert_eq!(f.cut_log()[0].kind, OpKind::Erase);
            // A complete erase repairs it.
            f.power_on();
            f.erase(512, 768).unwrap();
            assert!(f.as_bytes()[512..768].iter().all(|&b| b == 0xFF));
        }
    }
}

#[test]
fn interrupted_multi_sector_erase_erases_in_order() {
    let mut in_progress = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let mut f = small::<4>(0xFF, false);
        f.write(0, &[0; 1024]).unwrap();
        f.set_power_cut(PowerCut::new(seed).during(1, WriteTear::Prefix, EraseTear::Random));
        assert_eq!(f.erase(0, 1024), Err(Error::PowerCut));
        let now = f.as_bytes();
        let sector = |s: usize| &now[s * 256..(s + 1) * 256];
        let torn = (0..4)
            .find(|&s| sector(s).iter().any(|&b| b != 0xFF))
            .unwrap();
        in_progress.insert(torn);
        for s in torn + 1..4 {
            assert!(
                sector(s).iter().all(|&b| b == 0),
                "sector {s} after the torn one changed"
            );
        }
        let counts: Vec<u32> = (0..4).map(|s| u32::from(s <= torn)).collect();
        assert_eq!(f.erase_counts(), &counts[..]);
    }
    assert_eq!(in_progress.len(), 4);
}

#[test]
fn ecc_errors_only_on_torn_words_until_erase() {
    let mut saw_error = 0;
    for seed in 0..30 {
        let mut f = small::<32>(0xFF, true);
        f.write(0, &[0x00; 32]).unwrap();
        f.set_power_cut(PowerCut::new(seed).during(1, WriteTear::Subset, EraseTear::Random));
        assert_eq!(f.write(32, &[0xA5; 128]), Err(Error::PowerCut));
        f.power_on();
        let mut buf = [0u8; 32];
        f.read(0, &mut buf).unwrap();
        assert_eq!(buf, [0; 32]);
        for word in 1..5u32 {
            let at = word * 32;
            let r = f.read(at, &mut buf);
            let torn = f.ecc_error_at(at);
            let expect_torn = {
                let d = &f.as_bytes()[at as usize..at as usize + 32];
                // Subset: done, untouched, or partial. Only partial words are torn.
                !(d == [0xA5; 32] || d == [0xFF; 32]) || torn
            };
            assert_eq!(torn, expect_torn);
            if torn {
                saw_error += 1;
                assert_eq!(
                    r,
                    Err(Error::Ecc {
                        offset: at,
                        unit: 32
                    })
                );
                // A read merely touching the word fails too.
                let mut one = [0u8; 1];
                assert!(f.read(at + 31, &mut one).is_err());
                // It cannot be reprogrammed before an erase.
                assert!(matches!(
                    f.write(at, &[0; 32]),
                    Err(Error::TooManyWrites { .. })
                ));
            } else {
                r.unwrap();
            }
        }
        f.erase(0, 256).unwrap();
        assert!((0..8).all(|w| !f.ecc_error_at(w * 32)));
        f.read(32, &mut buf).unwrap();
        f.write(32, &[0x11; 32]).unwrap();
    }
    assert!(saw_error > 10, "subset mode tears some words: {saw_error}");

    // A prefix tear marks exactly one word.
    let mut f = small::<32>(0xFF, true).with_power_cut(PowerCut::new(3).during(
        0,
        WriteTear::Prefix,
        EraseTear::Random,
    ));
    assert_eq!(f.write(0, &[0; 256]), Err(Error::PowerCut));
    assert_eq!((0..8).filter(|&w| f.ecc_error_at(w * 32)).count(), 1);

    // The same tear on flash without ECC reads back fine.
    let mut g = small::<32>(0xFF, false).with_power_cut(PowerCut::new(3).during(
        0,
        WriteTear::Prefix,
        EraseTear::Random,
    ));
    assert_eq!(g.write(0, &[0; 256]), Err(Error::PowerCut));
    g.power_on();
    let mut all = [0u8; 256];
    g.read(0, &mut all).unwrap();
    assert_eq!(&all[..], &f.as_bytes()[..256], "same seed, same tear");

    // An interrupted erase with random contents leaves every word bad.
    let mut h = small::<32>(0xFF, true).with_power_cut(PowerCut::new(5).during(
        0,
        WriteTear::Prefix,
        EraseTear::Random,
    ));
    assert_eq!(h.erase(256, 512), Err(Error::PowerCut));
    h.power_on();
    assert!((8..16).all(|w| h.ecc_error_at(w * 32)));
    assert!(!h.ecc_error_at(0));
    let mut buf = [0u8; 4];
    assert!(matches!(
        h.read(300, &mut buf),
        Err(Error::Ecc { offset: 288, .. })
    ));
}

#[test]
fn nested_cuts_hit_the_recovery() {
    // Cut during op 3, then before the second op of the recovery, then
    // during the fourth op of the second recovery.
    let plan = PowerCut::new(42)
        .during(3, WriteTear::Prefix, EraseTear::Partial)
        .before(5)
        .during(8, WriteTear::Subset, EraseTear::Random);
    let mut f = small::<4>(0xFF, false).with_power_cut(plan);
    let mut boots = 0;
    // "Recovery": redo the whole scenario idempotently, erasing first.
    loop {
        let r = (|| {
            f.erase(0, 1024)?;
            scenario(&mut f)
        })();
        match r {
            Ok(()) => break,
            Err(Error::PowerCut) => {
                boots += 1;
                f.power_on();
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(boots, 3);
    let log = f.cut_log();
    assert_eq!(log.iter().map(|c| c.op).collect::<Vec<_>>(), [3, 5, 8]);
    assert!(matches!(log[1].cut, Cut::Before));
    assert!(f.power_cut().is_done());
    // Boot 1: ops 0..=3 (3 cut during); boot 2: op 4, cut before 5;
    // boot 3: ops 5..=8 (8 cut during); boot 4: 7 ops.
    assert_eq!(f.ops(), 4 + 1 + 4 + 7);
    assert_eq!(f.stats().power_cycles, 3);
    let mut clean = small::<4>(0xFF, false);
    clean.erase(0, 1024).unwrap();
    scenario(&mut clean).unwrap();
    assert_eq!(f.as_bytes(), clean.as_bytes(), "recovery converged");
}

#[test]
fn cuts_are_deterministic_per_seed() {
    let run = |seed: u64| {
        let mut f = Nrf52840Flash::nrf52840();
        f.write(0, &[0x00; 4096]).unwrap();
        f.set_power_cut(
            PowerCut::new(seed)
                .during(1, WriteTear::Subset, EraseTear::Random)
                .during(2, WriteTear::Prefix, EraseTear::Random),
        );
        let _ = f.write(4096, &[0x12; 4096]);
        f.power_on();
        let _ = f.erase(0, 4096);
        f.into_bytes()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn exhaustive_sweep_over_a_dry_run() {
    // How the next session's sweeps will look: count ops, then cut at each.
    let mut dry = small::<4>(0xFF, false);
    scenario(&mut dry).unwrap();
    let n = dry.ops();
    let mut scenarios = 0;
    for op in 0..n {
        for cut in [
            Cut::Before,
            Cut::During {
                write: WriteTear::Prefix,
                erase: EraseTear::Partial,
            },
            Cut::During {
                write: WriteTear::Subset,
                erase: EraseTear::Random,
            },
        ] {
            let mut f = small::<4>(0xFF, false)
                .with_power_cut(PowerCut::new(op).then(keyway_sim::CutPoint { op, cut }));
            assert_eq!(scenario(&mut f), Err(Error::PowerCut));
            assert_eq!(f.cut_log().len(), 1);
            assert_eq!(f.cut_log()[0].cut, cut);
            let expect_ops = if cut == Cut::Before { op } else { op + 1 };
            assert_eq!(f.ops(), expect_ops);
            // Recovery: power on and rerun from scratch.
            f.power_on();
            f.erase(0, 1024).unwrap();
            scenario(&mut f).unwrap();
            assert_eq!(f.as_bytes(), dry.as_bytes());
            scenarios += 1;
        }
    }
    println!("exhaustive_sweep_over_a_dry_run: {scenarios} scenarios");
    assert_eq!(scenarios, 18);
}
