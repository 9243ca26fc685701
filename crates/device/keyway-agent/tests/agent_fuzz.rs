//! Arbitrary frames from radio range: the agent never panics, and the
//! invariants hold: no owner appears without pairing, the bolt never
//! moves without an owner's session, no consent is recorded.

mod harness;

use std::sync::atomic::{AtomicUsize, Ordering};

use harness::*;
use keyway_agent::agent::{Pending, Press};
use keyway_agent::limits::PeerId;
use keyway_smp::{MAX_FRAME, Request, Version};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Input {
    /// Any bytes.
    Raw(Vec<u8>),
    /// A well-formed header (op, group, id) and any body.
    Headed(u8, u16, u8, Vec<u8>),
    /// One of every request, with one byte xored and the length changed.
    Mutated(usize, usize, u8, i8),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Input::Raw),
        (
            0u8..4,
            prop_oneof![Just(0u16), Just(1), Just(64), any::<u16>()],
            0u8..24,
            proptest::collection::vec(any::<u8>(), 0..200)
        )
            .prop_map(|(op, g, id, b)| Input::Headed(op, g, id, b)),
        (0usize..64, any::<usize>(), 1u8..=255, -3i8..=3)
            .prop_map(|(i, at, x, d)| Input::Mutated(i, at, x, d)),
    ]
}

fn bytes(input: &Input, h: &mut Harness) -> Vec<u8> {
    match input {
        Input::Raw(b) => b.clone(),
        Input::Headed(op, g, id, body) => {
            let mut f = vec![*op, 0];
            f.extend_from_slice(&(body.len() as u16).to_be_bytes());
            f.extend_from_slice(&g.to_be_bytes());
            f.extend_from_slice(&[0, *id]);
            f.extend_from_slice(body);
            f
        }
        Input::Mutated(i, at, x, d) => {
            let all = every_request();
            let req: &Request<'_> = &all[i % all.len()];
            let mut buf = vec![0u8; MAX_FRAME];
            let n = req.frame(&mut buf, Version::V2, h.seq).unwrap();
            buf.truncate(n);
            let at = at % buf.len();
            buf[at] ^= x;
            let len = (buf.len() as isize + *d as isize).max(0) as usize;
            buf.resize(len, 0xA5);
            buf
        }
    }
}

/// Runs `case` on `cases` values of `strategy` (each adds the frames it
/// sent to the counter it is given), then prints `what` with the scenario
/// and frame counts and `held`, what every scenario checked.
fn run_cases<S: Strategy>(
    cases: u32,
    strategy: S,
    what: &str,
    held: &str,
    case: impl Fn(S::Value, &AtomicUsize) -> Result<(), TestCaseError>,
) {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    let scenarios = AtomicUsize::new(0);
    let frames = AtomicUsize::new(0);
    runner
        .run(&strategy, |value| {
            case(value, &frames)?;
            scenarios.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    println!(
        "{what}: {} scenarios, {} frames: {held}",
        scenarios.load(Ordering::Relaxed),
        frames.load(Ordering::Relaxed)
    );
}

#[test]
fn arbitrary_frames_never_panic_and_never_add_an_owner() {
    let strategy = (
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec((0u64..4, 0u64..3000, input()), 1..40),
    );
    run_cases(
        256,
        strategy,
        "arbitrary frames",
        "no panic, no owner added, bolt never moved, no consent",
        |(seed, window, long, with_owner, inputs), frames| {
            let mut alice = Client::new(0x0a, OWNER);
            let mut h = if with_owner {
                Harness::with_owner(seed, &mut alice)
            } else {
                Harness::new(seed)
            };
            h.device.hw.pending = Some(Pending {
                digest: [1; 32],
                sequence: 3,
                notes_offered: true,
            });
            if window {
                h.press(Press::Short);
                if long {
                    h.press(Press::Long);
                }
            }
            let owners: Vec<_> = h.agent.state().owners().map(|o| o.id()).collect();
            for (peer, wait, inp) in &inputs {
                h.advance(*wait);
                let f = bytes(inp, &mut h);
                // The attacker's own addresses, never the owner's.
                let (answer, _) = h.send_raw(PeerId(100 + peer), &f);
                prop_assert!(answer.len() <= MAX_FRAME);
                frames.fetch_add(1, Ordering::Relaxed);
                // No owner appears. Owners go only by a factory reset
                // (the window and the long press).
                let now: Vec<_> = h.agent.state().owners().map(|o| o.id()).collect();
                if window && long {
                    prop_assert!(now.is_empty() || now == owners);
                } else {
                    prop_assert_eq!(&now, &owners);
                }
                prop_assert_eq!(h.device.hw.bolt_moves, 0);
                prop_assert_eq!(h.agent.state().consent(), None);
            }
            Ok(())
        },
    );
}

#[test]
fn arbitrary_sealed_frames_from_an_owner_never_panic() {
    // The owner's own session carries arbitrary inner bytes (a buggy or
    // compromised client): the agent answers every one sealed, never
    // panics, and the session keeps working.
    let strategy = (
        any::<u64>(),
        proptest::collection::vec((0u64..2000, input()), 1..30),
    );
    run_cases(
        64,
        strategy,
        "arbitrary sealed frames",
        "every one answered sealed, no panic",
        |(seed, inputs), frames| {
            let (mut h, mut alice) = Harness::with_alice(seed);
            for (wait, inp) in &inputs {
                h.advance(*wait);
                let inner = bytes(inp, &mut h);
                let s = alice.session.as_mut().unwrap();
                let mut rec = vec![0u8; inner.len() + 64];
                let (_, n) = s.seal_request(h.client_ms, &inner, &mut rec).unwrap();
                rec.truncate(n);
                let outer = h.deliver(OWNER, &rec);
                // Records within the SMP body limit are answered sealed.
                if rec.len() <= keyway_agent::agent::MAX_SEALED_REQUEST + 36 {
                    prop_assert!(h.open(&mut alice, &outer).is_ok(), "{inp:?}");
                }
                frames.fetch_add(1, Ordering::Relaxed);
            }
            // The session still serves the owner.
            let r = h
                .call(
                    &mut alice,
                    &Request::Owners(keyway_smp::keyway_group::Signed::default()),
                )
                .unwrap();
            prop_assert!(r.is_ok());
            prop_assert_eq!(h.agent.state().owner_count(), 1);
            Ok(())
        },
    );
}
