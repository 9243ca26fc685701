//! Records the client's side
//! of the run for the lock-only build: the host runs both roles with the
//! scenario's seeds (src/scenario.rs) and writes the client's messages and
//! the lock's expected answers to OUT_DIR. The lock-only firmware replays
//! the client's messages and checks that the lock, on the Cortex-M4,
//! produces the same bytes as on the host.
use std::fs;

#[path = "src/scenario.rs"]
#[allow(dead_code)]
mod scenario;

use keyway_channel::SigningKey as KeyPair;
use keyway_channel::handshake::{MSG2_LEN, MSG3_LEN};
use keyway_channel::pairing::{PAKE2_LEN, PAKE3_LEN, PAKE4_LEN};
use keyway_channel::record::MSG4_LEN;
use keyway_channel::{
    ClientHandshake, ClientPairing, GuardConfig, LockPairing, PairingGuard, ResponseStatus,
    SessionTable, SetupCode, StoredVerifier, TableConfig,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use scenario::*;

fn main() {
    let out = keyway_board_build::out_dir();
    println!("cargo:rerun-if-changed=src/scenario.rs");
    println!("cargo:rerun-if-env-changed=KEYWAY_CHANNEL_STACK_BUDGET");

    let mut lock_rng = ChaCha20Rng::seed_from_u64(LOCK_RNG_SEED);
    let mut client_rng = ChaCha20Rng::seed_from_u64(CLIENT_RNG_SEED);
    let device = KeyPair::from_bytes(&DEVICE_SEED);
    let owner = KeyPair::from_bytes(&OWNER_SEED);
    let code = SetupCode::new(CODE).unwrap();
    let verifier = StoredVerifier::derive(&code, &SALT, ITERATIONS);
    let mut guard = PairingGuard::new(GuardConfig::default());
    let w = |name: &str, bytes: &[u8]| fs::write(out.join(name), bytes).unwrap();
    w("verifier.bin", &verifier.to_bytes());

    let mut lock = LockPairing::new();
    let (mut client, pake1) =
        ClientPairing::start(&code, &verifier.params(), &mut client_rng).unwrap();
    let mut pake2 = [0u8; PAKE2_LEN];
    lock.pake1(&verifier, &mut guard, 1, &mut lock_rng, &pake1, &mut pake2)
        .unwrap();
    let mut pake3 = [0u8; PAKE3_LEN];
    client
        .pake2(&pake2, &owner.verifying_key().to_bytes(), NAME, &mut pake3)
        .unwrap();
    let mut pake4 = [0u8; PAKE4_LEN];
    lock.pake3(
        &mut guard,
        &pake3,
        &device.verifying_key().to_bytes(),
        &mut pake4,
    )
    .unwrap();
    let paired = client.pake4(&pake4).unwrap();
    w("pake1.bin", &pake1);
    w("pake2.bin", &pake2);
    w("pake3.bin", &pake3);
    w("pake4.bin", &pake4);

    let mut table: SessionTable<4> = SessionTable::new(TableConfig::default());
    let (hs, msg1) = ClientHandshake::start(&mut client_rng);
    let mut msg2 = [0u8; MSG2_LEN];
    table
        .handshake1(LOCK_NOW_MS, &mut lock_rng, &device, &msg1, &mut msg2)
        .unwrap();
    let mut msg3 = [0u8; MSG3_LEN];
    let mut session = hs
        .msg2(&msg2, &paired.device_public_key, &owner, &mut msg3)
        .unwrap();
    let mut msg4 = [0u8; MSG4_LEN];
    let kid = keyway_channel::key_id(&owner.verifying_key().to_bytes());
    let pk = owner.verifying_key().to_bytes();
    table
        .handshake3(LOCK_NOW_MS, &msg3, |k| (*k == kid).then_some(pk), &mut msg4)
        .unwrap();
    w("msg1.bin", &msg1);
    w("msg2.bin", &msg2);
    w("msg3.bin", &msg3);
    w("msg4.bin", &msg4);
    session.open_response(0, &mut msg4.clone()).unwrap();

    let mut req = [0u8; 128];
    let (_, n) = session
        .seal_request(CLIENT_NOW_MS, REQUEST, &mut req)
        .unwrap();
    w("request.bin", &req[..n]);
    let mut buf = req;
    let opened = table
        .open_request(LOCK_NOW_MS + 100, &mut buf[..n])
        .unwrap();
    let mut answer = b"ok:".to_vec();
    answer.extend_from_slice(&buf[opened.payload.clone()]);
    let mut resp = [0u8; 128];
    let m = table
        .seal_response(
            LOCK_NOW_MS + 100,
            opened.session,
            opened.counter,
            ResponseStatus::Ok,
            &answer,
            &mut resp,
        )
        .unwrap();
    w("response.bin", &resp[..m]);
    session
        .open_response(CLIENT_NOW_MS, &mut resp[..m])
        .unwrap();
}
