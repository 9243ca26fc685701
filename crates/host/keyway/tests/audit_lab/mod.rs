//! What the `keyway audit` tests share (`audit.rs`, `audit_serial.rs`): a
//! provisioned lock to audit, its releases, and reading the JSON report.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use keyway_lock::state::StateDir;
use keyway_vendor::encode::EnvelopeBuilder;
use keyway_vendor::keys::{Algorithm, keygen};
use serde_json::Value;

/// The `keyway` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_keyway");
pub use keyway_testkit::release::{CLASS, VENDOR};

/// Release `1.SEQUENCE.0` (16 KiB, notes naming a high CVE) signed by
/// `DIR/vendor.key`, written to `DIR/NAME.suit`; its path.
pub fn release(dir: &Path, sequence: u64, name: &str) -> std::path::PathBuf {
    let key = keyway_vendor::keys::SigningKey::load(dir.join("vendor.key")).unwrap();
    let env = EnvelopeBuilder {
        sequence,
        version: keyway_vendor::encode::ReleaseVersion::new(1, sequence, 0),
        vendor_domain: VENDOR.into(),
        class_name: CLASS.into(),
        notes: Some(format!("# {name}\n\nFixes CVE-2099-0007.\n")),
        cves: vec!["CVE-2099-0007:high".parse().unwrap()],
        payload: (0..16 * 1024)
            .map(|i| (i * 7 + sequence as usize) as u8)
            .collect(),
        keys: vec![key],
        ..Default::default()
    }
    .build()
    .unwrap()
    .envelope;
    let p = dir.join(format!("{name}.suit"));
    std::fs::write(&p, env).unwrap();
    p
}

/// A vendor key and a lock provisioned with its anchors and a factory
/// release (sequence 1).
pub fn provision(dir: &Path) {
    provision_lock(dir, true);
}

/// A vendor key and a lock provisioned with its anchors, with a factory
/// release (sequence 1) or, without one, booting into recovery (as the
/// README allows: `keyway-lock provision` without `--firmware`).
pub fn provision_lock(dir: &Path, factory: bool) {
    keygen(dir.join("vendor"), Algorithm::Ed25519).unwrap();
    let factory = factory.then(|| release(dir, 1, "factory"));
    let state = StateDir::new(dir.join("lock"));
    std::fs::create_dir_all(dir.join("lock")).unwrap();
    state.set_pin("2468").unwrap();
    state
        .provision(
            &[dir.join("vendor.pub")],
            1,
            VENDOR,
            CLASS,
            factory.as_deref(),
            false,
        )
        .unwrap();
}

/// The numbers of the report's checks with `status` (`PASS`, `FAIL`,
/// `N/A`, …).
pub fn numbers(v: &Value, status: &str) -> BTreeSet<u64> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == status)
        .map(|c| c["number"].as_u64().unwrap())
        .collect()
}

/// The report's checks, one line each, for assertion messages.
pub fn show(v: &Value) -> String {
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

/// The JSON report `keyway audit --json` printed (a panic naming its
/// output when it printed none).
pub fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "audit printed no JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs `keyway audit --json --target TARGET` with `extra` arguments on
/// the lock provisioned in `dir` (its vendor key, domain, class, PIN and
/// device key; the evidence under `DIR/out`); the JSON report and whether
/// the audit passed.
pub fn audit_target<S: AsRef<OsStr>>(dir: &Path, target: &str, extra: &[S]) -> (Value, bool) {
    let out = Command::new(BIN)
        .args(["audit", "--json", "--target", target])
        .args(extra)
        .arg("--vendor-key")
        .arg(dir.join("vendor.key"))
        .args(["--vendor-domain", VENDOR, "--class", CLASS, "--pin", "2468"])
        .arg("--device-key")
        .arg(dir.join("lock/device.pub"))
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    (report(&out), out.status.success())
}
