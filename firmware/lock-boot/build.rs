//! Copies the device's trust fixtures into OUT_DIR: the vendor's raw
//! Ed25519 public key and the vendor and class ids
//! (scripts/qemu-boot-chain.sh makes them with `keyway keygen`).

fn main() {
    keyway_board_build::copy_fixtures(
        "KEYWAY_LOCK_FIXTURES",
        "scripts/qemu-boot-chain.sh",
        &["root.pub", "vendor-id.bin", "class-id.bin"],
    );
}
