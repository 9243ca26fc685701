//! Arbitrary bytes into every receive function of both roles: never a
//! panic, always a typed result. Each property also runs on mutations of
//! genuine messages (one byte changed, or truncated/extended), which reach
//! further than random bytes.

mod util;

use std::sync::atomic::{AtomicUsize, Ordering};

use keyway_channel::handshake::{MSG2_LEN, MSG3_LEN};
use keyway_channel::pairing::{PAKE2_LEN, PAKE3_LEN, PAKE4_LEN};
use keyway_channel::record::MSG4_LEN;
use keyway_channel::{ClientHandshake, ClientPairing, SetupCode, StoredVerifier};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use util::{CODE, Pair};

/// Genuine `msg` with an edit: byte `at` xored with `x`, then resized.
fn mutate(msg: &[u8], at: usize, x: u8, len_delta: i8) -> Vec<u8> {
    let mut m = msg.to_vec();
    if !m.is_empty() {
        let i = at % m.len();
        m[i] ^= x;
    }
    let len = (m.len() as isize + len_delta as isize).max(0) as usize;
    m.resize(len, 0xa5);
    m
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..200)
}

const CASES: u32 = 48;

/// Runs `property` on `CASES` generated inputs; prints how many ran.
fn sweep(name: &str, property: fn(Vec<u8>, usize, u8, i8, u64)) {
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        ..Config::default()
    });
    let runs = AtomicUsize::new(0);
    runner
        .run(
            &(bytes(), any::<usize>(), any::<u8>(), -3i8..3, any::<u64>()),
            |(junk, at, x, d, seed)| {
                runs.fetch_add(1, Ordering::Relaxed);
                property(junk, at, x, d, seed);
                Ok(())
            },
        )
        .unwrap();
    println!(
        "{name}: {} scenarios, no panic",
        runs.load(Ordering::Relaxed)
    );
}

#[test]
fn pairing_receivers_never_panic_on_arbitrary_bytes() {
    sweep("pairing receivers", pairing_property);
}

#[test]
fn session_receivers_never_panic_on_arbitrary_bytes() {
    sweep("session receivers", session_property);
}

fn pairing_property(junk: Vec<u8>, at: usize, x: u8, d: i8, seed: u64) {
    let mut p = Pair::new(seed);
    let code = SetupCode::new(CODE).unwrap();
    let _ = StoredVerifier::from_bytes(&junk);
    let _ = SetupCode::parse(&String::from_utf8_lossy(&junk));
    let _ = ClientPairing::start(&code, &junk, &mut p.rng);
    let _ = ClientPairing::start(
        &code,
        &mutate(&p.lock.verifier.params(), at, x, 0),
        &mut p.rng,
    );

    // Lock: Pake1 junk and mutated, then Pake3 junk and mutated.
    let mut pake2 = [0u8; PAKE2_LEN];
    let params = p.lock.verifier.params();
    let (mut client, pake1) = ClientPairing::start(&code, &params, &mut p.rng).unwrap();
    let mut pake4 = [0u8; PAKE4_LEN];
    for m in [junk.clone(), mutate(&pake1, at, x, d)] {
        let _ = p.lock_pake1(&m, &mut pake2);
        let _ = p.lock_pake3(&junk, &mut pake4);
        p.lock.guard.reopen();
    }
    p.lock_pake1(&pake1, &mut pake2).unwrap();
    // Client: Pake2 mutated or junk.
    let mut pake3 = [0u8; PAKE3_LEN];
    let _ = ClientPairing::start(&code, &params, &mut p.rng)
        .unwrap()
        .0
        .pake2(
            &junk,
            &p.client.owner.verifying_key().to_bytes(),
            "a",
            &mut pake3,
        );
    let _ = ClientPairing::start(&code, &params, &mut p.rng)
        .unwrap()
        .0
        .pake2(
            &mutate(&pake2, at, x, d),
            &p.client.owner.verifying_key().to_bytes(),
            "a",
            &mut pake3,
        );
    client
        .pake2(
            &pake2,
            &p.client.owner.verifying_key().to_bytes(),
            "a",
            &mut pake3,
        )
        .unwrap();
    let _ = p.lock_pake3(&mutate(&pake3, at, x, d), &mut pake4);
    let _ = client.pake4(&junk);
    let _ = client.pake4(&mutate(&pake4, at, x, d));
}

fn session_property(junk: Vec<u8>, at: usize, x: u8, d: i8, seed: u64) {
    let mut p = Pair::paired(seed);
    let lock_key = p.client.lock_key.unwrap();
    let now = p.lock.now_ms;
    let owners = p.lock.owners.clone();
    let lookup = |kid: &[u8; 8]| owners.iter().find(|(k, _)| k == kid).map(|(_, pk)| *pk);

    // msg1 junk / mutated.
    let (hs, msg1) = ClientHandshake::start(&mut p.rng);
    let mut msg2 = [0u8; MSG2_LEN];
    for m in [junk.clone(), mutate(&msg1, at, x, d)] {
        if let Ok(sid) = p
            .lock
            .table
            .handshake1(now, &mut p.rng, &p.lock.device, &m, &mut msg2)
        {
            p.lock.table.close(sid);
        }
    }
    // msg2 junk / mutated at the client.
    p.lock
        .table
        .handshake1(now, &mut p.rng, &p.lock.device, &msg1, &mut msg2)
        .unwrap();
    let mut msg3 = [0u8; MSG3_LEN];
    let _ = ClientHandshake::start(&mut p.rng)
        .0
        .msg2(&junk, &lock_key, &p.client.owner, &mut msg3);
    let _ = ClientHandshake::start(&mut p.rng).0.msg2(
        &mutate(&msg2, at, x, d),
        &lock_key,
        &p.client.owner,
        &mut msg3,
    );
    let mut session = hs
        .msg2(&msg2, &lock_key, &p.client.owner, &mut msg3)
        .unwrap();
    // msg3 junk / mutated at the lock (a refused msg3 frees the slot,
    // so the genuine one then finds no handshake: also a typed error).
    let mut msg4 = [0u8; MSG4_LEN];
    let _ = p.lock.table.handshake3(now, &junk, lookup, &mut msg4);
    let _ = p
        .lock
        .table
        .handshake3(now, &mutate(&msg3, at, x, d), lookup, &mut msg4);
    let mut s = p.handshake().unwrap();
    // Requests: junk, junk with a live session id, mutated.
    let mut j = junk.clone();
    let _ = p.lock.table.open_request(now, &mut j);
    let mut j = junk.clone();
    if j.len() >= 4 {
        j[..4].copy_from_slice(&s.session_id().to_le_bytes());
    }
    let _ = p.lock.table.open_request(now, &mut j);
    let req = p.request(&mut s, b"status");
    let mut m = mutate(&req, at, x, d);
    let _ = p.lock.table.open_request(now, &mut m);
    // Responses at the client: junk and mutated.
    let mut j = junk.clone();
    let _ = session.open_response(p.client.now_ms, &mut j);
    let mut r = req.clone();
    let (_, resp) = p.lock_serve(&mut r);
    let mut m = mutate(&resp, at, x, d);
    let _ = s.open_response(p.client.now_ms, &mut m);
}
