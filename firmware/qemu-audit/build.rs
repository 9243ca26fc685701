//! Bakes in the device key seed.
use std::{env, fs};

fn main() {
    let out = keyway_board_build::out_dir();
    // The device key's 32-byte seed, as 64 hex digits (scripts/qemu-audit.sh
    // takes it from a `keyway keygen` PKCS#8 file).
    println!("cargo:rerun-if-env-changed=KEYWAY_AUDIT_SEED");
    let hex = env::var("KEYWAY_AUDIT_SEED").unwrap_or_else(|_| {
        panic!("KEYWAY_AUDIT_SEED is not set: build this firmware through scripts/qemu-audit.sh")
    });
    assert_eq!(hex.len(), 64, "KEYWAY_AUDIT_SEED must be 64 hex digits");
    let seed: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    fs::write(out.join("seed.bin"), seed).unwrap();
    println!("cargo:rerun-if-env-changed=KEYWAY_AUDIT_STACK_BUDGET");
}
