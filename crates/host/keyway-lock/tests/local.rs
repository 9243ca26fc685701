//! Issue 12, "local leaks": the simulated lock's control socket and files
//! against another user on the same host.
//!
//! - The Unix control socket is mode 0600, even under umask 0.
//! - A TCP control socket listens only on loopback; `--control 0.0.0.0:…`
//!   is a clear error without `--control-insecure-any-address`, and a
//!   warning with it.
//! - `log-export` writes only inside the state directory: an absolute
//!   path, `..` and a symbolic link are refused and the file outside is
//!   untouched.
//! - Every file in the state directory is 0600 and the directory 0700
//!   after provisioning and a run, under umask 0 (the PIN was briefly
//!   world-readable in `pin.tmp`; `flash.bin`, `owners.json` and
//!   `lock.json` were 0644); a planted `pin.tmp` link is not written
//!   through; the temp-file helper creates 0600 before the first byte.
//!
//! Children run under umask 0 (the worst a caller can set); the in-process
//! tests set the process's umask to 0, which every test here tolerates.

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Running, assert_success, assert_untouched, ctl, lock_cmd, mode, release, spawn};
use keyway_lock::state::StateDir;
use keyway_testkit::release::{CLASS, VENDOR};
use keyway_vendor::keys::{Algorithm, SigningKey, keygen};

/// A vendor key in `tmp` and a lock provisioned by the binary (under
/// umask 0) in `tmp/lock`, with a factory image or without one.
fn provision(tmp: &Path, factory: bool) -> PathBuf {
    let files = keygen(tmp.join("vendor"), Algorithm::Ed25519).unwrap();
    let key = SigningKey::load(&files.private).unwrap();
    std::fs::write(tmp.join("v1.suit"), release(&key, "1.0.0", 1, 20_000)).unwrap();
    let state = tmp.join("lock");
    let mut c = common::provision_cmd(lock_cmd(), &state, &files.public);
    c.args(["--pin", "86420"]);
    if factory {
        c.arg("--firmware").arg(tmp.join("v1.suit"));
    }
    assert_success(&c.output().unwrap());
    state
}

/// Runs the lock with `args`; returns it once it listens.
fn run(state: &Path, args: &[&str]) -> Running {
    common::start(lock_cmd(), state, args).0
}

/// A lock provisioned in `tmp` (with a factory image), running with the
/// Unix control socket `tmp/ctl.sock`: the lock, its state, its socket.
fn provision_and_run(tmp: &Path) -> (Running, PathBuf, PathBuf) {
    let state = provision(tmp, true);
    let sock = tmp.join("ctl.sock");
    let lock = run(&state, &["--control", sock.to_str().unwrap()]);
    (lock, state, sock)
}

/// One raw JSON line to the Unix control socket; its answer.
fn control(sock: &Path, line: &str) -> serde_json::Value {
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut a = String::new();
    BufReader::new(s).read_line(&mut a).unwrap();
    serde_json::from_str(a.trim()).unwrap_or_else(|e| panic!("{e}: {a:?}"))
}

/// Waits for `child` up to `within`; kills it if it is still running.
fn wait_or_kill(mut child: Child, within: Duration) -> (Option<i32>, String, String) {
    use std::io::Read as _;
    let end = Instant::now() + within;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (status.and_then(|s| s.code()), out, err)
}

/// Asserts the state directory and everything in it are private:
/// directories 0700, files 0600. Returns the file names seen.
fn assert_private(state: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for p in &common::walk(state) {
        let m = std::fs::symlink_metadata(p).unwrap();
        let want = if m.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            mode(p),
            want,
            "{} is {:o}, must be {want:o}",
            p.display(),
            mode(p)
        );
        names.push(p.strip_prefix(state).unwrap().display().to_string());
    }
    names
}

#[test]
fn control_unix_socket_is_0600_even_under_umask_0() {
    let tmp = tempfile::tempdir().unwrap();
    let state = provision(tmp.path(), true);
    let run_dir = tmp.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    let sock = run_dir.join("ctl.sock");
    let lock = run(&state, &["--control", sock.to_str().unwrap()]);
    let m = std::fs::symlink_metadata(&sock).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()));
    assert_eq!(
        mode(&sock),
        0o600,
        "the control socket is {:o}",
        mode(&sock)
    );
    // It works, and its private birthplace is gone.
    assert_eq!(control(&sock, r#"{"cmd":"status"}"#)["ok"], true);
    assert_eq!(keyway_testkit::files::names(&run_dir), ["ctl.sock"]);
    drop(lock);
    // A stale socket from a killed lock is replaced, still 0600.
    let _lock = run(&state, &["--control", sock.to_str().unwrap()]);
    assert_eq!(mode(&sock), 0o600);
    assert_eq!(control(&sock, r#"{"cmd":"status"}"#)["ok"], true);
}

#[test]
fn control_socket_path_holding_a_regular_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let state = provision(tmp.path(), true);
    let victim = common::victim(tmp.path().join("notes.txt"));
    let args = [OsStr::new("--control"), victim.as_os_str()];
    let child = spawn(lock_cmd(), &state, args, Stdio::piped());
    let (code, _, err) = wait_or_kill(child, Duration::from_secs(10));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("other than a socket"), "{err}");
    assert_untouched(&victim);
}

#[test]
fn control_on_every_interface_without_the_flag_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let state = provision(tmp.path(), true);
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let child = spawn(lock_cmd(), &state, ["--control", addr], Stdio::piped());
        let (code, out, err) = wait_or_kill(child, Duration::from_secs(10));
        assert_eq!(
            code,
            Some(1),
            "--control {addr} must be refused: {out} {err}"
        );
        assert!(err.contains(&format!("--control {addr}")), "{err}");
        assert!(err.contains("loopback"), "{err}");
        assert!(err.contains("--control-insecure-any-address"), "{err}");
        assert!(!out.contains("control on"), "{out}");
    }
}

#[test]
fn control_on_every_interface_with_the_danger_flag_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let state = provision(tmp.path(), true);
    let args = ["--control", "0.0.0.0:0", "--control-insecure-any-address"];
    let mut child = spawn(lock_cmd(), &state, args, Stdio::piped());
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    child.stdout = None;
    let (_, _, err) = wait_or_kill(child, Duration::ZERO);
    assert!(line.starts_with("control on 0.0.0.0:"), "{line}");
    assert!(err.contains("WARNING"), "{err}");
    assert!(err.contains("can unlock the door"), "{err}");
}

#[test]
fn a_loopback_tcp_control_socket_still_works() {
    let tmp = tempfile::tempdir().unwrap();
    let state = provision(tmp.path(), true);
    let args = ["--control", "127.0.0.1:0"];
    let (_lock, addr) = common::start_until(lock_cmd(), &state, args, "control on ");
    assert_success(&ctl(&addr, ["status"]));
}

#[test]
fn log_export_cannot_write_outside_the_state_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (_lock, state, sock) = provision_and_run(tmp.path());
    let victim = common::victim(tmp.path().join("victim.txt"));
    // A planted link inside the exports folder, pointing outside.
    std::fs::create_dir_all(state.join("exports")).unwrap();
    std::os::unix::fs::symlink(&victim, state.join("exports/evil.bin")).unwrap();
    let victim_s = victim.display().to_string();
    let relative = format!("../{}", victim.strip_prefix(tmp.path()).unwrap().display());
    let attempts = [
        victim_s.as_str(),
        "../victim.txt",
        relative.as_str(),
        "exports/../../victim.txt",
        "..",
        "evil.bin",
        "",
        ".hidden",
        "/etc/passwd",
    ];
    for path in attempts {
        let line = serde_json::json!({"cmd": "log-export", "path": path}).to_string();
        let a = control(&sock, &line);
        assert_eq!(a["ok"], false, "log-export {path:?} must be refused: {a}");
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "precious",
            "log-export {path:?} overwrote a file outside the state directory"
        );
    }
    let a = control(&sock, r#"{"cmd":"log-export","path":"/tmp/x.bin"}"#);
    let e = a["error"].as_str().unwrap();
    assert!(e.contains("plain file name"), "{e}");
    let a = control(&sock, r#"{"cmd":"log-export","path":"evil.bin"}"#);
    let e = a["error"].as_str().unwrap();
    assert!(e.contains("symbolic link"), "{e}");
    // A plain name lands in STATE/exports/, private, and can be taken again.
    for _ in 0..2 {
        let a = control(&sock, r#"{"cmd":"log-export","path":"audit.bin"}"#);
        assert_eq!(a["ok"], true, "{a}");
        let p = PathBuf::from(a["path"].as_str().unwrap());
        assert_eq!(p, state.join("exports/audit.bin"));
        assert!(std::fs::metadata(&p).unwrap().len() > 0);
        assert_eq!(mode(&p), 0o600);
    }
    // `keyway-lock ctl` passes the name as given.
    assert_success(&ctl(&sock, ["log-export", "by-ctl.bin"]));
    assert!(state.join("exports/by-ctl.bin").exists());
    let o = ctl(&sock, [OsStr::new("log-export"), victim.as_os_str()]);
    assert!(!o.status.success());
    assert_untouched(&victim);
}

/// Provisioning (with and without a factory image), a run with an
/// export, a restart: every file 0600, every directory 0700, under umask 0.
#[test]
fn every_state_file_is_0600_and_the_directory_0700_after_provision_and_a_run() {
    for factory in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let state = provision(tmp.path(), factory);
        let names = assert_private(&state);
        for must in [
            "flash.bin",
            "lock.json",
            "pin",
            "device.key",
            "device.pub",
            "anchor-0.pub",
            "boot-count",
            "setup-code",
            "setup-verifier",
        ] {
            assert!(names.iter().any(|n| n == must), "{must} in {names:?}");
        }
        let sock = tmp.path().join("ctl.sock");
        let args = ["--control", sock.to_str().unwrap()];
        let lock = run(&state, &args);
        for line in [
            r#"{"cmd":"presence","seconds":5}"#,
            r#"{"cmd":"keypad","pin":"86420"}"#,
            r#"{"cmd":"log-export","path":"run.bin"}"#,
        ] {
            assert_eq!(control(&sock, line)["ok"], true, "{line}");
        }
        drop(lock);
        let _lock = run(&state, &args);
        assert_eq!(control(&sock, r#"{"cmd":"status"}"#)["ok"], true);
        let names = assert_private(&state);
        assert!(names.iter().any(|n| n == "exports/run.bin"), "{names:?}");
        // The agent's store (owners, consent, the verifier) is a state
        // file like the others.
        assert!(names.iter().any(|n| n == "agent-store.bin"), "{names:?}");
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
        println!(
            "{} a factory image: {} entries private",
            if factory { "with" } else { "without" },
            names.len()
        );
    }
}

/// The same through the library, under this process's umask 0: the
/// owners, the key set, the flash's first and later saves and an export.
#[test]
fn every_library_write_is_0600_under_umask_0() {
    // SAFETY: umask has no memory effects.
    unsafe { libc::umask(0) };
    let tmp = tempfile::tempdir().unwrap();
    let files = keygen(tmp.path().join("vendor"), Algorithm::Ed25519).unwrap();
    let key = SigningKey::load(&files.private).unwrap();
    let v1 = tmp.path().join("v1.suit");
    std::fs::write(&v1, release(&key, "1.0.0", 1, 20_000)).unwrap();
    // As `keyway-lock provision` and the tests' callers do: the directory
    // exists (here 0777, the umask's worst) before the first write.
    std::fs::create_dir(tmp.path().join("lock")).unwrap();
    let dir = StateDir::new(tmp.path().join("lock"));
    dir.set_pin("1357").unwrap();
    let public = std::slice::from_ref(&files.public);
    dir.provision(public, 1, VENDOR, CLASS, Some(&v1), false)
        .unwrap();
    dir.save_agent_store(keyway_lock::agent_shell::blank_store().unwrap().as_bytes())
        .unwrap();
    let mut lock = dir.load().unwrap();
    lock.power_on().unwrap();
    dir.save(&lock).unwrap();
    dir.save(&lock).unwrap();
    dir.set_boot_count(7).unwrap();
    let names = assert_private(&tmp.path().join("lock"));
    assert!(names.iter().any(|n| n == "agent-store.bin"), "{names:?}");
}

/// A `pin.tmp` planted as a link to another file (or left over, 0644,
/// by an older version) is not written through: the PIN never lands
/// anywhere but the 0600 `pin`.
#[test]
fn a_planted_pin_tmp_link_is_not_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("lock");
    std::fs::create_dir(&state).unwrap();
    let victim = common::victim(tmp.path().join("victim.txt"));
    std::os::unix::fs::symlink(&victim, state.join("pin.tmp")).unwrap();
    let dir = StateDir::new(&state);
    dir.set_pin("97531").unwrap();
    assert_untouched(&victim);
    assert_eq!(std::fs::read_to_string(state.join("pin")).unwrap(), "97531");
    assert_eq!(mode(&state.join("pin")), 0o600);
    assert!(!state.join("pin.tmp").exists());
    // A leftover world-readable temp file is replaced, not reused.
    std::fs::write(state.join("pin.tmp"), "old").unwrap();
    std::fs::set_permissions(
        state.join("pin.tmp"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    dir.set_pin("1234").unwrap();
    assert_eq!(mode(&state.join("pin")), 0o600);
}

/// The helper every temp file goes through: 0600 the moment it exists,
/// before a byte is written, whatever the umask; an existing file or a
/// link at the path is refused.
#[test]
fn create_private_is_0600_before_the_first_byte_and_refuses_links() {
    // SAFETY: umask has no memory effects.
    unsafe { libc::umask(0) };
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("secret.tmp");
    let f = keyway_lock::state::create_private(&p).unwrap();
    let m = f.metadata().unwrap();
    assert_eq!(m.len(), 0, "nothing written yet");
    assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    drop(f);
    let e = keyway_lock::state::create_private(&p).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    let victim = common::victim(tmp.path().join("victim.txt"));
    let link = tmp.path().join("link.tmp");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    assert!(keyway_lock::state::create_private(&link).is_err());
    let dangling = tmp.path().join("dangling.tmp");
    std::os::unix::fs::symlink(tmp.path().join("nowhere"), &dangling).unwrap();
    assert!(keyway_lock::state::create_private(&dangling).is_err());
    assert!(!tmp.path().join("nowhere").exists());
    assert_untouched(&victim);
}

/// A control line is read in bounded pieces: a 1 MiB line is refused
/// with an error naming the bound (not cut and parsed), and the
/// connection goes on.
#[test]
fn control_lines_over_4_kib_are_refused_and_the_connection_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (_lock, _, sock) = provision_and_run(tmp.path());
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut long = vec![b'x'; 1 << 20];
    long.push(b'\n');
    s.write_all(&long).unwrap();
    s.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
    let mut a = String::new();
    r.read_line(&mut a).unwrap();
    let v: serde_json::Value = serde_json::from_str(a.trim()).unwrap();
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("over 4096 bytes"),
        "{v}"
    );
    a.clear();
    r.read_line(&mut a).unwrap();
    let v: serde_json::Value = serde_json::from_str(a.trim()).unwrap();
    assert_eq!(v["ok"], true, "{v}");
}

/// At most 16 control connections are served at once: the 17th is
/// closed unanswered; when one closes, a new one is served again.
#[test]
fn control_connections_are_capped() {
    let tmp = tempfile::tempdir().unwrap();
    let (_lock, _, sock) = provision_and_run(tmp.path());
    let status = |s: &mut std::os::unix::net::UnixStream| -> Option<String> {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"{\"cmd\":\"status\"}\n").ok()?;
        let mut a = String::new();
        BufReader::new(s.try_clone().unwrap())
            .read_line(&mut a)
            .ok()?;
        (!a.is_empty()).then_some(a)
    };
    let mut held: Vec<_> = (0..16)
        .map(|_| {
            let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
            assert!(status(&mut s).is_some());
            s
        })
        .collect();
    let mut extra = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    assert_eq!(status(&mut extra), None, "the 17th connection is served");
    held.pop();
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        if status(&mut s).is_some() {
            break;
        }
        assert!(
            Instant::now() < end,
            "no connection served after one closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
