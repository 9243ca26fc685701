#!/usr/bin/env bash
# keyway-smp on an emulated Cortex-M4 (QEMU mps2-an386): a firmware decodes
# a request of each kind, answers it (successes and a typed refusal), and
# decodes the answers; it must exit with success. Then the crate's code
# size: .text + .rodata of that firmware less a baseline build without the
# keyway-smp calls, for both sides and for the lock's side alone.
# Needs: qemu-system-arm, size (binutils) or llvm-size.
set -euo pipefail
QEMU_NAME=qemu-smp-size
# shellcheck source=lib/qemu.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/qemu.sh"
# This project keeps its own target dirs (target/, target/baseline, target/lock-only).
unset CARGO_TARGET_DIR
cd "$ROOT/firmware/smp-size"
cargo build -q --release --locked
cargo build -q --release --locked --features baseline --target-dir target/baseline
cargo build -q --release --locked --features lock-only --target-dir target/lock-only
ELF=target/thumbv7em-none-eabihf/release/smp-size
mkdir -p target
KEYWAY_QEMU_ICOUNT=0 run_qemu "$ELF" target/run.log || die "the firmware failed"
full=$(code_bytes "$ELF")
base=$(code_bytes target/baseline/thumbv7em-none-eabihf/release/smp-size)
lock=$(code_bytes target/lock-only/thumbv7em-none-eabihf/release/smp-size)
printf 'keyway-smp on Cortex-M4: code %d B for both sides (lock and client), %d B for the lock side (decode requests, encode answers and refusals)\n' \
  "$((full - base))" "$((lock - base))"
