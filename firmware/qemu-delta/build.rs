//! Puts memory.x on the linker search path and copies in the fixtures:
//! the base image and the patch (scripts/qemu-delta.sh makes them with
//! `keyway diff` and passes their folder in KEYWAY_DELTA_FIXTURES).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-env-changed=KEYWAY_DELTA_FIXTURES");
    let dir = PathBuf::from(env::var_os("KEYWAY_DELTA_FIXTURES").unwrap_or_else(|| {
        panic!(
            "KEYWAY_DELTA_FIXTURES is not set: build this firmware through scripts/qemu-delta.sh"
        )
    }));
    for name in ["old.bin", "patch.kwd"] {
        let from = dir.join(name);
        println!("cargo:rerun-if-changed={}", from.display());
        fs::copy(&from, out.join(name)).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
}
