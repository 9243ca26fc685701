//! Records the client's side
//! of the run for the lock-only build: the host runs both roles with the
//! scenario's seeds (src/scenario.rs) and writes the client's messages and
//! the lock's expected answers to OUT_DIR. The lock-only firmware replays
//! the client's messages and checks that the lock, on the Cortex-M4,
//! produces the same bytes as on the host.
#[path = "src/scenario.rs"]
#[allow(dead_code)]
mod scenario;

use keyway_board_build::channel::{Handshake, LockSide, handshake, pair};
use keyway_channel::SigningKey as KeyPair;
use keyway_channel::{ResponseStatus, SessionTable, SetupCode, StoredVerifier, TableConfig};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use scenario::*;

fn main() {
    println!("cargo:rerun-if-changed=src/scenario.rs");
    println!("cargo:rerun-if-env-changed=KEYWAY_CHANNEL_STACK_BUDGET");

    let mut lock_rng = ChaCha20Rng::seed_from_u64(LOCK_RNG_SEED);
    let mut client_rng = ChaCha20Rng::seed_from_u64(CLIENT_RNG_SEED);
    let device = KeyPair::from_bytes(&DEVICE_SEED);
    let owner = KeyPair::from_bytes(&OWNER_SEED);
    let code = SetupCode::new(CODE).unwrap();
    let verifier = StoredVerifier::derive(&code, &SALT, ITERATIONS);
    let rec = keyway_board_build::Recorder::default();
    let w = |file: &str, bytes: &[u8]| rec.write(file, bytes);
    w("verifier.bin", &verifier.to_bytes());

    let mut lock = LockSide::new(&verifier, &device, &mut lock_rng);
    let p = pair(&mut lock, &code, &mut client_rng, &owner, NAME);
    w("pake1.bin", &p.pake1);
    w("pake2.bin", &p.pake2);
    w("pake3.bin", &p.pake3);
    w("pake4.bin", &p.pake4);

    let mut table: SessionTable<4> = SessionTable::new(TableConfig::default());
    let Handshake {
        msg1,
        msg2,
        msg3,
        msg4,
        mut session,
    } = handshake(
        &mut table,
        LOCK_NOW_MS,
        &mut lock_rng,
        &mut client_rng,
        &device,
        &owner,
        &p.paired.device_public_key,
    );
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
    rec.finish();
}
