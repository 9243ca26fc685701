//! `keyway hub` as a process: the demo house's first line and its API,
//! `hub serve` across restarts and a SIGKILL, `hub import` of good and
//! corrupt bundles, and the loopback-only API address.

use std::path::PathBuf;
use std::process::Command;

fn keyway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keyway"))
}

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The issue: "serve from 127.0.0.1 by default". A wildcard or LAN
/// address is refused, naming the flag that allows it, before the store
/// or the token is touched.
#[test]
fn serve_refuses_a_non_loopback_listen_without_the_flag() {
    let data = tmp("hub-listen");
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8080"] {
        let o = keyway()
            .args(["hub", "serve", "--data"])
            .arg(&data)
            .args(["--listen", addr])
            .output()
            .expect("keyway runs");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{addr} was served");
        assert!(
            err.contains("--listen-insecure-any-address") && err.contains("loopback"),
            "{addr}: {err}"
        );
        assert!(!data.join("api-token").exists(), "{addr}: a token was made");
    }
}
