//! The simulator's `open-pairing` profile (feature `flawed-profiles`):
//! each deliberate flaw lets through the attack that the real agent
//! refuses, and `Flaws::NONE` is the real agent. Each test runs the same
//! attack against both, so it fails if a flaw stops working (the audit
//! could no longer be shown to fail) or leaks into the real agent.
#![cfg(feature = "flawed-profiles")]

mod harness;

use harness::*;
use keyway_agent::agent::flaws::Flaws;
use keyway_agent::agent::{Agent, Config, Event, Pending, Press};
use keyway_smp::Request;
use keyway_smp::keyway_group::{self, Bolt};

/// A lock with `flaws`, `alice` paired by the setup code, in a session.
fn lock_with(flaws: Flaws, seed: u64, alice: &mut Client) -> Harness {
    let c = Config {
        flaws,
        ..Config::default()
    };
    let mut h = Harness::with_config(seed, c);
    h.press(Press::Short);
    h.pair(alice, CODE, "Alice").unwrap();
    h.open_session(alice).unwrap();
    h
}

const BOTH: [(Flaws, bool); 2] = [(Flaws::NONE, false), (Flaws::OPEN_PAIRING, true)];

#[test]
fn flaw_plain_pair_pairs_a_strangers_key_in_the_window() {
    for (flaws, flawed) in BOTH {
        let mut alice = Client::new(0x0a, OWNER);
        let mut h = lock_with(flaws, 1, &mut alice);
        h.press(Press::Short);
        let r = h.send(
            STRANGER,
            &Request::Pair(keyway_group::Pair {
                key: [9; 32],
                name: Some("mallory"),
            }),
        );
        assert_eq!(r.is_ok(), flawed, "{flaws:?}");
        assert_eq!(h.agent.state().owner_count(), 1 + usize::from(flawed));
    }
}

#[test]
fn flaw_no_freshness_runs_a_held_back_unlock() {
    for (flaws, flawed) in BOTH {
        let mut alice = Client::new(0x0a, OWNER);
        let mut h = lock_with(flaws, 2, &mut alice);
        let rec = h.seal(&mut alice, &unlock());
        h.advance(20_000);
        h.deliver(OWNER, &rec);
        let want = if flawed { Bolt::Unlocked } else { Bolt::Locked };
        assert_eq!(h.device.hw.bolt, want, "{flaws:?}");
    }
}

#[test]
fn flaw_plain_owner_unlocks_for_a_stranger_in_the_clear() {
    for (flaws, flawed) in BOTH {
        let mut alice = Client::new(0x0a, OWNER);
        let mut h = lock_with(flaws, 3, &mut alice);
        let r = h.send(STRANGER, &unlock());
        assert_eq!(r.is_ok(), flawed, "{flaws:?}");
        let want = if flawed { Bolt::Unlocked } else { Bolt::Locked };
        assert_eq!(h.device.hw.bolt, want, "{flaws:?}");
    }
}

#[test]
fn flaw_any_chunk_takes_a_strangers_chunk_into_the_owners_upload() {
    static DATA: [u8; 512] = [0x42; 512];
    for (flaws, flawed) in BOTH {
        let mut alice = Client::new(0x0a, OWNER);
        let mut h = lock_with(flaws, 4, &mut alice);
        h.press(Press::Short);
        let r = h
            .call(&mut alice, &chunk(0, Some(2048), &DATA, true))
            .unwrap();
        assert!(r.is_ok());
        let r = h.send(STRANGER, &chunk(512, None, &DATA, true));
        assert_eq!(r.is_ok(), flawed, "{flaws:?}");
    }
}

#[test]
fn flaw_open_reset_resets_for_anyone_without_limit() {
    for (flaws, flawed) in BOTH {
        let mut alice = Client::new(0x0a, OWNER);
        let mut h = lock_with(flaws, 5, &mut alice);
        // Pairing closed the window: the stranger has no authority.
        assert!(!h.agent.window_open(h.lock_ms));
        let mut resets = 0;
        for _ in 0..10 {
            let r = h.send(STRANGER, &Request::Reset(keyway_group::Signed::default()));
            if r.is_ok() {
                assert!(matches!(r.event, Event::Reset { .. }));
                resets += 1;
            }
            h.advance(100);
        }
        assert_eq!(resets, if flawed { 10 } else { 0 }, "{flaws:?}");
    }
}

#[test]
fn flaw_ram_consent_loses_consent_in_a_power_cut() {
    for (flaws, flawed) in BOTH {
        let mut alice = Client::new(0x0a, OWNER);
        let mut h = lock_with(flaws, 6, &mut alice);
        h.device.hw.pending = Some(Pending {
            digest: [0x5e; 32],
            sequence: 7,
            notes_offered: true,
        });
        let consent = consent(true);
        assert!(h.call(&mut alice, &consent).unwrap().is_ok());
        assert!(h.agent.consent().is_some(), "{flaws:?}");
        // Power cut: a new agent on the same flash.
        let c = Config {
            flaws,
            ..Config::default()
        };
        let flash = std::mem::replace(
            &mut h.agent,
            Agent::new(Flash::nrf52840(), REGION, keypair(1), c, 0).unwrap(),
        )
        .into_flash();
        let agent = Agent::<_, SLOTS>::new(flash, REGION, keypair(0xd0), c, 0).unwrap();
        assert_eq!(agent.consent().is_some(), !flawed, "{flaws:?}");
    }
}
