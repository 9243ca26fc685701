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
    // Where user namespaces are refused the router cannot be unplugged
    // here: the demo says so (and that it is the machine, not the lock).
    let netns = Command::new("unshare")
        .args(["-rn", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let mut lines = vec![
        "PASS  power cut mid-upload, upload resumed",
        "PASS  release notes and CVE before consent",
        "PASS  no install before consent; postponed while locked",
        "PASS  2.1.0 installed, self-tested, confirmed",
        "HTML report: ",
    ];
    if netns {
        lines.extend([
            "PASS  router unplugged",
            "update: 5 passed, 0 failed; audit: 19 passed, 0 failed, 0 skipped",
        ]);
    } else {
        eprintln!(
            "SKIP the router-unplugged lines: `unshare -rn` is not permitted on this machine"
        );
    }
    for line in lines {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    let html = std::fs::read_to_string(dir.join("report.html")).expect("the HTML report");
    assert!(html.contains("<html") && html.contains("Router unplugged"));
    // The owner paired by the lock's setup code, and the audit's owner
    // commands ran in sessions with the lock's agent.
    assert!(text.contains("pair --setup-code"), "{text}");
    assert!(html.contains("consent (owner, in a session)"));
    // The lock's state stays for inspection; its process does not.
    assert!(dir.join("lock/flash.bin").exists());
}
