//! Property tests: random operation sequences against an independent oracle,
//! with and without power cuts. Bits only ever move from erased to
//! programmed between erases of their sector.

use std::time::Duration;

use keyway_sim::{
    EraseTear, Error, Geometry, GeometrySpec, PowerCut, SectorRun, SimFlash, WriteTear,
};
use proptest::prelude::*;

const SECTOR: usize = 64;
const SECTORS: usize = 4;
const W: usize = 4;

type Flash = SimFlash<W, SECTOR>;

fn flash(erased: u8, ecc: bool) -> Flash {
    Flash::new(
        Geometry::new(GeometrySpec {
            name: "prop".into(),
            sectors: vec![SectorRun {
                count: SECTORS as u32,
                size: SECTOR as u32,
                erase_time: Duration::from_millis(1),
            }],
            write_size: W,
            read_size: 1,
            erased,
            program_time: Duration::from_micros(1),
            max_writes_per_unit: if ecc { Some(1) } else { Some(3) },
            ecc,
        })
        .unwrap(),
    )
    .unwrap()
}

#[derive(Clone, Debug)]
enum Op {
    Erase {
        first: usize,
        count: usize,
    },
    /// Write `units` units at `unit`; `legal` derives the data from the
    /// current contents (programs only more bits), otherwise it is raw.
    Write {
        unit: usize,
        units: usize,
        bytes: Vec<u8>,
        legal: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..SECTORS, 1..=2usize).prop_map(|(first, count)| Op::Erase { first, count: count.min(SECTORS - first) }),
        4 => (0..SECTORS * SECTOR / W, 1..=6usize, prop::collection::vec(any::<u8>(), 6 * W), any::<bool>())
            .prop_map(|(unit, units, bytes, legal)| {
                let units = units.min(SECTORS * SECTOR / W - unit);
                Op::Write { unit, units, bytes, legal }
            }),
    ]
}

/// The data a write op asks for, given the current contents.
fn data(f: &Flash, unit: usize, units: usize, bytes: &[u8], legal: bool) -> Vec<u8> {
    let erased = f.geometry().erased_value();
    let at = unit * W;
    (0..units * W)
        .map(|i| {
            if legal {
                // Keep every programmed bit, program some more.
                ((f.as_bytes()[at + i] ^ erased) | bytes[i]) ^ erased
            } else {
                bytes[i]
            }
        })
        .collect()
}

/// Oracle: would this write be accepted? (`writes` per unit since erase.)
fn oracle_ok(old: &[u8], writes: &[u8], at: usize, d: &[u8], erased: u8, limit: u8) -> bool {
    (0..d.len() / W).all(|u| writes[at / W + u] < limit)
        && d.iter()
            .enumerate()
            .all(|(i, &b)| (old[at + i] ^ erased) & !(b ^ erased) == 0)
}

/// Reboots and erases `from..to` until an erase completes (the recovery
/// itself may be cut again: nested cuts).
fn recover(f: &mut Flash, from: usize, to: usize) {
    loop {
        f.power_on();
        match f.erase(from as u32, to as u32) {
            Ok(()) => return,
            Err(Error::PowerCut) => continue,
            Err(e) => panic!("legal recovery erase refused: {e}"),
        }
    }
}

fn run(erased: u8, ecc: bool, ops: Vec<Op>, plan: Option<PowerCut>) -> Result<(), TestCaseError> {
    let mut f = flash(erased, ecc);
    if let Some(plan) = plan {
        f.set_power_cut(plan);
    }
    let limit = if ecc { 1 } else { 3 };
    let mut writes = vec![0u8; SECTORS * SECTOR / W];
    for op in ops {
        let old = f.as_bytes().to_vec();
        let ops_before = f.ops();
        let cuts_before = f.cut_log().len();
        match op {
            Op::Erase { first, count } => {
                let (from, to) = (first * SECTOR, (first + count) * SECTOR);
                let r = f.erase(from as u32, to as u32);
                let now = f.as_bytes();
                // Outside the range nothing changes, ever.
                prop_assert_eq!(&now[..from], &old[..from]);
                prop_assert_eq!(&now[to..], &old[to..]);
                match r {
                    Ok(()) => {
                        prop_assert!(now[from..to].iter().all(|&b| b == erased));
                        writes[from / W..to / W].fill(0);
                    }
                    Err(Error::PowerCut) => {
                        prop_assert!(f.cut_log().len() == cuts_before + 1);
                        // Whatever the damage, the next boot erases again.
                        recover(&mut f, from, to);
                        writes[from / W..to / W].fill(0);
                    }
                    Err(e) => prop_assert!(false, "legal erase refused: {}", e),
                }
            }
            Op::Write {
                unit,
                units,
                bytes,
                legal,
            } => {
                let at = unit * W;
                let d = data(&f, unit, units, &bytes, legal);
                let ok = oracle_ok(&old, &writes, at, &d, erased, limit);
                let r = f.write(at as u32, &d);
                let now = f.as_bytes();
                prop_assert_eq!(&now[..at], &old[..at]);
                prop_assert_eq!(&now[at + d.len()..], &old[at + d.len()..]);
                // Invariant: between erases, programmed bits only accumulate,
                // and never beyond what the write asked for.
                for i in 0..d.len() {
                    let (o, n, t) = (old[at + i] ^ erased, now[at + i] ^ erased, d[i] ^ erased);
                    prop_assert_eq!(o & !n, 0, "a programmed bit was erased by a write");
                    prop_assert_eq!(n & !(o | t), 0, "a bit the write did not ask for was set");
                }
                match r {
                    Ok(()) => {
                        prop_assert!(ok, "the oracle refuses this write");
                        prop_assert_eq!(&now[at..at + d.len()], &d[..]);
                        for w in &mut writes[unit..unit + units] {
                            *w += 1;
                        }
                    }
                    Err(Error::PowerCut) => {
                        prop_assert!(ok, "an illegal write reached the cut");
                        // Recover the way an installer would: erase the
                        // sectors the write touched.
                        let s0 = at / SECTOR;
                        let s1 = (at + d.len() - 1) / SECTOR + 1;
                        recover(&mut f, s0 * SECTOR, s1 * SECTOR);
                        writes[s0 * SECTOR / W..s1 * SECTOR / W].fill(0);
                    }
                    Err(e) => {
                        prop_assert!(!ok, "a legal write was refused: {}", e);
                        prop_assert_eq!(now, &old[..], "a refused write changed the flash");
                        prop_assert_eq!(f.ops(), ops_before);
                    }
                }
            }
        }
    }
    Ok(())
}

fn tear() -> impl Strategy<Value = (WriteTear, EraseTear)> {
    (
        prop_oneof![Just(WriteTear::Prefix), Just(WriteTear::Subset)],
        prop_oneof![Just(EraseTear::Partial), Just(EraseTear::Random)],
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_ops_match_the_oracle(
        erased in prop_oneof![Just(0xFFu8), Just(0x00u8)],
        ecc in any::<bool>(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        run(erased, ecc, ops, None)?;
    }

    #[test]
    fn random_ops_with_cuts_keep_the_invariants(
        erased in prop_oneof![Just(0xFFu8), Just(0x00u8)],
        ecc in any::<bool>(),
        ops in prop::collection::vec(op(), 1..60),
        seed in any::<u64>(),
        cuts in prop::collection::vec((0..40u64, any::<bool>(), tear()), 0..4),
    ) {
        let mut cuts = cuts;
        cuts.sort_by_key(|c| c.0);
        let mut plan = PowerCut::new(seed);
        for (at, before, (w, e)) in cuts {
            plan = if before { plan.before(at) } else { plan.during(at, w, e) };
        }
        run(erased, ecc, ops, Some(plan))?;
    }
}
