//! Shared helpers for the `keyway` integration tests: running the
//! command line (as a child process or in-process) and talking to a
//! simulated lock's control socket. The locks, vendor keys and releases
//! come from keyway-testkit.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use keyway_lock::shell::Running;

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
