//! Copies the fixtures scripts/qemu-boot.sh makes into OUT_DIR (the memory map comes
//! from keyway-board's `harness-map`).

fn main() {
    keyway_board_build::copy_fixtures(
        "KEYWAY_BOOT_FIXTURE_DIR",
        "scripts/qemu-boot.sh",
        &[
            "vendor-id.bin",
            "class-id.bin",
            "ed25519.pub",
            "v1.suit",
            "v2.suit",
        ],
    );
}
