//! Issue 12, "a secure local channel": the per-lock setup code made at
//! provisioning.
//!
//! - `keyway-lock provision` prints a valid code like a label
//!   (`Setup code: 1234-5670`, the form keyway-channel parses).
//! - The lock keeps only the SPAKE2+ verifier of that code
//!   (`setup-verifier`: derived from the printed code with its stored salt
//!   and iterations; the code's digits are in no other file but the
//!   label's stand-in `setup-code`), both 0600 under umask 0, and a
//!   planted `.tmp` link is never written through.
//! - `keyway-lock ctl SOCKET setup-code` reads the same code off the
//!   "label".
//! - Provisioning again (`--force`) makes a new code and a new salt; a lock
//!   provisioned without one says so by name.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{Running, assert_success, assert_untouched, lock_cmd, mode};
use keyway_channel::{SetupCode, StoredVerifier};
use keyway_lock::state::StateDir;
use keyway_vendor::keys::{Algorithm, keygen};

/// `keyway-lock provision` of `tmp/lock` (with `--force` if `force`); its
/// stdout.
fn provision(tmp: &Path, force: bool) -> String {
    let vendor = tmp.join("vendor");
    if !tmp.join("vendor.pub").exists() {
        keygen(&vendor, Algorithm::Ed25519).unwrap();
    }
    let mut c = provision_cmd(tmp);
    if force {
        c.arg("--force");
    }
    let out = c.output().unwrap();
    assert_success(&out);
    String::from_utf8(out.stdout).unwrap()
}

/// `keyway-lock provision` of `tmp/lock` for the key `tmp/vendor.pub`.
fn provision_cmd(tmp: &Path) -> Command {
    common::provision_cmd(lock_cmd(), &tmp.join("lock"), &tmp.join("vendor.pub"))
}

/// The code on the `Setup code: ` line, parsed as keyway-channel parses a
/// code the owner types.
fn printed_code(out: &str) -> (String, SetupCode) {
    let lines: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Setup code: "))
        .collect();
    assert_eq!(lines.len(), 1, "one `Setup code: ` line: {out}");
    let text = lines[0].to_owned();
    assert!(
        text.len() == 9 && text.as_bytes()[4] == b'-',
        "printed like a label, 1234-5670: {text:?}"
    );
    let code = SetupCode::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(code.to_string(), text);
    (text, code)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn provision_prints_a_valid_setup_code_and_stores_only_its_verifier_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let out = provision(tmp.path(), false);
    let (text, code) = printed_code(&out);
    let state = tmp.path().join("lock");
    let (code_file, verifier_file) = (state.join("setup-code"), state.join("setup-verifier"));
    assert_eq!(mode(&code_file), 0o600);
    assert_eq!(mode(&verifier_file), 0o600);
    assert_eq!(std::fs::read_to_string(&code_file).unwrap().trim(), text);

    // The verifier is the printed code's: derived again from the code with
    // the salt and iterations it stores, it is byte for byte the same.
    let bytes = std::fs::read(&verifier_file).unwrap();
    assert_eq!(bytes.len(), keyway_channel::pairing::VERIFIER_LEN);
    assert_eq!(bytes.len(), 84);
    let stored = StoredVerifier::from_bytes(&bytes).unwrap();
    assert_eq!(
        stored.iterations(),
        keyway_channel::pairing::DEFAULT_ITERATIONS
    );
    assert_ne!(stored.salt(), [0; 16]);
    let again = StoredVerifier::derive(&code, &stored.salt(), stored.iterations());
    assert_eq!(again.to_bytes(), stored.to_bytes());
    assert_eq!(
        StateDir::new(&state)
            .setup_verifier()
            .unwrap()
            .unwrap()
            .to_bytes(),
        stored.to_bytes()
    );

    // The code itself is nowhere but on the "label": not in the verifier,
    // the flash, or any other file.
    let digits = code.digits();
    let files = common::walk(&state)
        .into_iter()
        .filter(|p| *p != code_file && !std::fs::symlink_metadata(p).unwrap().is_dir());
    for p in files {
        let b = std::fs::read(&p).unwrap();
        assert!(
            !contains(&b, &digits) && !contains(&b, text.as_bytes()),
            "the setup code is in {}",
            p.display()
        );
        assert!(
            !p.display().to_string().ends_with(".tmp"),
            "{}",
            p.display()
        );
    }
}

/// Runs the lock with a Unix control socket; returns it and the socket.
fn run(tmp: &Path) -> (Running, PathBuf) {
    let sock = tmp.join("ctl.sock");
    let (running, _) = common::start(
        lock_cmd(),
        &tmp.join("lock"),
        [OsStr::new("--control"), sock.as_os_str()],
    );
    (running, sock)
}

/// `keyway-lock ctl SOCKET WORDS`: (exit success, the JSON answer).
fn ctl(sock: &Path, words: &[&str]) -> (bool, serde_json::Value) {
    let o = common::ctl(sock, words);
    let out = String::from_utf8_lossy(&o.stdout);
    let v = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("{e}: {out:?} {}", String::from_utf8_lossy(&o.stderr)));
    (o.status.success(), v)
}

#[test]
fn ctl_setup_code_reads_the_printed_code_and_a_re_provision_makes_a_new_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, _) = printed_code(&provision(tmp.path(), false));
    let salt1 = StateDir::new(tmp.path().join("lock"))
        .setup_verifier()
        .unwrap()
        .unwrap()
        .salt();
    {
        let (_lock, sock) = run(tmp.path());
        let (ok, v) = ctl(&sock, &["setup-code"]);
        assert!(ok, "{v}");
        assert_eq!(v["setup_code"], first.as_str(), "{v}");
    }
    // Provisioning again without --force is refused and keeps the code.
    let o = provision_cmd(tmp.path()).output().unwrap();
    assert!(!o.status.success());
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("lock/setup-code"))
            .unwrap()
            .trim(),
        first
    );
    let (second, _) = printed_code(&provision(tmp.path(), true));
    assert_ne!(second, first, "a new lock, a new code");
    let salt2 = StateDir::new(tmp.path().join("lock"))
        .setup_verifier()
        .unwrap()
        .unwrap()
        .salt();
    assert_ne!(salt1, salt2, "a new code, a new salt");
    let (_lock, sock) = run(tmp.path());
    let (ok, v) = ctl(&sock, &["setup-code"]);
    assert!(ok, "{v}");
    assert_eq!(v["setup_code"], second.as_str(), "{v}");
}

/// A lock provisioned by the library (no code made) answers `setup-code`
/// with a refusal naming the fix, and its state directory has no stale
/// code from the lock it held before.
#[test]
fn a_lock_without_a_setup_code_says_so_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    provision(tmp.path(), false);
    let dir = StateDir::new(tmp.path().join("lock"));
    dir.provision(
        &[tmp.path().join("vendor.pub")],
        1,
        "locks.example",
        "deadbolt-2",
        None,
        true,
    )
    .unwrap();
    // Provisioning makes the code; a state directory from before it did
    // has none.
    std::fs::remove_file(tmp.path().join("lock").join(keyway_lock::state::SETUP_CODE)).unwrap();
    std::fs::remove_file(tmp.path().join("lock/setup-verifier")).unwrap();
    assert!(dir.setup_code().unwrap().is_none());
    assert!(dir.setup_verifier().unwrap().is_none());
    let (_lock, sock) = run(tmp.path());
    let (ok, v) = ctl(&sock, &["setup-code"]);
    assert!(!ok, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("keyway-lock provision --force"),
        "{v}"
    );
}

/// `setup-code.tmp` and `setup-verifier.tmp` planted as links to another
/// file are not written through (each temp file is created 0600 with
/// O_EXCL | O_NOFOLLOW before it holds a byte), under umask 0.
#[test]
fn planted_setup_tmp_links_are_not_written_through() {
    // SAFETY: umask has no memory effects.
    unsafe { libc::umask(0) };
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("lock");
    std::fs::create_dir(&state).unwrap();
    let victim = common::victim(tmp.path().join("victim.txt"));
    for name in ["setup-code.tmp", "setup-verifier.tmp"] {
        std::os::unix::fs::symlink(&victim, state.join(name)).unwrap();
    }
    let dir = StateDir::new(&state);
    let code = dir.new_setup_code().unwrap();
    assert_untouched(&victim);
    assert_eq!(mode(&state.join("setup-code")), 0o600);
    assert_eq!(mode(&state.join("setup-verifier")), 0o600);
    assert!(!state.join("setup-code.tmp").exists());
    assert_eq!(dir.setup_code().unwrap(), Some(code));
}
