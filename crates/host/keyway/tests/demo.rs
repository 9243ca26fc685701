//! `keyway demo` end to end: every scorecard line passes, the install with
//! its power cut and the attack on the flash included.

use std::path::PathBuf;

#[test]
fn demo_scorecard_passes_with_the_install_and_the_flash_attack() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("keyway-demo-test");
    let mut out = Vec::new();
    let scores = keyway_cli::demo::run(&dir, &mut out).expect("the demo runs");
    keyway_cli::demo::print_scorecard(&scores, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for s in &scores {
        assert!(s.pass, "FAIL {}: {}\n{text}", s.name, s.evidence);
    }
    let names: Vec<&str> = scores.iter().map(|s| s.name).collect();
    for name in [
        "genuine release accepted offline",
        "power cut during the install",
        "self-test, confirm",
        "tampered payload",
        "tampered image in flash",
    ] {
        assert!(
            names.contains(&name),
            "no scorecard line {name:?}: {names:?}"
        );
    }
    assert_eq!(scores.len(), 10, "{names:?}");
    for line in [
        "PASS  power cut during the install",
        "PASS  self-test, confirm",
        "PASS  tampered image in flash",
        "POWER FAILS during operation",
        "10 passed, 0 failed",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    assert!(dir.join("release-1.4.0.suit").exists());
}
