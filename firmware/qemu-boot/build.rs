//! Puts memory.x on the linker search path and bakes in the fixture directory.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    // Fixtures are produced by scripts/qemu-boot.sh. Copy them into OUT_DIR
    // so that `include_bytes!` has a stable path and cargo rebuilds when a
    // fixture changes.
    println!("cargo:rerun-if-env-changed=KEYWAY_BOOT_FIXTURE_DIR");
    let dir = match env::var_os("KEYWAY_BOOT_FIXTURE_DIR") {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "KEYWAY_BOOT_FIXTURE_DIR is not set: build this firmware through scripts/qemu-boot.sh, \
             or point KEYWAY_BOOT_FIXTURE_DIR at a directory made by it (target/qemu-boot-fixture)"
        ),
    };
    for name in FIXTURES {
        let src = dir.join(name);
        println!("cargo:rerun-if-changed={}", src.display());
        let bytes =
            fs::read(&src).unwrap_or_else(|e| panic!("fixture {} missing: {e}", src.display()));
        fs::write(out.join(name), bytes).unwrap();
    }
}

const FIXTURES: &[&str] = &[
    "vendor-id.bin",
    "class-id.bin",
    "ed25519.pub",
    "v1.suit",
    "v2.suit",
];
