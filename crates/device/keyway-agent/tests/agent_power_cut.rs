//! Power cuts through the agent: pairing, consent and settings, with the
//! power cut before and during every flash operation they make (three
//! ways each). After each cut the lock reboots (a new agent on the same
//! flash) and must hold the state from before or after each step, never
//! report a success it did not make durable, and still let the owner
//! finish (nothing is stuck).

mod harness;

use harness::*;
use keyway_agent::agent::{Agent, Config, Pending, Press};
use keyway_agent::store::{GrantedBy, Settings};
use keyway_sim::{Cut, CutPoint, PowerCut};
use keyway_smp::keyway_group;
use keyway_smp::{Answer, Request, Response};

const DIGEST: [u8; 32] = [0x5e; 32];

#[derive(Debug, Default)]
struct Acked {
    paired: bool,
    consent: bool,
    settings: bool,
}

/// The owner's whole flow; stops at the first failure (the power is off).
fn scenario(h: &mut Harness, alice: &mut Client) -> Acked {
    let mut acked = Acked::default();
    h.press_ok(Press::Short);
    if h.pair(alice, CODE, "Alice").is_err() {
        return acked;
    }
    acked.paired = true;
    if h.open_session(alice).is_err() {
        return acked;
    }
    h.device.hw.pending = Some(Pending {
        digest: DIGEST,
        sequence: 9,
        notes_offered: true,
    });
    let r = h.call(alice, &consent(true));
    if !r.is_ok_and(|r| r.is_ok()) {
        return acked;
    }
    acked.consent = true;
    let r = h.call(
        alice,
        &Request::Settings(keyway_group::SettingsReq {
            auto_install_cve: Some(true),
            install_needs_unlocked: None,
            auth: None,
        }),
    );
    if r.is_ok_and(|r| r.is_ok()) {
        acked.settings = true;
    }
    acked
}

impl Harness {
    /// A button press whose store write may fail (the power is off).
    fn press_ok(&mut self, p: Press) {
        let _ = self.agent.button(self.lock_ms, p);
    }
}

#[test]
fn power_cut_at_every_flash_operation_of_pairing_and_consent() {
    // Dry run: the flash operations of provisioning plus the scenario.
    let mut alice = Client::new(0x0a, OWNER);
    let mut h = Harness::on_flash(1, Config::default(), Flash::nrf52840());
    let start = h.agent.flash().ops();
    let acked = scenario(&mut h, &mut alice);
    assert!(acked.paired && acked.consent && acked.settings, "{acked:?}");
    let end = h.agent.flash().ops();
    assert!(end > start);
    let mut scenarios = 0;
    for op in start..end {
        for point in CutPoint::three_ways(op) {
            let plan = match point.cut {
                Cut::Before => PowerCut::new(op).before(op),
                Cut::During { write, erase } => PowerCut::new(op).during(op, write, erase),
            };
            let mut alice = Client::new(0x0a, OWNER);
            let mut h = Harness::on_flash(1, Config::default(), Flash::nrf52840());
            let mut flash = std::mem::replace(
                &mut h.agent,
                Agent::new(Flash::nrf52840(), REGION, keypair(1), Config::default(), 0).unwrap(),
            )
            .into_flash();
            flash.set_power_cut(plan);
            h.agent =
                Agent::new(flash, REGION, keypair(0xd0), Config::default(), h.lock_ms).unwrap();
            let acked = scenario(&mut h, &mut alice);
            assert!(
                !h.agent.flash().is_powered(),
                "op {op} {point:?}: the cut did not fire"
            );
            // Reboot.
            let mut flash = std::mem::replace(
                &mut h.agent,
                Agent::new(Flash::nrf52840(), REGION, keypair(1), Config::default(), 0).unwrap(),
            )
            .into_flash();
            flash.power_on();
            h.agent =
                Agent::new(flash, REGION, keypair(0xd0), Config::default(), h.lock_ms).unwrap();
            let st = h.agent.state();
            let owners: Vec<_> = st.owners().map(|o| o.id()).collect();
            let what = format!("cut {point:?} at op {op}, acked {acked:?}");
            // Before or after each step; every acknowledged step durable.
            assert!(owners.is_empty() || owners == [kid(&alice.key)], "{what}");
            assert!(!acked.paired || !owners.is_empty(), "{what}: pairing lost");
            match st.consent() {
                None => assert!(!acked.consent, "{what}: consent lost"),
                Some(c) => {
                    assert_eq!(c.digest, DIGEST, "{what}");
                    assert_eq!(c.granted_by, GrantedBy::Owner(kid(&alice.key)), "{what}");
                }
            }
            let s = st.settings();
            if acked.settings {
                assert!(s.auto_install_cve, "{what}: settings lost");
            } else {
                assert!(
                    s == Settings::default() || s.auto_install_cve,
                    "{what}: a mix"
                );
            }
            assert!(st.verifier().is_some(), "{what}: the setup code is gone");
            assert!(st.wrong_codes() <= 1, "{what}");
            // Nothing is stuck: the owner pairs (again) and consents.
            h.press(Press::Short);
            if owners.is_empty() {
                h.pair(&mut alice, CODE, "Alice").expect(&what);
            } else {
                alice.lock_key = Some(h.agent.device_public_key());
            }
            h.open_session(&mut alice).expect(&what);
            h.device.hw.pending = Some(Pending {
                digest: DIGEST,
                sequence: 9,
                notes_offered: true,
            });
            let r = h.call(&mut alice, &consent(true)).expect(&what);
            assert!(
                matches!(r.answer(), Answer::Ok(Response::Consent(_))),
                "{what}"
            );
            scenarios += 1;
        }
    }
    println!(
        "agent power-cut sweep: {} flash operations, {scenarios} scenarios (before, during x2), 0 failures",
        end - start
    );
}
