//! Build-script helpers shared by the firmware projects in `firmware/`
//! (a host crate: use it under `[build-dependencies]`).
//!
//! The memory map is not here: `keyway-board`'s own build script puts the
//! `memory.x` its `*-map` feature chooses on the linker path. What each
//! harness's `build.rs` used to copy by hand is: read a fixture directory
//! from an environment variable the harness's script sets, copy named files
//! into `OUT_DIR` (so `include_bytes!(concat!(env!("OUT_DIR"), "/x"))` has a
//! stable path and cargo rebuilds when one changes), and rebuild when a
//! budget variable changes. [`Recorder`] writes what a build script
//! records and the module of statics that includes it. With the feature
//! `channel`, [`channel`] records the owner's client's pairing and
//! session handshake.

use std::{cell::RefCell, env, fs, path::PathBuf};

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

/// What a build script records in `OUT_DIR` for its firmware, each file
/// under the name of the static that includes it. [`Recorder::finish`]
/// writes `recorded.rs`, which the firmware includes as a module
/// (`mod m { include!(concat!(env!("OUT_DIR"), "/recorded.rs")); }`): a
/// `pub static NAME: &[u8]` per file, and `ALL`, every one of them.
#[derive(Default)]
pub struct Recorder(RefCell<Vec<(String, String)>>);

impl Recorder {
    /// Writes `bytes` to `OUT_DIR/file`, included under the file's name up
    /// to its first dot in capitals, `-` as `_` (`session1-plain.bin`:
    /// `SESSION1_PLAIN`).
    pub fn write(&self, file: &str, bytes: &[u8]) {
        fs::write(out_dir().join(file), bytes)
            .unwrap_or_else(|e| panic!("cannot write {file} into OUT_DIR: {e}"));
        let stem = file.split('.').next().unwrap_or(file);
        self.include(&stem.to_uppercase().replace('-', "_"), file);
    }

    /// Includes `OUT_DIR/file`, already there, as `name`.
    pub fn include(&self, name: &str, file: &str) {
        self.0.borrow_mut().push((name.to_owned(), file.to_owned()));
    }

    /// [`copy_fixtures`] of the `(name, file)` pairs' files, each included
    /// as its name; returns the directory.
    pub fn fixtures(&self, var: &str, script: &str, files: &[(&str, &str)]) -> PathBuf {
        let names: Vec<&str> = files.iter().map(|(_, file)| *file).collect();
        let dir = copy_fixtures(var, script, &names);
        for (name, file) in files {
            self.include(name, file);
        }
        dir
    }

    /// Writes `OUT_DIR/recorded.rs`.
    pub fn finish(self) {
        let files = self.0.into_inner();
        let mut rs = String::new();
        for (name, file) in &files {
            rs += &format!(
                "/// `{file}`.\npub static {name}: &[u8] = \
                 include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{file}\"));\n"
            );
        }
        let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
        rs += &format!(
            "/// Every one of them.\n#[allow(dead_code)]\npub static ALL: [&[u8]; {}] = [{}];\n",
            names.len(),
            names.join(", ")
        );
        fs::write(out_dir().join("recorded.rs"), rs)
            .unwrap_or_else(|e| panic!("cannot write recorded.rs into OUT_DIR: {e}"));
    }
}
