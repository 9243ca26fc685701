//! Shared helpers for the `keyway` integration tests: running the
//! command line (as a child process or in-process) and talking to a
//! simulated lock's control socket. The locks, vendor keys and releases
//! come from keyway-testkit.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub mod hub;

use keyway::device::{Intercept, Transport, TransportError};
use keyway_lock::shell::Running;
use keyway_vendor::smp::{self, Header};

/// The `keyway` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_keyway");

/// `keyway ARGS` run in `dir`; its output.
pub fn keyway(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run keyway")
}

/// Whether a command succeeded, its stdout and its stderr.
pub fn outcome(o: Output) -> (bool, String, String) {
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `keyway device --target TARGET OPTIONS ARGS`: whether it succeeded,
/// its stdout and its stderr.
pub fn device_cli(target: &str, options: &[&str], args: &[&str]) -> (bool, String, String) {
    outcome(
        Command::new(BIN)
            .args(["device", "--target", target])
            .args(options)
            .args(args)
            .output()
            .unwrap(),
    )
}

/// `keyway ARGS` in-process (`keyway::cli::run`): whether it succeeded,
/// and its stdout followed by the error, if any.
pub fn run_in_process(args: &[&str]) -> (bool, String) {
    use clap::Parser as _;
    let mut argv = vec!["keyway"];
    argv.extend_from_slice(args);
    let cli = keyway::cli::Cli::try_parse_from(&argv).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = keyway::cli::run(cli, &mut out, &mut err);
    let mut text = String::from_utf8(out).unwrap();
    if let Err(e) = &r {
        text.push_str(&format!("error: {e:#}\n"));
    }
    (r.is_ok(), text)
}

/// A new empty folder under the system's temporary folder, named
/// `keyway-NAME-PID-RANDOM`.
pub fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "keyway-{name}-{}-{}",
        std::process::id(),
        getrandom::u64().unwrap()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Asserts that `text` contains `part`.
pub fn assert_has(text: &str, part: &str) {
    assert!(text.contains(part), "{part:?} missing in:\n{text}");
}

/// Asserts that `text` contains every one of `parts`.
pub fn assert_contains_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert_has(text, part);
    }
}

/// Asserts that the JSON string `v[key]` contains `part`.
pub fn assert_json_contains(v: &serde_json::Value, key: &str, part: &str) {
    let s = v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {v}"));
    assert!(s.contains(part), "want {part:?} in {key:?} of {v}");
}

/// One line to the lock's TCP control socket (its buttons, keypad and
/// sensors); its answer.
pub fn control(lock: &Running, line: &str) -> String {
    use std::io::{BufRead as _, Write as _};
    let mut c = std::net::TcpStream::connect(lock.control.unwrap()).unwrap();
    writeln!(c, "{line}").unwrap();
    let mut answer = String::new();
    std::io::BufReader::new(c).read_line(&mut answer).unwrap();
    answer
}

/// Whether `frame` is a sealed record (the Keyway group's id 15).
pub fn is_sealed_record(frame: &[u8]) -> bool {
    Header::decode(frame).is_ok_and(|h| h.group == smp::group::KEYWAY && h.id == 15)
}

/// `inner`, running `between` once, just before the `at`-th sealed record
/// goes to the lock: the lock's state changes between two of the owner's
/// calls. Frames pass through untouched.
pub fn between<T: Transport>(
    inner: T,
    at: usize,
    between: impl FnOnce() + Send + 'static,
) -> impl Transport {
    let (mut sealed, mut between) = (0, Some(between));
    Intercept::new(inner, move |t: &mut T, frame: &[u8], seq| {
        if is_sealed_record(frame) {
            sealed += 1;
            if sealed == at
                && let Some(f) = between.take()
            {
                f();
            }
        }
        t.exchange(frame, seq)
    })
}

/// `inner`, passing `left` exchanges through, then failing every one with
/// `error` (a link that dies mid-upload, an owner who walked away).
pub fn dying<T: Transport>(inner: T, mut left: u32, error: TransportError) -> impl Transport {
    Intercept::new(inner, move |t: &mut T, frame: &[u8], seq| {
        if left == 0 {
            return Err(error.clone());
        }
        left -= 1;
        t.exchange(frame, seq)
    })
}

/// What a person at the lock does in the presence window, to run in a
/// [`Between`]: installs `envelope` at the lock at `smp` as a stock tool
/// would (no owner: upload, test, the window's reset) and waits until it
/// runs confirmed. The flag is set once it has.
pub fn person_installs(
    smp: String,
    envelope: PathBuf,
) -> (impl FnOnce() + Send + 'static, Arc<AtomicBool>) {
    let done = Arc::new(AtomicBool::new(false));
    let installed = Arc::clone(&done);
    let install = move || {
        let mut c = keyway::device::Client::new(
            keyway::device::UdpTransport::connect(&smp)
                .unwrap()
                .with_retry(Duration::from_millis(2000), 3),
        );
        let args = keyway::device::cli::UpdateArgs {
            envelopes: vec![envelope],
            install: true,
            wait: true,
            wait_seconds: 30,
        };
        let v = keyway::device::cli::update(&mut c, &args, true, &mut Vec::new(), &mut Vec::new())
            .expect("the person at the lock installs the release");
        assert_eq!(v["outcome"], "running", "{v}");
        installed.store(true, Ordering::SeqCst);
    };
    (install, done)
}
