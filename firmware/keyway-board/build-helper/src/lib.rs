//! Build-script helpers shared by the firmware projects in `firmware/`
//! (a host crate: use it under `[build-dependencies]`).
//!
//! The memory map is not here: `keyway-board`'s own build script puts the
//! `memory.x` its `*-map` feature chooses on the linker path. What each
//! harness's `build.rs` used to copy by hand is: read a fixture directory
//! from an environment variable the harness's script sets, copy named files
//! into `OUT_DIR` (so `include_bytes!(concat!(env!("OUT_DIR"), "/x"))` has a
//! stable path and cargo rebuilds when one changes), and rebuild when a
//! budget variable changes. With the feature `channel`, [`channel`]
//! records the owner's client's pairing and session handshake.

use std::{env, fs, path::PathBuf};

#[cfg(feature = "channel")]
pub mod channel;

/// `OUT_DIR`.
pub fn out_dir() -> PathBuf {
    PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo for build scripts"))
}

/// Rebuild when any of these environment variables changes.
pub fn rerun_on_env(vars: &[&str]) {
    for v in vars {
        println!("cargo:rerun-if-env-changed={v}");
    }
}

/// Rebuild when any of these files (relative to the package) changes.
pub fn rerun_on_files(files: &[&str]) {
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
}

/// The directory named by `var`; panics with a sentence naming `script`
/// (the script that makes it) when it is not set.
pub fn fixture_dir(var: &str, script: &str) -> PathBuf {
    println!("cargo:rerun-if-env-changed={var}");
    match env::var_os(var) {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "{var} is not set: build this firmware through {script}, or point {var} at a \
             directory made by it"
        ),
    }
}

/// Copies `names` from the directory in `var` into `OUT_DIR`; returns the
/// directory. Panics naming the missing file.
pub fn copy_fixtures(var: &str, script: &str, names: &[&str]) -> PathBuf {
    let dir = fixture_dir(var, script);
    let out = out_dir();
    for name in names {
        let src = dir.join(name);
        println!("cargo:rerun-if-changed={}", src.display());
        let bytes =
            fs::read(&src).unwrap_or_else(|e| panic!("fixture {} missing: {e}", src.display()));
        fs::write(out.join(name), bytes)
            .unwrap_or_else(|e| panic!("cannot write {name} into OUT_DIR: {e}"));
    }
    dir
}
