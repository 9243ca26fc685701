//! Fuzzes the lock agent (`keyway-agent`) with arbitrary frames from
//! arbitrary peers at arbitrary times, on a provisioned lock with one
//! owner, with the presence window opened and closed by the input too.
//!
//! Input: a sequence of records `[peer u8][dt u8][kind u8][len u16 LE][frame]`;
//! `kind` 0xB0/0xB1 presses the button (short/long) instead of sending.
//!
//! Invariants: nothing panics; no answer is longer than the buffer; no
//! owner appears (pairing needs the setup code, which the input cannot
//! know: the verifier is for a code the target never uses); the bolt never
//! moves (it needs an owner's session, which needs the owner's key); no
//! consent is stored.
#![no_main]

use keyway_channel::SigningKey as KeyPair;
use keyway_agent::agent::{Agent, Config, OUT_LEN, Press};
use keyway_agent::limits::PeerId;
use keyway_agent::store;
use keyway_agent::testing::{now, TestLock};
use keyway_channel::pairing::MIN_ITERATIONS;
use keyway_channel::{SetupCode, StoredVerifier};
use keyway_sim::{Geometry, SimFlash};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

const PAGE: usize = 4096;
const PAGES: usize = 2;

fuzz_target!(|data: &[u8]| {
    let region = store::Config::new(0, PAGES as u32);
    let key = KeyPair::from_bytes(&[0xd0; 32]);
    let Ok(mut agent) = Agent::<_, 4>::new(
        // A 4-byte-word NOR flash that refuses to program a bit back to 1.
        SimFlash::<4, PAGE>::new(Geometry::custom(PAGE as u32, PAGES as u32, 4, 0.0, 0.0).unwrap())
            .unwrap(),
        region,
        key,
        Config::default(),
        1_000,
    ) else {
        panic!("the agent opens on an erased flash");
    };
    let code = SetupCode::new(20_231_107).expect("a valid code");
    agent
        .provision(&StoredVerifier::derive(&code, &[7; 16], MIN_ITERATIONS))
        .expect("provisioned");
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    // The shared test lock: locked, door closed, nothing pending; the
    // commands the agent passes on are answered with an empty map.
    let mut hw = TestLock::<()>::default();
    let mut out = [0u8; OUT_LEN];
    let mut ms = 1_000u64;
    let mut rest = data;
    while rest.len() >= 5 {
        let (peer, dt, kind) = (rest[0], rest[1], rest[2]);
        let len = usize::from(u16::from_le_bytes([rest[3], rest[4]])).min(rest.len() - 5);
        let frame = &rest[5..5 + len];
        rest = &rest[5 + len..];
        ms += u64::from(dt) * 50;
        match kind {
            0xB0 => {
                let _ = agent.button(ms, Press::Short);
            }
            0xB1 => {
                let _ = agent.button(ms, Press::Long);
            }
            _ => {
                let o = agent.handle(PeerId(u64::from(peer)), now(ms), &mut rng, &mut hw, frame, &mut out);
                assert!(o.len <= out.len());
            }
        }
        assert_eq!(agent.state().owner_count(), 0, "an owner appeared without pairing");
        assert!(agent.state().consent().is_none(), "consent without an owner");
        assert_eq!(hw.hw.bolt_moves, 0, "the bolt moved without an owner");
    }
});
