//! `keyway audit --target serial:PATH` against the simulated lock's serial
//! port (`keyway-lock --serial PATH`: a pty speaking MCUmgr's serial
//! transport) with its control socket on a Unix path: every check runs
//! over the line, except those whose subject is the IP network (1: the
//! router unplugged) or a second peer on the medium (17: another peer's
//! chunks), which are N/A with the reason. A flawed profile still fails
//! its checks over serial, so the serial audit can fail.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use keyway_lock::state::StateDir;
use keyway_vendor::encode::EnvelopeBuilder;
use keyway_vendor::keys::{Algorithm, keygen};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_keyway");
const VENDOR: &str = "locks.example";
const CLASS: &str = "deadbolt-2";

/// The checks that are not applicable on a serial line.
const NOT_APPLICABLE: [u64; 2] = [1, 17];

fn provision(dir: &Path) {
    keygen(dir.join("vendor"), Algorithm::Ed25519).unwrap();
    let key = keyway_vendor::keys::SigningKey::load(dir.join("vendor.key")).unwrap();
    let env = EnvelopeBuilder {
        sequence: 1,
        version: keyway_vendor::encode::Version::new(1, 1, 0),
        vendor_domain: VENDOR.into(),
        class_name: CLASS.into(),
        notes: Some("# factory\n".into()),
        payload: (0..8 * 1024).map(|i| (i * 7) as u8).collect(),
        keys: vec![key],
        ..Default::default()
    }
    .build()
    .unwrap()
    .envelope;
    let factory = dir.join("factory.suit");
    std::fs::write(&factory, env).unwrap();
    let state = StateDir::new(dir.join("lock"));
    std::fs::create_dir_all(dir.join("lock")).unwrap();
    state.set_pin("2468").unwrap();
    state
        .provision(
            &[dir.join("vendor.pub")],
            1,
            VENDOR,
            CLASS,
            Some(&factory),
            false,
        )
        .unwrap();
}

/// Starts the lock (`profile`) on a pty at `DIR/serial` with its control
/// socket at `DIR/ctl.sock`, audits it over the line, and returns the
/// JSON report, the exit status and the HTML report.
fn audit_over_serial(profile: &str) -> (Value, bool, String) {
    let t = tempfile::tempdir().unwrap();
    provision(t.path());
    let sock = t.path().join("ctl.sock");
    let serial = t.path().join("serial");
    let mut o =
        keyway_lock::shell::Options::new(t.path().join("lock"), "127.0.0.1:0".parse().unwrap());
    o.control_path = Some(sock.clone());
    o.serial = Some(serial.clone());
    o.profile = keyway_lock::profile::Profile::parse(profile).unwrap();
    let lock = keyway_lock::shell::start(&o).unwrap();
    let html = t.path().join("report.html");
    let out = Command::new(BIN)
        .args(["audit", "--json", "--target"])
        .arg(format!("serial:{}", serial.display()))
        .arg("--control")
        .arg(&sock)
        .arg("--vendor-key")
        .arg(t.path().join("vendor.key"))
        .args(["--vendor-domain", VENDOR, "--class", CLASS, "--pin", "2468"])
        .arg("--device-key")
        .arg(t.path().join("lock/device.pub"))
        .arg("--out")
        .arg(t.path().join("out"))
        .arg("--report")
        .arg(&html)
        .output()
        .unwrap();
    lock.power_off();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "audit printed no JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let page = std::fs::read_to_string(&html).unwrap_or_default();
    (v, out.status.success(), page)
}

fn numbers(v: &Value, status: &str) -> BTreeSet<u64> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == status)
        .map(|c| c["number"].as_u64().unwrap())
        .collect()
}

fn show(v: &Value) -> String {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {} {}: {}\n",
                c["number"], c["status"], c["title"], c["summary"]
            )
        })
        .collect()
}

/// The default lock over its serial pty: every check passes, except 1 and
/// 17, which are N/A with the reason (and counted as such in the JSON and
/// the HTML, not as a pass, fail or skip).
#[test]
fn serial_lock_passes_every_applicable_check() {
    let (v, ok, html) = audit_over_serial("default");
    println!("{}", show(&v));
    assert!(v["target"].as_str().unwrap().starts_with("serial:"), "{v}");
    let na: BTreeSet<u64> = NOT_APPLICABLE.into_iter().collect();
    assert_eq!(numbers(&v, "N/A"), na, "{}", show(&v));
    let pass: BTreeSet<u64> = (1..=19).filter(|n| !na.contains(n)).collect();
    assert_eq!(numbers(&v, "PASS"), pass, "{}", show(&v));
    assert!(ok, "{}", show(&v));
    assert_eq!(v["not_applicable"], 2);
    assert_eq!(v["pass"], 17);
    for n in NOT_APPLICABLE {
        let s = v["checks"][n as usize - 1]["summary"].as_str().unwrap();
        assert!(s.contains("not applicable on a serial line"), "{s}");
    }
    assert!(html.contains("2 N/A"), "the HTML counts the N/A checks");
    assert!(html.contains("class=\"st NA\">N/A<"), "the HTML marks them");
}

/// `open-pairing` over serial: its channel flaws are found on the line
/// (a client without the key pairs, resets, replays), so the audit fails;
/// 17 stays N/A, since one line has no other peer.
#[test]
fn serial_open_pairing_lock_fails_its_channel_checks() {
    let (v, ok, _) = audit_over_serial("open-pairing");
    println!("{}", show(&v));
    assert!(!ok, "a flawed lock must fail the audit: {}", show(&v));
    assert_eq!(
        numbers(&v, "FAIL"),
        [13, 14, 15, 16, 18, 19].into_iter().collect(),
        "{}",
        show(&v)
    );
    assert_eq!(numbers(&v, "N/A"), NOT_APPLICABLE.into_iter().collect());
}
