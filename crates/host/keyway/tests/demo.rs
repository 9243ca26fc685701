//! `keyway demo` end to end, as the README runs it: the binary re-runs
//! itself in a network namespace, provisions a lock, updates it through a
//! power cut with the owner's consent, audits it, writes the HTML report,
//! and leaves nothing running.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn demo_updates_offline_through_a_power_cut_and_passes_its_audit() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("keyway-demo-test");
    let o = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["demo", "--dir"])
        .arg(&dir)
        .output()
        .expect("keyway demo runs");
    let text = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "demo failed:\n{text}\n{err}");
    for line in [
        "PASS  router unplugged",
        "PASS  power cut mid-upload, upload resumed",
        "PASS  release notes and CVE before consent",
        "PASS  no install before consent; postponed while locked",
        "PASS  2.1.0 installed, self-tested, confirmed",
        "update: 5 passed, 0 failed; audit: 12 passed, 0 failed, 0 skipped",
        "HTML report: ",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    let html = std::fs::read_to_string(dir.join("report.html")).expect("the HTML report");
    assert!(html.contains("<html") && html.contains("Router unplugged"));
    // The lock's state stays for inspection; its process does not.
    assert!(dir.join("lock/flash.bin").exists());
}
