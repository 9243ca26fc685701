//! The agent's dispatch, one named test per attack from radio range and
//! per rule of the authority table, through SMP frames only.

mod harness;

use harness::*;
use keyway_agent::agent::{Agent, Authority, Config, Event, Need, Pending, Press, need};
use keyway_agent::store::GrantedBy;
use keyway_smp::keyway_group::{self, Bolt};
use keyway_smp::{Answer, MgmtErr, Refusal, Request, Response};

/// A pairing refused because no presence window is open.
const NO_WINDOW: Fail = Fail::Refused(
    Some(Refusal::NoPresenceWindow),
    Some(MgmtErr::AccessDenied as u64),
);

// ----- pairing -------------------------------------------------------------

#[test]
fn pairing_with_right_code_in_window_adds_owner_and_closes_window() {
    let mut h = Harness::in_window(1);
    let mut alice = Client::new(0x0a, OWNER);
    assert!(h.agent.window_open(h.lock_ms));
    let r = h.pair(&mut alice, CODE, "Alice").unwrap();
    match r.answer() {
        Answer::Ok(Response::PakeFinish(p)) => {
            assert_eq!(p.key_id, kid(&alice.key));
            assert_eq!(p.owners, 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        r.event,
        Event::OwnerPaired {
            key_id: kid(&alice.key)
        }
    );
    // The client learnt the lock's real device key.
    assert_eq!(alice.lock_key, Some(h.agent.device_public_key()));
    let st = h.agent.state();
    assert_eq!(st.owner_count(), 1);
    let o = st.owner(&kid(&alice.key)).unwrap();
    assert_eq!(
        (o.key(), o.name()),
        (&alice.key.verifying_key().to_bytes(), "Alice")
    );
    assert_eq!(st.wrong_codes(), 0);
    // The window closed: a second pairing is refused.
    assert!(!h.agent.window_open(h.lock_ms));
    let mut bob = Client::new(0x0b, PeerId2::BOB);
    assert_eq!(h.pair(&mut bob, CODE, "Bob").unwrap_err(), NO_WINDOW);
    // The owner survives a power cut (a reopen from the same flash).
    let flash = std::mem::replace(
        &mut h.agent,
        Agent::new(Flash::nrf52840(), REGION, keypair(1), Config::default(), 0).unwrap(),
    )
    .into_flash();
    let again = Agent::<_, SLOTS>::new(flash, REGION, keypair(0xd0), Config::default(), 0).unwrap();
    assert!(again.state().owner(&kid(&alice.key)).is_some());
}

struct PeerId2;
impl PeerId2 {
    const BOB: keyway_agent::limits::PeerId = keyway_agent::limits::PeerId(2);
}

#[test]
fn pairing_without_window_is_refused() {
    let mut h = Harness::new(2);
    let mut alice = Client::new(0x0a, OWNER);
    // The right code is not enough without a person at the lock.
    assert_eq!(h.pair(&mut alice, CODE, "Alice").unwrap_err(), NO_WINDOW);
    // Nor is a message sent straight to the second step.
    for req in [
        Request::PakeStart(keyway_group::PakeStart { msg: &[4; 32] }),
        Request::PakeFinish(keyway_group::PakeFinish { msg: &[3; 113] }),
    ] {
        let r = h.send(OWNER, &req);
        assert_eq!(r.refusal(), Some(Refusal::NoPresenceWindow));
    }
    // The window expires on its own.
    h.press(Press::Short);
    h.advance(Config::default().window_ms + 1);
    assert_eq!(h.pair(&mut alice, CODE, "Alice").unwrap_err(), NO_WINDOW);
    // The old open pairing (id 8, a bare key) is gone, window or not.
    h.press(Press::Short);
    let r = h.send(
        STRANGER,
        &Request::Pair(keyway_group::Pair {
            key: keypair(0x66).verifying_key().to_bytes(),
            name: Some("mallory"),
        }),
    );
    assert_eq!(r.rc(), Some(MgmtErr::NotSup as u64));
    assert_eq!(h.agent.state().owner_count(), 0);
}

#[test]
fn wrong_code_is_refused_and_backoff_grows() {
    // A window long enough to sit through every wait (127 s).
    let mut h = Harness::with_config(
        3,
        Config {
            window_ms: 300_000,
            ..Config::default()
        },
    );
    let mut mallory = Client::new(0x66, STRANGER);
    h.press(Press::Short);
    // Waits before each attempt: 3 free, then 1, 2, 4, ... 64 s, then shut.
    let mut waits = Vec::new();
    for attempt in 1..=11u32 {
        // Find the wait: try, and if refused for the backoff, wait and retry.
        let mut waited = 0;
        let result = loop {
            match h.pair(&mut mallory, WRONG, "m") {
                Err(Fail::Refused(Some(Refusal::RateLimited { retry_s }), _)) => {
                    waited += retry_s;
                    h.advance(retry_s * 1000);
                }
                other => break other,
            }
        };
        waits.push(waited);
        if attempt <= 10 {
            assert_eq!(
                result.unwrap_err(),
                Fail::Channel(keyway_channel::Error::WrongCode),
                "attempt {attempt}: the client sees the lock does not share the code"
            );
            // The lock counted it durably, before answering Pake1.
            assert_eq!(h.agent.state().wrong_codes(), attempt);
        } else {
            assert_eq!(
                result.unwrap_err(),
                Fail::Refused(
                    Some(Refusal::PairingLockedOut),
                    Some(MgmtErr::AccessDenied as u64)
                )
            );
        }
        // Keep the window open through the long waits (each press would
        // also lift the lockout, so only re-open while below it).
        if !h.agent.window_open(h.lock_ms) {
            panic!("window closed during the test at attempt {attempt}");
        }
    }
    assert_eq!(waits, [0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 0]);
    // A wrong code's Pake3 (had the client gone on) is refused as such:
    // checked by the client above; the owner still pairs once a person
    // re-opens the window.
    h.press(Press::Short);
    assert_eq!(h.agent.state().wrong_codes(), 0);
    let mut alice = Client::new(0x0a, OWNER);
    h.pair(&mut alice, CODE, "Alice").unwrap();
    assert_eq!(h.agent.state().owner_count(), 1);
}

#[test]
fn wrong_code_count_survives_a_power_cut() {
    let mut h = Harness::in_window(4);
    let mut mallory = Client::new(0x66, STRANGER);
    for _ in 0..5 {
        while let Err(Fail::Refused(Some(Refusal::RateLimited { retry_s }), _)) =
            h.pair(&mut mallory, WRONG, "m")
        {
            h.advance(retry_s * 1000)
        }
    }
    assert_eq!(h.agent.state().wrong_codes(), 5);
    let flash = std::mem::replace(
        &mut h.agent,
        Agent::new(Flash::nrf52840(), REGION, keypair(1), Config::default(), 0).unwrap(),
    )
    .into_flash();
    // Reboot: the count and its wait (4 s after 5 failures) come back.
    h.agent = Agent::new(flash, REGION, keypair(0xd0), Config::default(), h.lock_ms).unwrap();
    assert_eq!(h.agent.state().wrong_codes(), 5);
    h.press(Press::Long); // window closed: a long press opens it ...
    // ... and a press clears the count (a person is at the lock).
    assert_eq!(h.agent.state().wrong_codes(), 0);
}

#[test]
fn stranger_cannot_take_over_owners_pairing() {
    let mut h = Harness::new(5);
    let mut alice = Client::new(0x0a, OWNER);
    let mut mallory = Client::new(0x66, STRANGER);
    h.press(Press::Short);
    // Alice's client begins.
    let params = h.params(OWNER).unwrap();
    let code = keyway_channel::SetupCode::new(CODE).unwrap();
    let (cp, pake1) = keyway_channel::ClientPairing::start(&code, &params, &mut h.rng).unwrap();
    let pake2 = h.pake_start(OWNER, &pake1).unwrap();
    // Mallory, during Alice's run: a new Pake1 (to restart the run) and a
    // forged Pake3 (to end it) are both refused, and change nothing.
    let wrong = keyway_channel::SetupCode::new(WRONG).unwrap();
    let (_, m1) = keyway_channel::ClientPairing::start(&wrong, &params, &mut h.rng).unwrap();
    let r = h.send(
        STRANGER,
        &Request::PakeStart(keyway_group::PakeStart { msg: &m1 }),
    );
    assert_eq!(r.refusal(), Some(Refusal::PairingBusy));
    let r = h.send(
        STRANGER,
        &Request::PakeFinish(keyway_group::PakeFinish { msg: &[0x33; 113] }),
    );
    assert_eq!(r.refusal(), Some(Refusal::PairingBusy));
    // Her whole pairing flow is refused too.
    assert_eq!(
        h.pair(&mut mallory, CODE, "Mallory").unwrap_err(),
        Fail::Refused(Some(Refusal::PairingBusy), Some(MgmtErr::Busy as u64))
    );
    // Alice finishes her run.
    h.finish_pairing(&mut alice, cp, &pake2, "Alice").unwrap();
    let owners: Vec<_> = h.agent.state().owners().map(|o| o.id()).collect();
    assert_eq!(owners, [kid(&alice.key)]);
    // The window closed with Alice's pairing: Mallory cannot follow.
    assert_eq!(
        h.pair(&mut mallory, CODE, "Mallory").unwrap_err(),
        NO_WINDOW
    );
    // After the run times out, another peer may pair (with the code).
    h.press(Press::Short);
    let r = h.send(
        STRANGER,
        &Request::PakeStart(keyway_group::PakeStart { msg: &m1 }),
    );
    assert!(r.is_ok(), "a fresh window: a new run may start");
}

/// A UDP retransmission of `Pake1` (the client's answer was lost, so it
/// sends the same frame again) is answered with the `Pake2` already sent:
/// the run is not restarted and no second guess is charged, so the
/// client's `Pake3` (made from either answer) pairs. Another peer sending
/// the same bytes is still refused, and so is the retransmission once the
/// run is over.
#[test]
fn a_retransmitted_pake1_gets_the_same_pake2_and_is_not_charged_again() {
    let mut h = Harness::in_window(15);
    let mut alice = Client::new(0x0a, OWNER);
    let (cp, pake1) = h.begin_pairing(OWNER, CODE).unwrap();
    let frame = h.frame(&Request::PakeStart(keyway_group::PakeStart { msg: &pake1 }));
    let pake2_of = |bytes: Vec<u8>, event: Event| {
        let r = Reply { bytes, event };
        (r.msg().unwrap(), r.event)
    };
    let (b, e) = h.send_raw(OWNER, &frame);
    let (first, event) = pake2_of(b, e);
    assert_eq!(event, Event::PairingAttempt { failures: 1 });
    assert_eq!(h.agent.state().wrong_codes(), 1);
    // The answer was lost: the client sends the very same frame twice more.
    h.advance(500);
    for _ in 0..2 {
        let (b, e) = h.send_raw(OWNER, &frame);
        let (again, event) = pake2_of(b, e);
        assert_eq!(again, first, "a retransmission restarted the run");
        assert_eq!(event, Event::None, "a retransmission is not a new attempt");
        assert_eq!(h.agent.state().wrong_codes(), 1, "charged twice");
    }
    // The same Pake1 under another SMP sequence number is the same message.
    let r = h.send(
        OWNER,
        &Request::PakeStart(keyway_group::PakeStart { msg: &pake1 }),
    );
    assert_eq!(pake2_of(r.bytes, r.event).0, first);
    // Someone else replaying Alice's bytes gets no answer to them.
    let (b, e) = h.send_raw(STRANGER, &frame);
    assert_eq!(
        Reply { bytes: b, event: e }.refusal(),
        Some(Refusal::PairingBusy)
    );
    // Alice's run goes on to pair.
    h.finish_pairing(&mut alice, cp, &first, "Alice").unwrap();
    assert_eq!(h.agent.state().owner_count(), 1);
    assert_eq!(h.agent.state().wrong_codes(), 0);
    // The run is over: the old Pake1 gets no stored answer (the window
    // closed with the pairing; in a new window it is a new, charged run).
    let (b, e) = h.send_raw(OWNER, &frame);
    assert_eq!(
        Reply { bytes: b, event: e }.refusal(),
        Some(Refusal::NoPresenceWindow)
    );
    h.press(Press::Short);
    let (b, e) = h.send_raw(OWNER, &frame);
    let (fresh, event) = pake2_of(b, e);
    assert_ne!(fresh, first);
    assert_eq!(event, Event::PairingAttempt { failures: 1 });
}

/// A retransmitted `Pake1` is answered even while the guard makes a new
/// attempt wait: the run it belongs to was already charged.
#[test]
fn a_retransmitted_pake1_is_answered_during_the_backoff_it_caused() {
    let mut h = Harness::new(16);
    // Three mistyped codes from the owner's phone, then the right one
    // (after the 1 s the fourth attempt waits).
    let mut typo = Client::new(0x0a, OWNER);
    h.press(Press::Short);
    for _ in 0..3 {
        assert_eq!(
            h.pair(&mut typo, WRONG, "m").unwrap_err(),
            Fail::Channel(keyway_channel::Error::WrongCode)
        );
    }
    h.advance(1000);
    let params = h.params(OWNER).unwrap();
    let code = keyway_channel::SetupCode::new(CODE).unwrap();
    let (_, pake1) = keyway_channel::ClientPairing::start(&code, &params, &mut h.rng).unwrap();
    let first = h.send(
        OWNER,
        &Request::PakeStart(keyway_group::PakeStart { msg: &pake1 }),
    );
    assert!(first.is_ok(), "{:?}", first.answer());
    assert_eq!(h.agent.state().wrong_codes(), 4);
    // A new attempt now waits (the fourth charged one started a backoff)...
    let (_, other) = keyway_channel::ClientPairing::start(&code, &params, &mut h.rng).unwrap();
    let r = h.send(
        OWNER,
        &Request::PakeStart(keyway_group::PakeStart { msg: &other }),
    );
    assert!(
        matches!(r.refusal(), Some(Refusal::RateLimited { .. })),
        "{:?}",
        r.answer()
    );
    // ... but the retransmission of the open run's Pake1 is answered.
    let again = h.send(
        OWNER,
        &Request::PakeStart(keyway_group::PakeStart { msg: &pake1 }),
    );
    assert_eq!(again.body(), first.body());
    assert_eq!(h.agent.state().wrong_codes(), 4);
}

#[test]
fn abandoned_pairing_frees_after_timeout() {
    let mut h = Harness::in_window(6);
    let mut alice = Client::new(0x0a, OWNER);
    // Mallory starts a run and never finishes it.
    let (_, m1) = h.begin_pairing(STRANGER, WRONG).unwrap();
    assert!(
        h.send(
            STRANGER,
            &Request::PakeStart(keyway_group::PakeStart { msg: &m1 })
        )
        .is_ok()
    );
    assert_eq!(
        h.pair(&mut alice, CODE, "Alice").unwrap_err(),
        Fail::Refused(Some(Refusal::PairingBusy), Some(MgmtErr::Busy as u64))
    );
    h.advance(Config::default().pairing_timeout_ms + 1);
    h.pair(&mut alice, CODE, "Alice").unwrap();
    assert_eq!(h.agent.state().owner_count(), 1);
}

// ----- sessions ------------------------------------------------------------

#[test]
fn unlock_needs_a_session_window_alone_never_unlocks() {
    let (mut h, mut alice) = Harness::with_alice(7);
    // Plain unlock: refused with the window closed and with it open, from
    // a stranger and from the owner's own address.
    for open in [false, true] {
        if open {
            h.press(Press::Short);
        }
        for peer in [STRANGER, OWNER] {
            let r = h.send(peer, &unlock());
            assert_eq!(r.refusal(), Some(Refusal::SessionRequired), "window {open}");
            assert_eq!(h.device.hw.bolt, Bolt::Locked);
        }
    }
    assert_eq!(h.device.hw.bolt_moves, 0);
    // In the owner's session it unlocks, and the answer (authenticated)
    // tells the bolt as the sensor reports it.
    let r = h.call(&mut alice, &unlock()).unwrap();
    match r.answer() {
        Answer::Ok(Response::Status(s)) => assert_eq!(s.bolt, Bolt::Unlocked),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        r.event,
        Event::Unlocked {
            by: kid(&alice.key)
        }
    );
    assert_eq!(h.device.hw.bolt, Bolt::Unlocked);
    let r = h.call(&mut alice, &lock()).unwrap();
    assert!(r.is_ok());
    assert_eq!(h.device.hw.bolt, Bolt::Locked);
}

/// A UDP retransmission of `msg1` (the lock's `msg2` came later than the
/// client's timeout, or was lost) gets the `msg2` already sent, and the
/// handshake it began stays: the client's `msg3`, made from the first
/// answer, opens the session. (Before: the retransmission replaced the
/// peer's handshake and the `msg3` was refused `UnknownSession`.)
#[test]
fn a_retransmitted_msg1_gets_the_same_msg2_and_the_handshake_stays() {
    let (mut h, mut alice) = Harness::with_alice(17);
    let (hs, msg1) = keyway_channel::ClientHandshake::start(&mut h.rng);
    let frame = h.frame(&Request::SessionStart(keyway_group::SessionStart {
        msg: &msg1,
    }));
    let msg2_of = |bytes: Vec<u8>| {
        let event = Event::None;
        Reply { bytes, event }.msg().unwrap()
    };
    let first = msg2_of(h.send_raw(OWNER, &frame).0);
    for _ in 0..2 {
        assert_eq!(
            msg2_of(h.send_raw(OWNER, &frame).0),
            first,
            "a retransmission began a new handshake"
        );
    }
    // Someone else sending the same bytes begins a handshake of their own
    // (and learns nothing new); Alice's stays.
    assert_ne!(msg2_of(h.send_raw(STRANGER, &frame).0), first);
    let s = h.finish_handshake(&alice, hs, &first, &alice.key);
    alice.session = Some(s.expect("the handshake was replaced"));
    h.drive(&mut alice, Bolt::Unlocked);
}

#[test]
fn replayed_sealed_request_is_refused() {
    let (mut h, mut alice) = Harness::with_alice(8);
    let rec = h.seal(&mut alice, &unlock());
    let outer = h.deliver(OWNER, &rec);
    h.open(&mut alice, &outer).unwrap();
    assert_eq!(h.device.hw.bolt, Bolt::Unlocked);
    h.drive(&mut alice, Bolt::Locked);
    // The recorded unlock, replayed (from any address): refused, not run.
    for peer in [OWNER, STRANGER] {
        let r = h.deliver(peer, &rec);
        assert_eq!(r.refusal(), Some(Refusal::RecordRefused));
        assert_eq!(h.device.hw.bolt, Bolt::Locked);
    }
    // An altered record too.
    let mut bad = h.seal(&mut alice, &unlock());
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        h.deliver(OWNER, &bad).refusal(),
        Some(Refusal::RecordRefused)
    );
    assert_eq!(h.device.hw.bolt, Bolt::Locked);
    assert_eq!(h.device.hw.bolt_moves, 2);
}

#[test]
fn held_back_request_is_refused_as_stale() {
    let (mut h, mut alice) = Harness::with_alice(9);
    // A man in the middle swallows the unlock and plays it 20 s later.
    let rec = h.seal(&mut alice, &unlock());
    h.advance(20_000);
    let outer = h.deliver(OWNER, &rec);
    assert_eq!(
        h.device.hw.bolt,
        Bolt::Locked,
        "a held-back unlock must not run"
    );
    assert_eq!(outer.event, Event::None);
    // The lock's answer is the channel's authenticated "stale".
    assert_eq!(
        h.open(&mut alice, &outer).unwrap_err(),
        Fail::Channel(keyway_channel::Error::StaleAtLock)
    );
    // The re-synced client's new request runs.
    h.drive(&mut alice, Bolt::Unlocked);
}

#[test]
fn forged_answer_is_an_error_at_the_client() {
    let (mut h, mut alice) = Harness::with_alice(10);
    let rec = h.seal(&mut alice, &lock());
    let mut outer = h.deliver(OWNER, &rec);
    // Flip a byte of the sealed answer inside the frame.
    let n = outer.bytes.len();
    outer.bytes[n - 3] ^= 0x40;
    assert_eq!(
        h.open(&mut alice, &outer).unwrap_err(),
        Fail::Channel(keyway_channel::Error::Forged)
    );
    // A plain (unsealed) "locked" status never opens as an answer.
    let plain = h.send(STRANGER, &Request::Echo(keyway_smp::os::Echo { d: "x" }));
    assert!(matches!(
        h.open(&mut alice, &plain),
        Err(Fail::Refused(None, None))
    ));
}

#[test]
fn unpaired_key_and_bad_proof_get_the_same_refusal() {
    let (mut h, alice) = Harness::with_alice(11);
    let mut mallory = Client::new(0x66, STRANGER);
    mallory.lock_key = alice.lock_key;
    // An unpaired key.
    let unpaired = keypair(0x66);
    let e1 = h.handshake_as(&mallory, &unpaired).unwrap_err();
    // Alice's key id with a signature by another key: a bad proof.
    let forged = keyway_channel::testing::Forger {
        claimed: alice.key.verifying_key().to_bytes(),
        key: keypair(0x66),
    };
    let e2 = h.handshake_as(&mallory, &forged).unwrap_err();
    assert_eq!(
        e1,
        Fail::Refused(
            Some(Refusal::NotAuthorized),
            Some(MgmtErr::AccessDenied as u64)
        )
    );
    assert_eq!(e1, e2);
    // The answers' bodies are byte for byte the same.
    let body = |h: &mut Harness, signer: &dyn keyway_channel::OwnerSigner| {
        let (hs, msg1) = keyway_channel::ClientHandshake::start(&mut h.rng);
        let msg2 = h.session_start(STRANGER, &msg1).unwrap();
        let mut msg3 = [0u8; keyway_channel::handshake::MSG3_LEN];
        hs.msg2(&msg2, &h.agent.device_public_key(), signer, &mut msg3)
            .unwrap();
        let r = h.send(
            STRANGER,
            &Request::SessionFinish(keyway_group::SessionFinish { msg: &msg3 }),
        );
        r.body().to_vec()
    };
    assert_eq!(body(&mut h, &unpaired), body(&mut h, &forged));
}

// ----- authority -----------------------------------------------------------

/// What a stranger gets for each request, window closed and open.
fn expected_plain(req: &Request<'_>, window: bool) -> Result<(), Option<Refusal>> {
    let (op, g, id) = req.key();
    match need(op, g, id) {
        Need::Open => Ok(()),
        // Channel messages carry their own proof: these bodies are junk.
        Need::Channel => match req {
            Request::SessionStart(_) => Err(None),
            Request::SessionFinish(_) | Request::Sealed(_) => Err(Some(Refusal::UnknownSession)),
            _ => unreachable!(),
        },
        Need::Pairing if window => match req {
            Request::PakeParams => Ok(()),
            Request::PakeStart(_) => Err(None),
            _ => Err(Some(Refusal::NoPairing)),
        },
        Need::Pairing => Err(Some(Refusal::NoPresenceWindow)),
        Need::WindowOrOwner if window => Ok(()),
        Need::WindowOrOwner => Err(Some(Refusal::NoPresenceWindow)),
        Need::WindowAndLongPress if window => Err(Some(Refusal::LongPressNeeded)),
        Need::WindowAndLongPress => Err(Some(Refusal::NoPresenceWindow)),
        Need::Owner => Err(Some(Refusal::SessionRequired)),
        Need::Unknown => Err(None),
    }
}

#[test]
fn unauthenticated_peer_gets_only_echo_params_and_image_state() {
    let mut h = Harness::new(12);
    let mut checked = 0;
    for window in [false, true] {
        if window {
            h.press(Press::Short);
        }
        for req in every_request() {
            // Past the reset limiter's first interval, so a reset's answer
            // shows the authority decision alone.
            h.advance(61_000);
            if window {
                h.press(Press::Short);
            }
            let r = h.send(STRANGER, &req);
            let want = expected_plain(&req, window);
            let typed = req.wants_typed_refusal();
            match want {
                Ok(()) => assert!(r.is_ok(), "{req:?} (window {window}): {:?}", r.answer()),
                Err(Some(refusal)) => {
                    assert!(!r.is_ok(), "{req:?} (window {window}) ran");
                    if typed {
                        assert_eq!(r.refusal(), Some(refusal), "{req:?} window {window}");
                    } else {
                        // Stock tools get the SMP code alone.
                        assert_eq!(r.refusal(), None, "{req:?}");
                        assert_eq!(r.rc(), Some(MgmtErr::AccessDenied as u64), "{req:?}");
                    }
                }
                Err(None) => assert!(!r.is_ok(), "{req:?} (window {window}) ran"),
            }
            checked += 1;
        }
        // Window closed: only echo, params and image state ran.
        if !window {
            let open: Vec<_> = every_request()
                .iter()
                .filter(|r| expected_plain(r, false).is_ok())
                .map(|r| r.key())
                .collect();
            assert_eq!(
                open,
                [
                    (keyway_smp::Op::Write, 0, 0),
                    (keyway_smp::Op::Read, 0, 6),
                    (keyway_smp::Op::Read, 1, 0)
                ]
            );
            // The shell served only the image state, for anyone.
            assert_eq!(h.device.shell.served, [(1, 0, Authority::Anyone)]);
        }
    }
    assert_eq!(h.device.hw.bolt_moves, 0);
    assert_eq!(h.agent.state().owner_count(), 0);
    assert_eq!(h.agent.state().consent(), None);
    println!("{checked} plain requests checked against the authority table");
}

#[test]
fn sealed_requests_run_as_the_owner_and_channel_messages_are_never_sealed() {
    let (mut h, mut alice) = Harness::with_alice(13);
    let mut checked = 0;
    for req in every_request() {
        h.advance(61_000);
        // The session idles out after 120 s: re-open it every time.
        h.open_session(&mut alice).unwrap();
        let (op, g, id) = req.key();
        let r = h.call(&mut alice, &req).unwrap();
        match need(op, g, id) {
            Need::Open | Need::WindowOrOwner | Need::Owner => match req {
                // Nothing waits for consent; the key id is unknown.
                Request::Consent(_) => {
                    assert_eq!(r.refusal(), Some(Refusal::NothingPending))
                }
                Request::Unpair(_) => assert_eq!(r.refusal(), Some(Refusal::UnknownOwner)),
                _ => assert!(r.is_ok(), "{req:?}: {:?}", r.answer()),
            },
            Need::Channel | Need::Pairing | Need::Unknown => {
                assert_eq!(r.rc(), Some(MgmtErr::NotSup as u64), "{req:?}")
            }
            Need::WindowAndLongPress => {
                assert_eq!(r.refusal(), Some(Refusal::NoPresenceWindow), "{req:?}")
            }
        }
        checked += 1;
    }
    assert!(
        h.device
            .shell
            .served
            .iter()
            .all(|(_, _, by)| *by == Authority::Owner(kid(&alice.key)))
    );
    assert_eq!(h.agent.state().owner_count(), 1);
    println!("{checked} sealed requests checked against the authority table");
}

#[test]
fn factory_reset_needs_window_and_long_press_and_keeps_the_setup_code() {
    let (mut h, mut alice) = Harness::with_alice(14);
    h.press(Press::Short);
    let r = h.send(STRANGER, &Request::FactoryReset);
    assert_eq!(r.refusal(), Some(Refusal::LongPressNeeded));
    h.press(Press::Long);
    let r = h.send(STRANGER, &Request::FactoryReset);
    assert!(r.is_ok());
    assert_eq!(r.event, Event::FactoryReset);
    assert_eq!(h.agent.state().owner_count(), 0);
    // Alice's session ended with her ownership.
    assert_eq!(
        h.call(&mut alice, &unlock()).unwrap_err(),
        Fail::Refused(Some(Refusal::UnknownSession), Some(MgmtErr::NoEnt as u64))
    );
    // The label's setup code still pairs.
    h.press(Press::Short);
    let mut bob = Client::new(0x0b, OWNER);
    h.pair(&mut bob, CODE, "Bob").unwrap();
}

// ----- owners, consent -----------------------------------------------------

#[test]
fn owners_list_and_unpair() {
    let (mut h, mut alice) = Harness::with_alice(15);
    let mut bob = Client::new(0x0b, PeerId2::BOB);
    h.press(Press::Short);
    h.pair(&mut bob, CODE, "Bob").unwrap();
    h.open_session(&mut bob).unwrap();
    let r = h
        .call(
            &mut alice,
            &Request::Owners(keyway_group::Signed::default()),
        )
        .unwrap();
    match r.answer() {
        Answer::Ok(Response::Owners(o)) => {
            let list: Vec<_> = o.owners.iter().map(|e| (e.key_id, e.name)).collect();
            assert_eq!(list, [(kid(&alice.key), "Alice"), (kid(&bob.key), "Bob")]);
        }
        other => panic!("{other:?}"),
    }
    // Listing needs a session.
    assert_eq!(
        h.send(STRANGER, &Request::Owners(keyway_group::Signed::default()))
            .refusal(),
        Some(Refusal::SessionRequired)
    );
    // Alice removes Bob; Bob's session closes with it.
    let r = h.call(&mut alice, &unpair(kid(&bob.key))).unwrap();
    match r.answer() {
        Answer::Ok(Response::Unpair(u)) => assert_eq!(u.owners, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        r.event,
        Event::OwnerRemoved {
            key_id: kid(&bob.key),
            by: kid(&alice.key)
        }
    );
    assert_eq!(
        h.call(&mut bob, &unlock()).unwrap_err(),
        Fail::Refused(Some(Refusal::UnknownSession), Some(MgmtErr::NoEnt as u64))
    );
    assert_eq!(
        h.open_session(&mut bob).unwrap_err(),
        Fail::Refused(
            Some(Refusal::NotAuthorized),
            Some(MgmtErr::AccessDenied as u64)
        )
    );
    assert_eq!(h.device.hw.bolt, Bolt::Locked);
    // Unknown ids are refused; an owner may remove herself, and her own
    // request's answer still arrives sealed before the session closes.
    let r = h.call(&mut alice, &unpair([9; 8])).unwrap();
    assert_eq!(r.refusal(), Some(Refusal::UnknownOwner));
    let me = kid(&alice.key);
    let r = h.call(&mut alice, &unpair(me)).unwrap();
    assert!(r.is_ok());
    assert_eq!(h.agent.state().owner_count(), 0);
    assert_eq!(
        h.call(
            &mut alice,
            &Request::Owners(keyway_group::Signed::default())
        )
        .unwrap_err(),
        Fail::Refused(Some(Refusal::UnknownSession), Some(MgmtErr::NoEnt as u64))
    );
}

#[test]
fn consent_persists_across_a_power_cut() {
    let (mut h, mut alice) = Harness::with_alice(16);
    let consent = consent(true);
    assert_eq!(
        h.call(&mut alice, &consent).unwrap().refusal(),
        Some(Refusal::NothingPending)
    );
    h.device.hw.pending = Some(Pending {
        digest: [0x5e; 32],
        sequence: 7,
        notes_offered: false,
    });
    assert_eq!(
        h.call(&mut alice, &consent).unwrap().refusal(),
        Some(Refusal::NotesNotOffered)
    );
    assert!(
        h.call(&mut alice, &Request::Notes(keyway_group::Signed::default()))
            .unwrap()
            .is_ok()
    );
    // An unauthenticated consent (the old reset-and-drop trick's first
    // half) is refused.
    assert_eq!(
        h.send(STRANGER, &consent).refusal(),
        Some(Refusal::SessionRequired)
    );
    let r = h.call(&mut alice, &consent).unwrap();
    assert!(r.is_ok());
    assert_eq!(
        r.event,
        Event::Consent {
            accept: true,
            by: kid(&alice.key)
        }
    );
    // Power cut: the agent is gone; a new one opens the same flash.
    let flash = std::mem::replace(
        &mut h.agent,
        Agent::new(Flash::nrf52840(), REGION, keypair(1), Config::default(), 0).unwrap(),
    )
    .into_flash();
    let agent = Agent::<_, SLOTS>::new(flash, REGION, keypair(0xd0), Config::default(), 0).unwrap();
    let c = agent
        .state()
        .consent()
        .expect("consent survived the power cut");
    assert_eq!((c.digest, c.sequence), ([0x5e; 32], 7));
    assert_eq!(c.granted_by, GrantedBy::Owner(kid(&alice.key)));
    assert_eq!(agent.state().owner_count(), 1);
    // And a reset (the old way to drop consent) needs authority and the
    // rate limit: a stranger's plain reset is refused.
    let mut h2 = Harness::new(17);
    let r = h2.send(STRANGER, &Request::Reset(keyway_group::Signed::default()));
    assert_eq!(r.rc(), Some(MgmtErr::AccessDenied as u64));
    assert_eq!(r.event, Event::None);
}

/// A reset the window authorizes (a person at the lock, a stock MCUmgr
/// tool) needs no wait after boot, and is allowed once per press: it
/// closes the window. A radio attacker who catches one open window gets
/// one reset, not the 130 that used to push the unlock records out of
/// the audit log (issue 12); each further reset needs another press.
#[test]
fn a_window_reset_is_allowed_once_per_press_and_closes_the_window() {
    let mut h = Harness::new(18);
    let reset = Request::Reset(keyway_group::Signed::default());
    // Right after boot: the press pays for the reset, no minute's wait.
    h.press(Press::Short);
    let r = h.send(STRANGER, &reset);
    assert!(r.is_ok(), "{:?}", r.answer());
    assert_eq!(
        r.event,
        Event::Reset {
            by: Authority::Window
        }
    );
    assert!(
        !h.agent.window_open(h.lock_ms),
        "the reset consumed the window"
    );
    let mut resets = 1;
    for _ in 0..130 {
        h.advance(100);
        let r = h.send(STRANGER, &reset);
        if r.is_ok() {
            resets += 1;
        } else {
            assert_eq!(r.rc(), Some(MgmtErr::AccessDenied as u64));
        }
    }
    assert_eq!(resets, 1, "130 resets in 13 s after one press: one allowed");
    // A person who presses again may reset again, at once.
    h.press(Press::Short);
    assert!(h.send(STRANGER, &reset).is_ok());
    assert!(!h.agent.window_open(h.lock_ms));
}

/// A reset the lock declines (an install its policy postpones: nothing
/// resets) does not consume the window.
#[test]
fn a_declined_window_reset_keeps_the_window() {
    let mut h = Harness::new(19);
    h.device.shell.decline_resets = true;
    h.press(Press::Short);
    let r = h.send(STRANGER, &Request::Reset(keyway_group::Signed::default()));
    assert_eq!(r.rc(), Some(MgmtErr::BadState as u64));
    assert_eq!(r.event, Event::None);
    assert!(h.agent.window_open(h.lock_ms));
    h.device.shell.decline_resets = false;
    assert!(
        h.send(STRANGER, &Request::Reset(keyway_group::Signed::default()))
            .is_ok()
    );
    assert!(!h.agent.window_open(h.lock_ms));
}

/// An owner's resets come through a session from anywhere in radio
/// range of a stolen phone: with the window shut they stay rate-limited,
/// one a minute and the first a minute after boot. With the window open
/// an owner's reset is the window's one reset (it consumes the window):
/// anyone in range could send a plain one then.
#[test]
fn resets_by_an_owner_session_are_rate_limited() {
    let (mut h, mut alice) = Harness::with_alice(20);
    let reset = Request::Reset(keyway_group::Signed::default());
    assert!(!h.agent.window_open(h.lock_ms), "pairing closed the window");
    let r = h.call(&mut alice, &reset).unwrap();
    assert!(
        matches!(r.refusal(), Some(Refusal::RateLimited { .. }))
            || r.rc() == Some(MgmtErr::Busy as u64),
        "the first reset after boot waits a minute: {:?}",
        r.answer()
    );
    h.advance(60_000);
    let r = h.call(&mut alice, &reset).unwrap();
    assert!(r.is_ok(), "{:?}", r.answer());
    assert_eq!(
        r.event,
        Event::Reset {
            by: Authority::Owner(kid(&alice.key))
        }
    );
    let mut resets = 1;
    for _ in 0..130 {
        h.advance(100);
        if h.call(&mut alice, &reset).unwrap().is_ok() {
            resets += 1;
        }
    }
    assert_eq!(resets, 1, "130 owner resets in 13 s: one allowed");
    // In the window: one more, which closes it.
    h.press(Press::Short);
    assert!(h.call(&mut alice, &reset).unwrap().is_ok());
    assert!(!h.agent.window_open(h.lock_ms));
    assert!(!h.call(&mut alice, &reset).unwrap().is_ok());
}

// ----- uploads -------------------------------------------------------------

fn uploads_served(h: &Harness) -> usize {
    h.device
        .shell
        .served
        .iter()
        .filter(|(g, id, _)| (*g, *id) == (1, keyway_smp::img::cmd::UPLOAD))
        .count()
}

#[test]
fn chunk_from_anyone_else_is_refused_and_leaves_the_owners_upload_untouched() {
    static DATA: [u8; 512] = [0x42; 512];
    let (mut h, mut alice) = Harness::with_alice(24);
    // A person is at the lock: the window is open for anyone near it.
    h.press(Press::Short);
    let r = h
        .call(&mut alice, &chunk(0, Some(2048), &DATA, true))
        .unwrap();
    assert!(r.is_ok());
    assert_eq!(uploads_served(&h), 1);
    // The stranger, in the window: a chunk at the offset the lock revealed,
    // a new first chunk (an older image), an erase, with and without "kw".
    for (req, typed) in [
        (chunk(512, None, &DATA, true), true),
        (chunk(512, None, &DATA, false), false),
        (chunk(0, Some(512), &DATA, true), true),
        (
            Request::Erase(keyway_smp::img::Erase {
                slot: None,
                auth: None,
                kw: false,
            }),
            false,
        ),
    ] {
        let r = h.send(STRANGER, &req);
        if typed {
            assert_eq!(r.refusal(), Some(Refusal::UploadBusy), "{req:?}");
        } else {
            assert_eq!(r.rc(), Some(MgmtErr::AccessDenied as u64), "{req:?}");
        }
    }
    // None of them reached the installer.
    assert_eq!(uploads_served(&h), 1);
    assert_eq!(h.device.shell.served.len(), 1);
    // The owner goes on, from another address too (a new socket).
    alice.peer = keyway_agent::limits::PeerId(77);
    for off in [512u64, 1024, 1536] {
        let r = h.call(&mut alice, &chunk(off, None, &DATA, true)).unwrap();
        assert!(r.is_ok(), "{off}");
    }
    assert_eq!(uploads_served(&h), 4);
    // Finished: a new upload may begin (the window authorizes it).
    let r = h.send(STRANGER, &chunk(0, Some(1024), &DATA, true));
    assert!(r.is_ok());
}

/// Two uploaders in the window, by address.
const PEER_A: keyway_agent::limits::PeerId = keyway_agent::limits::PeerId(10);
const PEER_B: keyway_agent::limits::PeerId = keyway_agent::limits::PeerId(11);

/// `peer`'s first chunk of a 4096-byte upload.
fn first_chunk(h: &mut Harness, peer: keyway_agent::limits::PeerId) -> Reply {
    static DATA: [u8; 256] = [0x42; 256];
    h.send(peer, &chunk(0, Some(4096), &DATA, true))
}

/// `peer`'s second chunk.
fn second_chunk(h: &mut Harness, peer: keyway_agent::limits::PeerId) -> Reply {
    static DATA: [u8; 256] = [0x42; 256];
    h.send(peer, &chunk(256, None, &DATA, true))
}

/// `peer`'s second chunk is refused: the upload is bound to someone else.
#[track_caller]
fn assert_busy(h: &mut Harness, peer: keyway_agent::limits::PeerId) {
    assert_eq!(second_chunk(h, peer).refusal(), Some(Refusal::UploadBusy));
}

/// A lock with its window open and an upload begun by [`PEER_A`].
fn upload_begun_by_a(seed: u64) -> Harness {
    let mut h = Harness::in_window(seed);
    assert!(first_chunk(&mut h, PEER_A).is_ok());
    h
}

#[test]
fn an_idle_upload_may_be_replaced_only_from_its_start() {
    let mut h = upload_begun_by_a(25);
    assert_busy(&mut h, PEER_B);
    h.advance(keyway_agent::agent::UPLOAD_IDLE_MS);
    h.press(Press::Short);
    // Idle: still no injection into it, but a new upload may replace it.
    assert_busy(&mut h, PEER_B);
    assert!(first_chunk(&mut h, PEER_B).is_ok());
    assert_busy(&mut h, PEER_A);
}

/// An upload the installer refused (its head, digest or size: the shell
/// dropped it) binds nobody: found by keyway audit against keyway-lock's
/// agent shell, where a refused doctored upload in the window locked the
/// owner's genuine upload out for 30 s (`UploadBusy`).
#[test]
fn a_refused_chunk_ends_the_upload_so_the_next_uploader_is_not_locked_out() {
    let mut h = upload_begun_by_a(26);
    h.device.shell.refuse_chunks = true;
    let r = second_chunk(&mut h, PEER_A);
    assert!(!r.is_ok());
    assert_ne!(r.refusal(), Some(Refusal::UploadBusy));
    h.device.shell.refuse_chunks = false;
    // At once, not after UPLOAD_IDLE_MS.
    assert!(first_chunk(&mut h, PEER_B).is_ok());
    // And the new upload is bound to its uploader.
    assert_busy(&mut h, PEER_A);
}

// ----- denial of service ---------------------------------------------------

#[test]
fn flood_from_one_peer_does_not_stop_the_owner() {
    let (mut h, mut alice) = Harness::with_alice(19);
    let flood: Vec<Vec<u8>> = {
        let (_, msg1) = keyway_channel::ClientHandshake::start(&mut h.rng);
        vec![
            h.frame(&Request::SessionStart(keyway_group::SessionStart {
                msg: &msg1,
            })),
            h.frame(&Request::Echo(keyway_smp::os::Echo { d: "flood" })),
            h.frame(&Request::Sealed(keyway_group::Sealed { msg: &[0; 64] })),
            h.frame(&unlock()),
        ]
    };
    // 2 s at 200 frames a second from the flooder; the owner re-opens her
    // session in the middle of it and sends 10 commands.
    let (mut owner_ok, mut owner_total, mut flood_refused) = (0, 0, 0);
    // Handshakes the flooder made the lock compute (ECDH and a signature:
    // 0.46 s of a 64 MHz Cortex-M4 each, notes/chan.md).
    let mut flood_handshakes = 0;
    let mut session_done = false;
    for tick in 0..400u64 {
        h.advance(5);
        let f = &flood[(tick % 4) as usize];
        let (bytes, _) = h.send_raw(STRANGER, f);
        let reply = Reply {
            bytes,
            event: Event::None,
        };
        if reply.bytes.is_empty() || !reply.is_ok() {
            flood_refused += 1;
        } else if matches!(reply.answer(), Answer::Ok(Response::SessionStart(_))) {
            flood_handshakes += 1;
        }
        if tick == 100 && !session_done {
            h.open_session(&mut alice)
                .expect("a handshake during the flood");
            session_done = true;
        }
        if tick > 100 && tick % 25 == 0 && owner_total < 10 {
            owner_total += 1;
            let req = if owner_total % 2 == 1 {
                unlock()
            } else {
                lock()
            };
            if h.call(&mut alice, &req).is_ok_and(|r| r.is_ok()) {
                owner_ok += 1;
            }
        }
    }
    println!(
        "flood: 400 frames in 2 s from one peer ({flood_refused} refused, \
         {flood_handshakes} of its 100 handshakes computed); owner {owner_ok}/{owner_total}"
    );
    // The per-peer bucket (bursts of 20, then 10 a second) bounds the
    // lock's work for the flooder: at most 40 frames in 2 s get past it,
    // whatever they ask for (its 100 msg1 would cost 46 s of CPU).
    assert!(flood_handshakes <= 40, "{flood_handshakes}");
    assert_eq!(owner_total, 10);
    assert!(owner_ok >= 9, "owner {owner_ok}/10");
    // The flooder held at most one handshake slot.
    assert!(h.agent.sessions(h.lock_ms).1 <= 1);
}

#[test]
fn owners_sealed_burst_is_not_throttled_but_forged_records_are_charged() {
    let (mut h, mut alice) = Harness::with_alice(23);
    // An upload's pace: 400 sealed requests in 2 s, far above the plain
    // per-peer rate (bursts of 20, 10 a second). All run.
    let chunk = [0x5a; 512];
    for i in 0..400u64 {
        h.advance(5);
        let req = Request::Upload(keyway_smp::img::Upload {
            off: i * 512,
            data: &chunk,
            len: (i == 0).then_some(400 * 512),
            sha: None,
            image: None,
            upgrade: None,
            auth: None,
            kw: true,
        });
        let r = h.call(&mut alice, &req).unwrap();
        assert!(r.is_ok(), "chunk {i}: {:?}", r.answer());
    }
    assert_eq!(h.device.shell.served.len(), 400);
    // Forged records are charged: after a burst of them, the same peer's
    // plain requests are throttled.
    for _ in 0..30 {
        h.deliver(STRANGER, &[0u8; 64]);
    }
    let r = h.send(STRANGER, &Request::Echo(keyway_smp::os::Echo { d: "x" }));
    assert_eq!(r.rc(), Some(MgmtErr::Busy as u64), "{:?}", r.answer());
    let r = h.send(STRANGER, &Request::Owners(keyway_group::Signed::default()));
    assert!(matches!(r.refusal(), Some(Refusal::RateLimited { .. })));
}

#[test]
fn handshake_flood_from_many_peers_never_evicts_a_fresh_handshake() {
    let (mut h, mut alice) = Harness::with_alice(20);
    h.advance(200_000); // Alice's first session idles out.
    // Alice starts a handshake; then 40 peers flood msg1.
    let (hs, msg1) = keyway_channel::ClientHandshake::start(&mut h.rng);
    let msg2 = h.session_start(OWNER, &msg1).unwrap();
    let mut accepted = 0;
    for p in 0..40u64 {
        h.advance(5);
        let (_, m1) = keyway_channel::ClientHandshake::start(&mut h.rng);
        let r = h.send(
            keyway_agent::limits::PeerId(1000 + p),
            &Request::SessionStart(keyway_group::SessionStart { msg: &m1 }),
        );
        match r.refusal() {
            None => accepted += 1,
            Some(Refusal::SessionsFull | Refusal::RateLimited { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    // The free slots went to the first flooders; the rest were refused.
    assert_eq!(accepted, SLOTS - 1);
    // Alice's handshake is still there.
    let s = h.finish_handshake(&alice, hs, &msg2, &alice.key);
    alice.session = Some(s.unwrap());
    h.drive(&mut alice, Bolt::Unlocked);
}

#[test]
fn largest_sealed_request_and_answer_fit_one_frame() {
    use keyway_agent::agent::MAX_SEALED_REQUEST;
    let (mut h, mut alice) = Harness::with_alice(21);
    // An echo frame is 14 bytes around its text (header, map, key, head).
    let text = "e".repeat(MAX_SEALED_REQUEST - 14);
    let req = Request::Echo(keyway_smp::os::Echo { d: &text });
    let rec = h.seal(&mut alice, &req);
    let outer = h.deliver(OWNER, &rec);
    assert!(outer.bytes.len() <= keyway_smp::MAX_FRAME);
    let r = h.open(&mut alice, &outer).unwrap();
    match r.answer() {
        Answer::Ok(Response::Echo(e)) => assert_eq!(e.r, text),
        other => panic!("{other:?}"),
    }
    // One byte more does not fit an SMP body: refused as too long.
    let text = "e".repeat(MAX_SEALED_REQUEST - 13);
    let rec = h.seal(
        &mut alice,
        &Request::Echo(keyway_smp::os::Echo { d: &text }),
    );
    let mut f = vec![0u8; keyway_smp::MAX_FRAME + 64];
    let n = keyway_smp::header::frame(
        &mut f,
        keyway_smp::Header::request(
            keyway_smp::Version::V2,
            keyway_smp::Op::Write,
            keyway_smp::group::KEYWAY,
            keyway_group::cmd::SEALED,
            1,
        ),
        |w| {
            w.map(1)?;
            w.text("rec")?;
            w.bytes(&rec)
        },
    )
    .unwrap();
    let (answer, _) = h.send_raw(OWNER, &f[..n]);
    let r = Reply {
        bytes: answer,
        event: Event::None,
    };
    assert_eq!(r.rc(), Some(MgmtErr::MsgSize as u64));
}

#[test]
fn plain_request_with_an_owners_signature_is_not_an_owners() {
    // The old signed requests (`auth`) do not make an owner: only a
    // session does, so a captured signature is worth nothing.
    let (mut h, alice) = Harness::with_alice(22);
    h.press(Press::Short);
    let auth = keyway_smp::auth::Auth {
        key: alice.key.verifying_key().to_bytes(),
        nonce: [1; 16],
        sig: [2; 64],
    };
    let signed: Vec<_> = keyway_smp::samples::requests(Some(auth))
        .into_iter()
        .filter(|r| {
            matches!(
                r,
                Request::Unlock(_) | Request::Status(_) | Request::Consent(_) | Request::Log(_)
            )
        })
        .collect();
    assert_eq!(signed.len(), 4);
    for req in signed {
        assert_eq!(
            h.send(OWNER, &req).refusal(),
            Some(Refusal::SessionRequired),
            "{req:?}"
        );
    }
    assert_eq!(h.device.hw.bolt_moves, 0);
}

// ----- figures -------------------------------------------------------------

#[test]
fn ram_figures() {
    use std::mem::size_of;
    type A<const N: usize> = Agent<harness::Flash, N>;
    // The flash handle is the shell's; on a lock it is a zero-size or
    // pointer-size driver. Subtract it to get the agent's own state.
    let flash = size_of::<harness::Flash>();
    println!(
        "host (64-bit): Agent<_, 4> {} B, Agent<_, 8> {} B (flash handle {flash} B included); \
         without the flash handle, this target: {} B (thumbv7em-none-eabihf: 3,200 B)",
        size_of::<A<4>>(),
        size_of::<A<8>>(),
        keyway_agent::agent::AGENT_RAM_4_SLOTS,
    );
    assert!(size_of::<A<4>>() - flash <= 4 * 1024);
}

#[test]
#[ignore = "prints example frames for FORMAT.md"]
fn print_example_frames() {
    let mut alice = Client::new(0x0a, OWNER);
    let mut h = Harness::in_window(30);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let f = h.frame(&Request::PakeParams);
    println!("PakeParams request: {}", hex(&f));
    let r = h.send(OWNER, &Request::PakeParams);
    println!("PakeParams answer: {}", hex(&r.bytes));
    h.pair(&mut alice, CODE, "Alice").unwrap();
    h.open_session(&mut alice).unwrap();
    let f = h.frame(&Request::Owners(keyway_group::Signed::default()));
    println!("Owners inner request: {}", hex(&f));
    let r = h
        .call(
            &mut alice,
            &Request::Owners(keyway_group::Signed::default()),
        )
        .unwrap();
    println!("Owners inner answer: {}", hex(&r.bytes));
    let f = h.frame(&unpair([0xab; 8]));
    println!("Unpair inner request: {}", hex(&f));
    let rec = h.seal(&mut alice, &unlock());
    let outer = h.frame(&Request::Sealed(keyway_group::Sealed { msg: &rec }));
    println!(
        "Sealed unlock outer request ({} B): {}",
        outer.len(),
        hex(&outer[..16])
    );
    let r = h.send(STRANGER, &Request::Owners(keyway_group::Signed::default()));
    println!("Owners refused (plain): {}", hex(&r.bytes));
}

/// A stock MCUmgr tool uploads in the window as fast as the link allows:
/// the chunks of a peer's own upload in progress are not held to its
/// token bucket (10 a second after a burst of 20), or a 400 KB image in
/// 2 KB chunks would take 20 s of waiting and, in BLE-sized chunks,
/// minutes. Anything else from that peer still is.
#[test]
fn a_peers_own_upload_chunks_are_not_rate_limited() {
    static DATA: [u8; 256] = [0x5a; 256];
    let mut h = Harness::in_window(31);
    let total = 256 * 100;
    for i in 0..100u64 {
        h.advance(1);
        let r = h.send(
            STRANGER,
            &chunk(i * 256, (i == 0).then_some(total), &DATA, true),
        );
        assert!(
            r.is_ok(),
            "chunk {i} refused: {:?} {:?}",
            r.refusal(),
            r.rc()
        );
    }
    assert_eq!(uploads_served(&h), 100);
    // The upload is over: a flood of other requests is limited again.
    let limited = (0..40)
        .map(|_| h.send(STRANGER, &Request::ImageState))
        .filter(|r| {
            matches!(r.refusal(), Some(Refusal::RateLimited { .. }))
                || r.rc() == Some(MgmtErr::Busy as u64)
        })
        .count();
    assert!(limited > 0, "the peer's other requests are still limited");
}
