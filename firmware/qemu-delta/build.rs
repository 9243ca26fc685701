//! Copies the fixtures scripts/qemu-delta.sh makes into OUT_DIR (the memory map comes
//! from keyway-board's `harness-map`).

fn main() {
    keyway_board_build::copy_fixtures(
        "KEYWAY_DELTA_FIXTURES",
        "scripts/qemu-delta.sh",
        &["old.bin", "patch.kwd"],
    );
}
