//! Copies the fixtures scripts/qemu-verify.sh makes into OUT_DIR (the memory map comes
//! from keyway-board's `harness-map`).

fn main() {
    keyway_board_build::rerun_on_env(&["KEYWAY_STACK_BUDGET"]);
    keyway_board_build::copy_fixtures(
        "KEYWAY_FIXTURE_DIR",
        "scripts/qemu-verify.sh",
        &[
            "vendor-id.bin",
            "class-id.bin",
            "sequence.txt",
            "payload.bin",
            "ed25519.pub",
            "ed25519.suit",
            "p256.pub",
            "p256.suit",
        ],
    );
}
