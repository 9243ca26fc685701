//! `keyway audit --target serial:PATH` against the simulated lock's serial
//! port (`keyway-lock --serial PATH`: a pty speaking MCUmgr's serial
//! transport) with its control socket on a Unix path: every check runs
//! over the line, except those whose subject is the IP network (1: the
//! router unplugged) or a second peer on the medium (17: another peer's
//! chunks), which are N/A with the reason. A flawed profile still fails
//! its checks over serial, so the serial audit can fail.

mod audit_lab;

use std::collections::BTreeSet;
use std::ffi::OsStr;

use audit_lab::*;
use serde_json::Value;

/// The checks that are not applicable on a serial line.
const NOT_APPLICABLE: [u64; 2] = [1, 17];

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
    let (v, ok) = audit_target(
        t.path(),
        &format!("serial:{}", serial.display()),
        &[
            OsStr::new("--control"),
            sock.as_os_str(),
            OsStr::new("--report"),
            html.as_os_str(),
        ],
    );
    lock.power_off();
    let page = std::fs::read_to_string(&html).unwrap_or_default();
    (v, ok, page)
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
