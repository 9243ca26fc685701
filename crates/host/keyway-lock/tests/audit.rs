//! The audit log end to end: a provisioned state directory (device key,
//! PIN), lock events through the control commands, an update and a
//! refused one through the SMP server, the export, and the host verifier
//! (`keyway_vendor::log`) finding the chain intact with the expected events.

mod common;

use ciborium::Value;
use common::{First, Shell, release};
use keyway_audit::{Body, Event, LockMethod, RejectReason, Version};
use keyway_lock::control::handle_line;
use keyway_lock::server::Server;
use keyway_lock::smp::{self, HEADER_LEN, Op};
use keyway_testkit::pair::Lab;
use keyway_testkit::release::Vendor;
use keyway_vendor::keys::{PublicKey, SigningKey};
use keyway_vendor::log::ItemKind;
use sha2::{Digest, Sha256};

const RTC: u64 = 1_795_564_800;

fn request(op: Op, group: u16, id: u8, body: Vec<(Value, Value)>) -> Vec<u8> {
    common::request(op, group, id, 1, body)
}

/// Uploads `env` in 1 KiB chunks; returns the last response body.
fn upload(s: &mut Shell, env: &[u8], now: u64) -> Vec<(Value, Value)> {
    common::upload_by(env, 1024, First::sha(env), |m| {
        let r = s.handle(&request(Op::Write, 1, 1, m), now);
        smp::decode_body(&r[HEADER_LEN..]).unwrap()
    })
}

fn control(s: &mut Shell, line: &str, now: u64) -> serde_json::Value {
    let a = handle_line(s, line, now);
    assert_eq!(a["ok"], true, "{line}: {a}");
    s.core_mut().commit_audit(RTC + now / 1000).unwrap();
    a
}

#[test]
fn lock_events_and_an_update_export_an_intact_signed_log() {
    // Provisioned with the PIN 4711.
    let vendor = Vendor::new();
    let factory = release(&vendor.key, "1.4.0", 1, 9000);
    let (lab, summary) = Lab::with_factory(vendor, &factory);
    let vendor = &lab.vendor.key;
    assert!(summary.contains("device key"), "{summary}");
    let dir = lab.state_dir();
    let key_path = lab.state().join("device.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let device_pub = PublicKey::load(lab.state().join("device.pub")).unwrap();

    // Start the lock as the shell does: load, the log, power on (boot 2).
    let mut lock = dir.load().unwrap();
    let (signer, kid) = dir.device_signer().unwrap();
    assert_eq!(kid, device_pub.key_id());
    assert_eq!(dir.boot_count().unwrap(), 1, "the factory boot");
    lock.attach_audit(signer, dir.boot_count().unwrap())
        .unwrap();
    lock.power_on().unwrap();
    assert_eq!(lock.boot_count(), Some(2));
    lock.commit_audit(RTC).unwrap();
    let mut s = Shell::new(Server::new(lock));
    s.set_lock_config(keyway_lock::lock::Config {
        pin: dir.pin().unwrap(),
        ..Default::default()
    });

    // Lock events.
    let a = control(&mut s, r#"{"cmd":"keypad","pin":"0000"}"#, 1_000);
    assert_eq!(a["result"], "wrong-pin");
    let a = control(&mut s, r#"{"cmd":"keypad","pin":"4711"}"#, 2_000);
    assert_eq!(a["result"], "unlocked");
    control(&mut s, r#"{"cmd":"door","state":"open"}"#, 3_000);
    s.tick(60_000);
    assert_eq!(
        control(&mut s, r#"{"cmd":"status"}"#, 60_000)["lock"]["bolt"],
        "unlocked",
        "no auto-relock while the door is open"
    );
    control(&mut s, r#"{"cmd":"door","state":"closed"}"#, 61_000);
    s.tick(91_000);
    let st = control(&mut s, r#"{"cmd":"status"}"#, 91_000);
    assert_eq!(st["lock"]["bolt"], "locked", "{st}");
    control(&mut s, r#"{"cmd":"tamper","state":"on"}"#, 92_000);
    control(&mut s, r#"{"cmd":"tamper","state":"off"}"#, 93_000);
    control(&mut s, r#"{"cmd":"battery","level":3200}"#, 94_000);
    control(&mut s, r#"{"cmd":"mechanical-key"}"#, 95_000);
    control(&mut s, r#"{"cmd":"lock"}"#, 96_000);
    control(&mut s, r#"{"cmd":"presence","seconds":120}"#, 97_000);

    // A release signed by another key is refused; the real one installs.
    let other = Vendor::new().key;
    let bad = upload(&mut s, &release(&other, "2.0.0", 2, 5000), 98_000);
    assert!(smp::get(&bad, "err").is_some(), "{bad:?}");
    s.core_mut().commit_audit(RTC + 98).unwrap();
    let env = release(vendor, "2.1.0", 2, 20_000);
    let good = upload(&mut s, &env, 99_000);
    assert_eq!(smp::get_bool(&good, "match").unwrap(), Some(true));
    s.core_mut().commit_audit(RTC + 99).unwrap();
    // Consent: the bolt withdrawn, a test boot asked for with the window
    // open arms the update; the reset (as a stock tool sends it next)
    // boots the trial, which self-tests and confirms.
    control(&mut s, r#"{"cmd":"keypad","pin":"4711"}"#, 99_500);
    let hash: [u8; 32] = Sha256::digest(&env).into();
    let test = vec![(Value::Text("hash".into()), Value::Bytes(hash.to_vec()))];
    s.handle(&request(Op::Write, 1, 0, test), 100_000);
    assert!(s.poll_reset().is_none(), "the test only arms it");
    s.handle(&request(Op::Write, 0, 5, Vec::new()), 100_000);
    s.poll_reset().unwrap().unwrap();
    s.core_mut().commit_audit(RTC + 100).unwrap();

    // Export from the control socket (into the state directory's
    // exports/) and verify with the host verifier.
    let line = r#"{"cmd": "log-export", "path": "audit.bin"}"#;
    let a = keyway_lock::control::handle_line_in(&mut s, line, 101_000, RTC + 101, &dir);
    assert_eq!(a["ok"], true, "{a}");
    let out = lab.state().join("exports/audit.bin");
    assert_eq!(a["path"], out.display().to_string());
    let bytes = std::fs::read(&out).unwrap();
    let report = keyway_vendor::log::verify(&bytes, &device_pub);
    assert!(report.intact(), "{:?}", report.findings);
    let events: Vec<(Event, u32)> = keyway_vendor::log::parse(&bytes)
        .into_iter()
        .filter_map(|i| match i.what {
            ItemKind::Record { record, .. } => match record.body {
                Body::Event(e) => Some((e, record.time.boot)),
                _ => None,
            },
            ItemKind::Unreadable { .. } => None,
        })
        .collect();
    let only: Vec<Event> = events.iter().map(|(e, _)| *e).collect();
    let boot = |slot, (a, b, c)| Event::Boot {
        slot,
        version: Version::new(a, b, c),
    };
    let offered = |sequence, (a, b, c)| Event::UpdateOffered {
        sequence,
        version: Version::new(a, b, c),
    };
    let unlocked = |method| Event::Unlocked { method };
    let locked = |method| Event::Locked { method };
    let expected = [
        // The factory boot (boot 1), then this start's boot (2).
        boot(0, (1, 4, 0)),
        Event::OnTrial {
            slot: 0,
            attempts_left: 3,
        },
        Event::Confirmed {
            slot: 0,
            sequence: 1,
        },
        boot(0, (1, 4, 0)),
        Event::PinFailed { consecutive: 1 },
        unlocked(LockMethod::Keypad),
        locked(LockMethod::AutoRelock),
        Event::TamperDetected { sensor: 1 },
        Event::TamperCleared { sensor: 1 },
        Event::BatteryLow { millivolts: 3200 },
        unlocked(LockMethod::MechanicalKey),
        locked(LockMethod::OwnerCommand),
        Event::PresenceWindowOpened { seconds: 120 },
        offered(2, (2, 0, 0)),
        Event::UpdateRejected {
            sequence: 2,
            reason: RejectReason::Signatures,
        },
        offered(2, (2, 1, 0)),
        Event::UpdateVerified { sequence: 2 },
        Event::DownloadStarted { sequence: 2 },
        unlocked(LockMethod::Keypad),
        Event::ConsentGiven { sequence: 2 },
        Event::UpdateInstalled {
            sequence: 2,
            slot: 1,
        },
        boot(1, (2, 1, 0)),
    ];
    // OnTrial's attempts come from the device crate: compare loosely.
    let mut want = expected.iter().peekable();
    for e in &only {
        if let Some(w) = want.peek() {
            let same = match (w, e) {
                (Event::OnTrial { slot: a, .. }, Event::OnTrial { slot: b, .. }) => a == b,
                _ => *w == e,
            };
            if same {
                want.next();
            }
        }
    }
    assert!(
        want.peek().is_none(),
        "missing {:?} in {only:#?}",
        want.peek()
    );
    assert!(
        matches!(
            only[only.len() - 2..],
            [
                Event::OnTrial { slot: 1, .. },
                Event::Confirmed {
                    slot: 1,
                    sequence: 2
                }
            ]
        ),
        "{only:#?}"
    );
    assert_eq!(events.first().map(|e| e.1), Some(1), "factory boot");
    assert_eq!(events[3].1, 2, "this start");
    assert_eq!(
        events.last().map(|e| e.1),
        Some(3),
        "the reset into the trial"
    );
}

#[test]
fn the_log_wraps_on_its_four_pages_with_signed_checkpoints() {
    let vendor = Vendor::new();
    let (key, trust) = (&vendor.key, vendor.trust());
    let SigningKey::Ed25519(k) = key else {
        unreachable!()
    };
    let signer = keyway_audit::Ed25519Signer::from_seed(k.to_bytes()).unwrap();
    let mut lock =
        keyway_lock::device::DeviceCore::new(keyway_lock::device::blank_flash(), trust, None)
            .unwrap();
    lock.attach_audit(signer, 0).unwrap();
    lock.factory(&release(key, "1.0.0", 1, 4000)).unwrap();
    let mut s = Shell::new(Server::new(lock));
    // 300 events: more than the 4 pages of 29 records hold.
    for i in 0..150u64 {
        control(&mut s, r#"{"cmd":"tamper","state":"on"}"#, i * 2000);
        control(&mut s, r#"{"cmd":"tamper","state":"off"}"#, i * 2000 + 1000);
    }
    let bytes = s.core_mut().export_audit(RTC + 400).unwrap();
    let report = keyway_vendor::log::verify(&bytes, &key.public_key());
    assert!(report.intact(), "{:?}", report.findings);
    assert!(
        report.checkpoints > 0,
        "{}",
        report.summary(&key.public_key())
    );
    let (first, last) = report.range.unwrap();
    assert!(first > 0, "the oldest records rotated out");
    assert!(last >= 300, "{first}..{last}");
    // The slots and the journal are untouched: the image still verifies.
    assert!(s.core_mut().verify(0).is_ok());
}
