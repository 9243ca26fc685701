//! The state directory: provision with a factory image, run, "kill" the
//! process in the middle of an upload (drop it after the last saved
//! request), start again and resume the download from the journal.

mod common;

use ciborium::Value;
use common::Shell;
use keyway_device::journal::TrialState;
use keyway_lock::server::Server;
use keyway_lock::smp::{self, HEADER_LEN, Op};
use keyway_lock::state::StateDir;
use keyway_testkit::release::{CLASS, VENDOR};
use keyway_vendor::encode::EnvelopeBuilder;
use keyway_vendor::keys::{Algorithm, SigningKey, keygen};
use sha2::{Digest, Sha256};

fn release(key: &SigningKey, version: &str, sequence: u64, len: usize) -> Vec<u8> {
    EnvelopeBuilder {
        sequence,
        version: version.parse().unwrap(),
        vendor_domain: "locks.example".into(),
        class_name: "deadbolt-2".into(),
        payload: (0..len).map(|i| (i % 251) as u8 ^ sequence as u8).collect(),
        keys: vec![key.clone()],
        ..Default::default()
    }
    .build()
    .unwrap()
    .envelope
}

fn chunk(env: &[u8], at: usize, first: bool) -> Vec<u8> {
    let body = common::upload_body(env, at, 1200, first.then(|| common::First::sha(env)));
    common::request(Op::Write, 1, 1, 1, body)
}

fn off(server: &mut Shell, frame: &[u8]) -> Option<u64> {
    let r = server.handle(frame, 0);
    let m = smp::decode_body(&r[HEADER_LEN..]).unwrap();
    smp::get_u64(&m, "off").unwrap()
}

fn start(dir: &StateDir) -> Shell {
    let mut lock = dir.load().unwrap();
    lock.power_on().unwrap();
    let mut s = Shell::new(Server::new(lock));
    s.set_presence_always_open(true);
    s
}

#[test]
fn provision_kill_mid_upload_restart_resume_confirm() {
    let tmp = tempfile::tempdir().unwrap();
    let files = keygen(tmp.path().join("vendor"), Algorithm::Ed25519).unwrap();
    let key = SigningKey::load(&files.private).unwrap();
    let v1 = release(&key, "1.0.0", 1, 30_000);
    let v2 = release(&key, "2.0.0", 2, 60_000);
    let v1_file = tmp.path().join("v1.suit");
    std::fs::write(&v1_file, &v1).unwrap();
    let dir = StateDir::new(tmp.path().join("lock"));
    let public = std::slice::from_ref(&files.public);
    let summary = dir
        .provision(public, 1, VENDOR, CLASS, Some(&v1_file), false)
        .unwrap();
    assert!(summary.contains("1.0.0"), "{summary}");
    // A second provision without --force is refused by name.
    let e = dir
        .provision(public, 1, VENDOR, CLASS, None, false)
        .unwrap_err();
    assert!(e.to_string().contains("--force"), "{e}");

    // Upload about half of v2, saving after each request as the shell does.
    let mut s = start(&dir);
    let mut at = 0usize;
    while at < v2.len() / 2 {
        at = off(&mut s, &chunk(&v2, at, at == 0)).unwrap() as usize;
        dir.save(s.core()).unwrap();
    }
    // One more request whose flash work is never saved: the kill.
    off(&mut s, &chunk(&v2, at, false)).unwrap();
    drop(s);

    let mut s = start(&dir);
    let d = s
        .core()
        .state()
        .download
        .expect("the journal records the download");
    let resumed = off(&mut s, &chunk(&v2, 0, true)).unwrap() as usize;
    assert!(
        resumed > 4096 && resumed <= at,
        "resumed at {resumed}, sent {at}"
    );
    assert_eq!(resumed, v2.len() - 60_000 + d.offset as usize);
    let mut at = resumed;
    while at < v2.len() {
        at = off(&mut s, &chunk(&v2, at, false)).unwrap() as usize;
    }
    // Complete and verified, not armed: consent at the lock (the bolt
    // withdrawn, a test boot) arms it; its reset is the power-on below.
    assert_eq!(s.core().state().trial, TrialState::Confirmed);
    assert_eq!(s.pending().map(|p| p.sequence), Some(2));
    s.mechanism_mut().0.owner(false, 0);
    let sha: [u8; 32] = Sha256::digest(&v2).into();
    let test = vec![(Value::Text("hash".into()), Value::Bytes(sha.to_vec()))];
    let f = smp::encode_request(Op::Write, 1, 0, 2, test);
    s.handle(&f, 0);
    assert_eq!(s.core().state().trial, TrialState::Pending { slot: 1 });
    dir.save(s.core()).unwrap();
    drop(s);

    // Power on again: trial, self-test, confirm.
    let s = start(&dir);
    let st = s.core().state();
    assert_eq!(
        (st.active_slot, st.trial, st.floor),
        (1, TrialState::Confirmed, Some(2))
    );
}

#[test]
fn a_corrupt_state_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::new(tmp.path());
    let e = dir.load().unwrap_err();
    assert!(format!("{e:#}").contains("keyway-lock provision"), "{e:#}");
    std::fs::write(
        tmp.path().join("lock.json"),
        r#"{"vendor_domain": 3, "class": "c", "threshold": 1, "anchors": []}"#,
    )
    .unwrap();
    let e = dir.load().unwrap_err();
    assert!(format!("{e:#}").contains("vendor_domain"), "{e:#}");
    std::fs::write(
        tmp.path().join("lock.json"),
        r#"{"vendor_domain": "d", "class": "c", "threshold": 1, "anchors": ["../x.pub"]}"#,
    )
    .unwrap();
    let e = dir.load().unwrap_err();
    assert!(format!("{e:#}").contains("plain file name"), "{e:#}");
}
