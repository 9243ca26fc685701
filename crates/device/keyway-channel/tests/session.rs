//! Sessions and records, one test per attack from radio range: probing
//! which keys are paired, replaying and holding back requests, forging,
//! altering, replaying and mismatching answers, posing as the lock.

mod util;

use keyway_channel::handshake::{MSG2_LEN, MSG3_LEN};
use keyway_channel::{ClientHandshake, Error, key_id};
use util::{Pair, flipped, keypair};

#[test]
fn session_handshake_and_sealed_round_trip() {
    let (mut p, mut s) = Pair::in_session(10);
    assert!(p.lock.table.is_session(s.session_id(), p.lock.now_ms));
    // msg4 synced the client to the lock's clock.
    assert_eq!(s.lock_time_estimate(p.client.now_ms), p.lock.now_ms);
    assert_eq!(p.round_trip(&mut s, b"unlock").unwrap(), b"ok:unlock");
    p.advance(1_000);
    assert_eq!(p.round_trip(&mut s, b"status").unwrap(), b"ok:status");
}

#[test]
fn request_payload_is_not_readable_on_the_air() {
    let (mut p, mut s) = Pair::in_session(11);
    let req = p.request(&mut s, b"unlock the front door");
    assert!(!req.windows(6).any(|w| w == b"unlock"));
}

#[test]
fn unpaired_key_and_bad_signature_get_identical_refusal() {
    let mut p = Pair::paired(12);
    let stranger = keypair(0x57);
    let lock_key = p.client.lock_key.unwrap();

    // 1. A key the lock never paired, with a valid signature by that key.
    let unpaired = p.handshake_as(&stranger).unwrap_err();

    // 2. The paired owner's key id, but a signature by another key: the
    //    client side signs with `stranger` while naming the owner's kid.
    //    Built by hand: a signer naming the owner's key, signing with another.
    let forger = keyway_channel::testing::Forger {
        claimed: p.client.owner.verifying_key().to_bytes(),
        key: stranger.clone(),
    };
    let (hs, msg1) = ClientHandshake::start(&mut p.rng);
    let mut msg2 = [0u8; MSG2_LEN];
    p.lock_handshake1(&msg1, &mut msg2).unwrap();
    let mut msg3 = [0u8; MSG3_LEN];
    hs.msg2(&msg2, &lock_key, &forger, &mut msg3).unwrap();
    let bad_signature = p.lock_handshake3(&msg3).unwrap_err();

    assert_eq!(unpaired, Error::Refused);
    assert_eq!(bad_signature, Error::Refused);
    assert_eq!(
        unpaired, bad_signature,
        "the refusal must not tell them apart"
    );
    // Neither left a session behind; the owner still gets in.
    assert_eq!(p.lock.table.sessions(p.lock.now_ms), 0);
    assert!(p.handshake().is_ok());
}

#[test]
fn impostor_lock_is_refused_by_the_client() {
    // Someone in radio range answers msg1 with its own device key.
    let mut p = Pair::paired(13);
    let (hs, msg1) = ClientHandshake::start(&mut p.rng);
    let impostor = keypair(0xee);
    let mut msg2 = [0u8; MSG2_LEN];
    p.lock
        .table
        .handshake1(p.lock.now_ms, &mut p.rng, &impostor, &msg1, &mut msg2)
        .unwrap();
    // The client refuses msg2 before it writes a msg3.
    let owner = p.client.owner.clone();
    let r = p.finish_handshake(hs, &msg2, &owner);
    assert_eq!(r.err(), Some(Error::LockNotAuthenticated));
}

#[test]
fn altered_msg2_is_refused_by_the_client() {
    let mut p = Pair::paired(14);
    for at in [0usize, 10, 80, MSG2_LEN - 1] {
        let (hs, msg1) = ClientHandshake::start(&mut p.rng);
        let mut msg2 = [0u8; MSG2_LEN];
        p.lock_handshake1(&msg1, &mut msg2).unwrap();
        msg2[at] ^= 0x01;
        let mut msg3 = [0u8; MSG3_LEN];
        let r = hs.msg2(
            &msg2,
            &p.client.lock_key.unwrap(),
            &p.client.owner,
            &mut msg3,
        );
        assert!(r.is_err(), "flip at {at} accepted");
    }
}

#[test]
fn replayed_request_is_refused() {
    let (mut p, mut s) = Pair::in_session(15);
    let mut req = p.request(&mut s, b"unlock");
    let recorded = req.clone();
    let (served, mut resp) = p.lock_serve(&mut req);
    assert_eq!(served.unwrap(), b"unlock");
    s.open_response(p.client.now_ms, &mut resp).unwrap();
    // The attacker plays the recorded request again.
    let mut again = recorded.clone();
    let (served, resp) = p.lock_serve(&mut again);
    assert_eq!(
        served,
        Err(Error::Replay {
            counter: 1,
            last: 1
        })
    );
    assert!(resp.is_empty(), "no answer to a replay");
    // An older one after a newer one is a replay too.
    let mut r2 = p.request(&mut s, b"lock");
    let mut r3 = p.request(&mut s, b"status");
    assert!(p.lock_serve(&mut r3).0.is_ok());
    assert_eq!(
        p.lock_serve(&mut r2).0,
        Err(Error::Replay {
            counter: 2,
            last: 3
        })
    );
}

#[test]
fn held_back_request_played_20s_later_is_refused_as_stale() {
    let (mut p, mut s) = Pair::in_session(16);
    // The man in the middle swallows the unlock and plays it 20 s later.
    let mut held = p.request(&mut s, b"unlock");
    p.advance(20_000);
    let (served, resp) = p.lock_serve(&mut held);
    assert_eq!(
        served,
        Err(Error::Stale {
            echoed_ms: p.lock.now_ms - 20_000,
            now_ms: p.lock.now_ms
        })
    );
    // The lock's authenticated Stale answer re-syncs the client ...
    assert_eq!(p.open(&mut s, &resp), Err(Error::StaleAtLock));
    assert_eq!(s.lock_time_estimate(p.client.now_ms), p.lock.now_ms);
    // ... which sends a NEW request, accepted.
    assert_eq!(p.round_trip(&mut s, b"unlock").unwrap(), b"ok:unlock");
}

#[test]
fn request_within_freshness_after_idle_is_accepted() {
    // The estimate tracks the lock's clock: idleness alone is not staleness.
    let (mut p, mut s) = Pair::in_session(17);
    p.advance(60_000);
    assert_eq!(p.round_trip(&mut s, b"status").unwrap(), b"ok:status");
    // A request delayed 4.9 s on the air is still fresh; 5.1 s is not.
    let mut r = p.request(&mut s, b"a");
    p.advance(4_900);
    assert!(p.lock_serve(&mut r).0.is_ok());
    let mut r = p.request(&mut s, b"b");
    p.advance(5_100);
    assert!(matches!(p.lock_serve(&mut r).0, Err(Error::Stale { .. })));
}

#[test]
fn forged_response_is_refused_at_the_client() {
    let (mut p, mut s) = Pair::in_session(18);
    let real = p.answer(&mut s, b"lock");
    // "bolt locked", made up by the attacker with the right framing.
    let mut forged = real.clone();
    for b in &mut forged[4..] {
        *b = 0x42;
    }
    assert_eq!(p.open(&mut s, &forged), Err(Error::Forged));
    // The forgery did not consume the wait: the real answer still opens.
    assert_eq!(p.open(&mut s, &real).unwrap(), b"ok:lock");
}

#[test]
fn altered_response_is_refused_at_the_client() {
    let (mut p, mut s) = Pair::in_session(19);
    let real = p.answer(&mut s, b"lock");
    for (at, mut altered) in flipped(&real, 0, 0x80) {
        assert!(
            s.open_response(p.client.now_ms, &mut altered).is_err(),
            "flip at byte {at} accepted"
        );
    }
    let mut truncated = real[..real.len() - 1].to_vec();
    assert!(s.open_response(p.client.now_ms, &mut truncated).is_err());
}

#[test]
fn replayed_response_is_refused_at_the_client() {
    // The attacker records "ok" to an earlier request and plays it as the
    // answer to a later one (which the lock never executed).
    let (mut p, mut s) = Pair::in_session(20);
    let old_answer = p.answer(&mut s, b"lock");
    p.open(&mut s, &old_answer).unwrap();
    let _swallowed = p.request(&mut s, b"lock");
    assert_eq!(p.open(&mut s, &old_answer), Err(Error::Forged));
}

#[test]
fn mismatched_response_from_other_session_is_refused_at_the_client() {
    // Two sessions of the same owner: the answer in one is no answer in the
    // other, even at the same counter.
    let (mut p, mut a) = Pair::in_session(21);
    let mut b = p.handshake().unwrap();
    let mut ra = p.request(&mut a, b"unlock");
    let _rb = p.request(&mut b, b"status");
    let (_, answer_a) = p.lock_serve(&mut ra);
    assert_eq!(p.open(&mut b, &answer_a), Err(Error::Forged));
    // Even with the session id rewritten to b's.
    let mut rewritten = answer_a;
    rewritten[..4].copy_from_slice(&b.session_id().to_le_bytes());
    assert_eq!(p.open(&mut b, &rewritten), Err(Error::Forged));
}

#[test]
fn response_without_request_is_refused_at_the_client() {
    let (p, mut s) = Pair::in_session(22);
    assert_eq!(p.open(&mut s, &[0; 40]), Err(Error::NoRequestOutstanding));
}

#[test]
fn forged_and_altered_requests_are_refused_by_the_lock() {
    let (mut p, mut s) = Pair::in_session(23);
    let req = p.request(&mut s, b"unlock");
    for (at, mut altered) in flipped(&req, 4, 0x01) {
        let (served, resp) = p.lock_serve(&mut altered);
        assert!(served.is_err(), "flip at {at} accepted");
        assert!(resp.is_empty());
    }
    // The genuine request still goes through afterwards.
    let mut genuine = req;
    assert!(p.lock_serve(&mut genuine).0.is_ok());
}

#[test]
fn idle_session_expires() {
    let (mut p, mut s) = Pair::in_session(24);
    p.advance(120_001);
    let mut r = p.request(&mut s, b"status");
    assert_eq!(p.lock_serve(&mut r).0, Err(Error::UnknownSession));
    assert!(p.handshake().is_ok(), "a new handshake opens a new session");
}

#[test]
fn unpaired_owner_sessions_are_closed() {
    let (mut p, mut s) = Pair::in_session(25);
    let kid = key_id(&p.client.owner.verifying_key().to_bytes());
    p.lock.table.close_owner(&kid);
    let mut r = p.request(&mut s, b"status");
    assert_eq!(p.lock_serve(&mut r).0, Err(Error::UnknownSession));
}

/// Version 1 of the handshake ran on P-256 (`msg1` = 0x01 || a 65-byte
/// SEC1 key). A version-2 lock refuses such a `msg1` by its version byte,
/// whatever its length, and a `msg1` carrying a key of small order (the
/// all-zero X25519 secret) as an invalid point; neither takes a slot.
#[test]
fn p256_msg1_gets_a_typed_refusal() {
    let mut p = Pair::paired(21);
    let mut old = [0x04u8; 66];
    old[0] = 1;
    let mut msg2 = [0u8; MSG2_LEN];
    let now = p.lock.now_ms;
    assert_eq!(
        p.lock
            .table
            .handshake1(now, &mut p.rng, &p.lock.device, &old, &mut msg2)
            .unwrap_err(),
        Error::Unsupported(1)
    );
    // u = 1: order 4 on the Montgomery curve; the shared secret is zero.
    let mut small = [0u8; keyway_channel::handshake::MSG1_LEN];
    small[0] = keyway_channel::handshake::VERSION;
    small[1] = 1;
    assert_eq!(
        p.lock
            .table
            .handshake1(now, &mut p.rng, &p.lock.device, &small, &mut msg2)
            .unwrap_err(),
        Error::InvalidPoint
    );
    assert_eq!(p.lock.table.sessions(now), 0);
    assert!(p.handshake().is_ok());
}
