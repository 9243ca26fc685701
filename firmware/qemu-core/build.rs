//! Copies in the fixtures
//! (scripts/qemu-core.sh makes them with the `keyway` CLI and passes their
//! folder in KEYWAY_CORE_FIXTURES), and records the owner's client's side
//! of the session on the host with the scenario's seeds (src/scenario.rs):
//!
//! * pairing: the verifier the lock is provisioned with, Pake1 and Pake3
//!   as SMP request frames (`pake1.frame`, ...; and the lock's Pake2 and
//!   Pake4 as the host computes them);
//! * a session handshake: msg1 and msg3 as SMP frames (and the lock's
//!   msg2 and msg4);
//! * session 1: the signed update (v2.suit) as SMP image-upload request
//!   frames of UPLOAD_CHUNK bytes, a release-notes request and a consent
//!   request, each sealed as a session record in an SMP `sealed` frame
//!   (`session1.bin`; the plain frames in `session1-plain.bin`);
//! * after the lock's reboot, a second handshake and session 2: log
//!   export requests (`session2.bin`, `session2-plain.bin`).
//!
//! The firmware replays the client's frames into the agent and checks
//! that the lock, on the Cortex-M4, answers the handshakes with the
//! host's bytes.
use std::fs;

#[path = "src/flash_map.rs"]
#[allow(dead_code)]
mod flash_map;
#[path = "../keyway-board/src/ram_flash.rs"]
#[allow(dead_code)]
mod ram_flash;
#[path = "src/scenario.rs"]
#[allow(dead_code)]
mod scenario;

use chacha20::ChaCha20Rng;
use chacha20::rand_core::SeedableRng;
use keyway_board_build::channel::{LockSide, pair};
use keyway_channel::SigningKey as KeyPair;
use keyway_channel::pairing::{PAKE2_LEN, PAKE3_LEN, PAKE4_LEN};
use keyway_channel::{
    ClientPairing, ClientSession, SessionTable, SetupCode, StoredVerifier, TableConfig,
};
use keyway_smp::{MAX_FRAME, Request, Version, img, keyway_group};
use keyway_suit::DeviceIdentity;
use scenario::*;
use sha2::{Digest, Sha256};

/// The fixtures scripts/qemu-core.sh makes, and their statics.
const FIXTURES: &[(&str, &str)] = &[
    ("DEVICE_SEED", "device.seed"),
    ("ROOT_KEY", "root.pub"),
    ("VENDOR_ID", "vendor-id.bin"),
    ("CLASS_ID", "class-id.bin"),
    ("V1", "v1.suit"),
    ("V2", "v2.suit"),
];

fn main() {
    keyway_board_build::rerun_on_files(&["src/scenario.rs", "src/flash_map.rs"]);
    let rec = keyway_board_build::Recorder::default();
    let dir = rec.fixtures("KEYWAY_CORE_FIXTURES", "scripts/qemu-core.sh", FIXTURES);
    let update = fs::read(dir.join("v2.suit")).unwrap();
    let w = |file: &str, bytes: &[u8]| rec.write(file, bytes);

    let mut lock_rng = ChaCha20Rng::seed_from_u64(LOCK_RNG_SEED);
    let mut client_rng = ChaCha20Rng::seed_from_u64(CLIENT_RNG_SEED);
    let seed: [u8; 32] = fs::read(dir.join("device.seed"))
        .unwrap()
        .try_into()
        .unwrap();
    let device = KeyPair::from_bytes(&seed);
    let owner = KeyPair::from_bytes(&OWNER_SEED);
    let code = SetupCode::new(CODE).unwrap();
    let verifier = StoredVerifier::derive(&code, &SALT, ITERATIONS);
    w("verifier.bin", &verifier.to_bytes());
    let v1 = fs::read(dir.join("v1.suit")).unwrap();
    let root: [u8; 32] = fs::read(dir.join("root.pub")).unwrap().try_into().unwrap();
    let identity = DeviceIdentity::new(
        fs::read(dir.join("vendor-id.bin"))
            .unwrap()
            .try_into()
            .unwrap(),
        fs::read(dir.join("class-id.bin"))
            .unwrap()
            .try_into()
            .unwrap(),
    );
    w("factory.flash", &factory(&verifier, &v1, &root, identity));

    // Pairing (the lock's side run too, for its messages). First someone
    // with a wrong code (its own RNG): Pake1, then a Pake3 it cannot make
    // right (it cannot open Pake2's confirmation: garbage in its place).
    let mut lock = LockSide::new(&verifier, &device, &mut lock_rng);
    let wrong = SetupCode::new(WRONG_CODE).unwrap();
    let mut wrong_rng = ChaCha20Rng::seed_from_u64(WRONG_RNG_SEED);
    let (mut attacker, pake1w) =
        ClientPairing::start(&wrong, &verifier.params(), &mut wrong_rng).unwrap();
    let mut pake2w = [0u8; PAKE2_LEN];
    lock.pairing
        .pake1(
            &verifier,
            &mut lock.guard,
            1,
            lock.rng,
            &pake1w,
            &mut pake2w,
        )
        .unwrap();
    let mut scratch = [0u8; PAKE3_LEN];
    assert!(
        attacker
            .pake2(
                &pake2w,
                &owner.verifying_key().to_bytes(),
                NAME,
                &mut scratch
            )
            .is_err()
    );
    let pake3w = [WRONG_PAKE3_BYTE; PAKE3_LEN];
    let mut pake4w = [0u8; PAKE4_LEN];
    assert!(
        lock.pairing
            .pake3(
                &mut lock.guard,
                &pake3w,
                &device.verifying_key().to_bytes(),
                &mut pake4w
            )
            .is_err()
    );
    pairing_frames("w", &pake1w, &pake2w, &pake3w, &w);
    let p = pair(&mut lock, &code, &mut client_rng, &owner, NAME);
    pairing_frames("", &p.pake1, &p.pake2, &p.pake3, &w);
    w("pake4.bin", &p.pake4);
    let paired = p.paired;

    // Session 1: the upload and the consent.
    // A session handshake of the owner with this lock (writes its messages
    // with `suffix`; the client's RNG seeded with `client_seed`).
    let open = |suffix, now, lock_rng: &mut ChaCha20Rng, client_seed| {
        let client_rng = &mut ChaCha20Rng::seed_from_u64(client_seed);
        let device_pk = &paired.device_public_key;
        handshake(
            suffix, now, lock_rng, client_rng, &device, &owner, device_pk, &w,
        )
    };
    let mut session = open("", LOCK_NOW_MS, &mut lock_rng, CLIENT_HS_SEED);
    let mut records = (Vec::new(), Vec::new());
    let mut k = 0;
    let sha: [u8; 32] = Sha256::digest(&update).into();
    for (i, data) in update.chunks(UPLOAD_CHUNK).enumerate() {
        let off = i * UPLOAD_CHUNK;
        let first = off == 0;
        let req = Request::Upload(img::Upload {
            off: off as u64,
            data,
            len: first.then_some(update.len() as u64),
            sha: first.then_some(&sha[..]),
            image: first.then_some(0),
            upgrade: None,
            auth: None,
            kw: true,
        });
        seal(&mut session, &req, k, &mut records);
        k += 1;
    }
    // The release notes (consent needs them served first), then consent.
    seal(
        &mut session,
        &Request::Notes(keyway_group::Signed { auth: None }),
        k,
        &mut records,
    );
    let consent = Request::Consent(keyway_group::Consent {
        accept: true,
        auth: None,
    });
    seal(&mut session, &consent, k + 1, &mut records);
    w("session1.bin", &records.0);
    w("session1-plain.bin", &records.1);

    // After the reboot: a new handshake (the lock's RNG and clock start
    // again), then the log export.
    let mut lock_rng = ChaCha20Rng::seed_from_u64(LOCK_RNG_SEED_2);
    let mut session = open("b", LOCK_NOW_2_MS, &mut lock_rng, CLIENT_HS_SEED_2);
    let mut records = (Vec::new(), Vec::new());
    for k in 0..LOG_REQUESTS {
        let req = Request::Log(keyway_group::Log {
            off: (k * LOG_CHUNK) as u64,
            auth: None,
        });
        seal(&mut session, &req, k, &mut records);
    }
    w("session2.bin", &records.0);
    w("session2-plain.bin", &records.1);
    rec.finish();
}

/// The lock's flash as it leaves the factory, made with the lock's own
/// crates on the host: the pairing verifier in the owner store, v1
/// verified and installed into slot 0 through the installer, slot 0
/// active and confirmed with the floor at v1's sequence number.
fn factory(
    verifier: &StoredVerifier,
    v1: &[u8],
    root: &[u8; 32],
    identity: DeviceIdentity,
) -> Vec<u8> {
    use embedded_storage::nor_flash::ReadNorFlash;
    use flash_map::{FLASH_LEN, MAP};
    use keyway_device::install::{Arm, Installer, Target};
    use keyway_device::journal::{Journal, PersistentState, TrialState};
    use keyway_suit::{DeviceState, TrustAnchors, Verified};
    let mut flash = Box::new(ram_flash::RamFlash::<FLASH_LEN>::new());
    let flash = &mut *flash;
    let mut store = keyway_agent::store::Store::open(flash, MAP.store_region()).unwrap();
    store
        .set_verifier(flash, &keyway_agent::agent::store_verifier(verifier))
        .unwrap();
    let layout = MAP.layout();
    let mut journal = Journal::open(flash, layout.journal).unwrap();
    // Slot 1 marked active first, so slot 0 is the installer's target.
    let fresh = *journal.state();
    journal
        .commit(
            flash,
            &PersistentState {
                active_slot: 1,
                ..fresh
            },
        )
        .unwrap();
    let anchors = TrustAnchors::new(&[keyway_suit::PublicKey::from_raw(root).unwrap()], 1).unwrap();
    let mut verified = Verified::empty();
    keyway_suit::verify_envelope_into(&mut verified, v1, &anchors, &identity, &DeviceState::new(0))
        .unwrap();
    let integrated = verified.integrated.unwrap();
    let payload = verified.integrated_payload().unwrap();
    let mut installer = Installer::<_>::begin_with_manifest(
        flash,
        &mut journal,
        Target::new(
            &layout,
            verified.payload.as_ref().unwrap(),
            verified.manifest_digest,
        ),
        &v1[..integrated.offset],
    )
    .unwrap();
    installer.push(flash, &mut journal, payload).unwrap();
    installer.finish(flash, &mut journal, Arm::Later).unwrap();
    let state = *journal.state();
    journal
        .commit(
            flash,
            &PersistentState {
                active_slot: 0,
                trial: TrialState::Confirmed,
                floor: Some(verified.sequence),
                ..state
            },
        )
        .unwrap();
    let mut image = vec![0u8; FLASH_LEN];
    flash.read(0, &mut image).unwrap();
    image
}

/// Writes a pairing's messages with `suffix`: the client's Pake1 and
/// Pake3 as SMP frames (sequence 0 and 1), the lock's Pake2 as it is.
fn pairing_frames(suffix: &str, pake1: &[u8], pake2: &[u8], pake3: &[u8], w: &dyn Fn(&str, &[u8])) {
    let start = Request::PakeStart(keyway_group::PakeStart { msg: pake1 });
    w(&format!("pake1{suffix}.frame"), &frame(&start, 0));
    w(&format!("pake2{suffix}.bin"), pake2);
    let finish = Request::PakeFinish(keyway_group::PakeFinish { msg: pake3 });
    w(&format!("pake3{suffix}.frame"), &frame(&finish, 1));
}

/// Runs a handshake (both roles; the lock's table as the firmware's will
/// be), writes msg1..msg4 with `suffix`, and returns the client's session
/// with msg4 opened at its clock 0.
#[allow(clippy::too_many_arguments)]
fn handshake(
    suffix: &str,
    now: u64,
    lock_rng: &mut ChaCha20Rng,
    client_rng: &mut ChaCha20Rng,
    device: &KeyPair,
    owner: &KeyPair,
    device_pk: &[u8; 32],
    w: &dyn Fn(&str, &[u8]),
) -> ClientSession {
    let mut table: SessionTable<4> = SessionTable::new(TableConfig::default());
    let keyway_board_build::channel::Handshake {
        msg1,
        msg2,
        msg3,
        msg4,
        mut session,
    } = keyway_board_build::channel::handshake(
        &mut table, now, lock_rng, client_rng, device, owner, device_pk,
    );
    let f1 = frame(
        &Request::SessionStart(keyway_group::SessionStart { msg: &msg1 }),
        2,
    );
    let f3 = frame(
        &Request::SessionFinish(keyway_group::SessionFinish { msg: &msg3 }),
        3,
    );
    w(&format!("msg1{suffix}.frame"), &f1);
    w(&format!("msg2{suffix}.bin"), &msg2);
    w(&format!("msg3{suffix}.frame"), &f3);
    w(&format!("msg4{suffix}.bin"), &msg4);
    session.open_response(0, &mut msg4.clone()).unwrap();
    session
}

/// `req` as an SMP v2 request frame with sequence number `seq`.
fn frame(req: &Request<'_>, seq: u8) -> Vec<u8> {
    let mut f = vec![0u8; MAX_FRAME];
    let n = req.frame(&mut f, Version::V2, seq).unwrap();
    f.truncate(n);
    f
}

/// Frames `req` as SMP v2 (sequence number `k`), seals it as request `k`
/// of the session at the client's time for it, and appends the `sealed`
/// SMP frame carrying the record to `records.0` and the plain frame to
/// `records.1` (each as a 2-byte little-endian length, then the bytes).
fn seal(
    session: &mut ClientSession,
    req: &Request<'_>,
    k: usize,
    records: &mut (Vec<u8>, Vec<u8>),
) {
    let plain = frame(req, k as u8);
    let mut rec = vec![0u8; plain.len() + keyway_channel::record::REQUEST_OVERHEAD];
    let (_, m) = session
        .seal_request(request_offset_ms(k), &plain, &mut rec)
        .unwrap();
    let outer = frame(
        &Request::Sealed(keyway_group::Sealed { msg: &rec[..m] }),
        k as u8,
    );
    for (to, bytes) in [(&mut records.0, &outer), (&mut records.1, &plain)] {
        to.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        to.extend_from_slice(bytes);
    }
}
