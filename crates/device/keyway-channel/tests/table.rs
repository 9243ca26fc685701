//! The lock's session table under a flood of handshakes.

mod util;

use keyway_channel::handshake::MSG2_LEN;
use keyway_channel::{ClientHandshake, Error};
use util::{Pair, SLOTS};

/// An attacker's msg1, answered by the lock (or refused).
fn flood_one(p: &mut Pair) -> Result<u32, Error> {
    let (_hs, msg1) = ClientHandshake::start(&mut p.rng);
    let mut msg2 = [0u8; MSG2_LEN];
    p.lock_handshake1(&msg1, &mut msg2)
}

#[test]
fn handshake_flood_does_not_evict_established_session_or_fresh_handshake() {
    let (mut p, mut owner) = Pair::in_session(30);
    // The flood fills every other slot with handshakes that never finish.
    let mut accepted = 0;
    let mut busy = 0;
    for _ in 0..200 {
        match flood_one(&mut p) {
            Ok(_) => accepted += 1,
            Err(Error::Busy) => busy += 1,
            Err(e) => panic!("{e:?}"),
        }
        p.advance(5); // 200 handshakes a second
    }
    println!("flood: {accepted} handshakes accepted, {busy} refused Busy");
    assert_eq!(accepted, SLOTS - 1, "only the free slots are taken");
    assert_eq!(busy, 200 - (SLOTS - 1));
    // The owner's established session is untouched.
    assert_eq!(p.round_trip(&mut owner, b"unlock").unwrap(), b"ok:unlock");
    assert_eq!(p.lock.table.sessions(p.lock.now_ms), 1);
    assert_eq!(p.lock.table.handshakes(p.lock.now_ms), SLOTS - 1);
}

#[test]
fn handshake_flood_does_not_evict_an_owners_fresh_handshake() {
    let mut p = Pair::paired(31);
    // The owner's handshake is in flight (msg2 sent, msg3 not yet back).
    let (hs, msg1) = ClientHandshake::start(&mut p.rng);
    let mut msg2 = [0u8; MSG2_LEN];
    p.lock_handshake1(&msg1, &mut msg2).unwrap();
    // A flood in the meantime.
    for _ in 0..100 {
        let _ = flood_one(&mut p);
        p.advance(5);
    }
    // The owner's msg3 still finds its handshake (0.5 s later, inside 10 s).
    let owner = p.client.owner.clone();
    let mut session = p.finish_handshake(hs, &msg2, &owner).unwrap();
    assert_eq!(p.round_trip(&mut session, b"unlock").unwrap(), b"ok:unlock");
}

#[test]
fn expired_handshakes_are_evicted_so_the_owner_gets_in_after_the_flood() {
    let mut p = Pair::paired(32);
    for _ in 0..SLOTS {
        flood_one(&mut p).unwrap();
    }
    assert_eq!(flood_one(&mut p), Err(Error::Busy));
    assert_eq!(p.handshake().err(), Some(Error::Busy));
    // Ten seconds on, the flood's handshakes have expired.
    p.advance(10_001);
    let mut s = p.handshake().unwrap();
    assert_eq!(p.round_trip(&mut s, b"status").unwrap(), b"ok:status");
}

#[test]
fn idle_sessions_are_evicted_but_active_ones_are_not() {
    let (mut p, mut active) = Pair::in_session(33);
    let _idle = p.handshake().unwrap();
    for _ in 0..13 {
        p.advance(10_000);
        p.round_trip(&mut active, b"status").unwrap();
    }
    // 130 s on: the idle session expired, the active one did not. A flood
    // may take the idle one's slot, never the active one's.
    let mut taken = 0;
    while flood_one(&mut p).is_ok() {
        taken += 1;
    }
    assert_eq!(taken, SLOTS - 1);
    assert_eq!(p.round_trip(&mut active, b"unlock").unwrap(), b"ok:unlock");
}

#[test]
fn stale_session_id_misses_after_slot_reuse() {
    let (mut p, mut old) = Pair::in_session(34);
    p.lock.table.close(old.session_id());
    let _new = p.handshake().unwrap();
    let mut r = p.request(&mut old, b"unlock");
    assert_eq!(p.lock_serve(&mut r).0, Err(Error::UnknownSession));
}

/// A reboot empties the table. The first session after it must not get
/// the id an old client still holds: that client's next record has to miss
/// with `UnknownSession` (so it opens a new session), not reach another
/// session and come back `RecordRefused` (so it gives up). The slot's
/// generation starts from randomness, not from 0, at every boot.
#[test]
fn a_session_id_from_before_a_reboot_misses_after_it() {
    use keyway_channel::TableConfig;
    for seed in 0..64 {
        let mut p = Pair::paired(500 + seed);
        let mut old = p.handshake().unwrap();
        // The lock reboots: a fresh table; someone else's session first.
        p.lock.table = keyway_channel::SessionTable::new(TableConfig::default());
        let new = p.handshake().unwrap();
        assert_ne!(new.session_id(), old.session_id(), "seed {seed}");
        let mut r = p.request(&mut old, b"unlock");
        assert_eq!(
            p.lock_serve(&mut r).0,
            Err(Error::UnknownSession),
            "seed {seed}"
        );
    }
}

/// An owner's client that opens a session per command (the CLI does)
/// must not fill the table with its own live sessions: a new session of
/// an owner closes that owner's least recently used one once it holds
/// [`keyway_channel::MAX_SESSIONS_PER_OWNER`], so ten quick commands in a
/// row never meet `Busy`, and the owner's two newest sessions (two
/// clients at once: an upload and an unlock) both keep working.
#[test]
fn an_owners_new_sessions_replace_its_oldest_not_fill_the_table() {
    let mut p = Pair::paired(31);
    let mut kept = Vec::new();
    for i in 0..10 {
        p.advance(100);
        let mut s = p
            .handshake()
            .unwrap_or_else(|e| panic!("handshake {i}: {e:?}"));
        assert_eq!(p.round_trip(&mut s, b"unlock").unwrap(), b"ok:unlock");
        kept.push(s);
    }
    assert!(
        p.lock.table.sessions(p.lock.now_ms) <= keyway_channel::MAX_SESSIONS_PER_OWNER,
        "the owner holds {} sessions",
        p.lock.table.sessions(p.lock.now_ms)
    );
    // The two newest both still work; the oldest was closed.
    let mut newest = kept.pop().unwrap();
    let mut second = kept.pop().unwrap();
    assert_eq!(p.round_trip(&mut second, b"lock").unwrap(), b"ok:lock");
    assert_eq!(p.round_trip(&mut newest, b"lock").unwrap(), b"ok:lock");
    assert!(p.round_trip(&mut kept[0], b"lock").is_err());
    // The slots the owner does not use are free for others.
    assert_eq!(
        p.lock.table.sessions(p.lock.now_ms) + p.lock.table.handshakes(p.lock.now_ms),
        keyway_channel::MAX_SESSIONS_PER_OWNER
    );
    assert!(flood_one(&mut p).is_ok(), "a free slot remains for others");
}
