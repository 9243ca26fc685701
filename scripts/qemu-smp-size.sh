#!/usr/bin/env bash
# keyway-smp on an emulated Cortex-M4 (QEMU mps2-an386): a firmware decodes
# a request of each kind, answers it (successes and a typed refusal), and
# decodes the answers; it must exit with success. Then the crate's code
# size: .text + .rodata of that firmware less a baseline build without the
# keyway-smp calls, for both sides and for the lock's side alone.
# Needs: qemu-system-arm, size (binutils) or llvm-size.
set -euo pipefail
cd "$(dirname "$0")/../firmware/smp-size"
die() { echo "qemu-smp-size: FAIL: $*" >&2; exit 1; }
cargo build -q --release --locked
cargo build -q --release --locked --features baseline --target-dir target/baseline
cargo build -q --release --locked --features lock-only --target-dir target/lock-only
ELF=target/thumbv7em-none-eabihf/release/smp-size
timeout 120 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
  -semihosting-config enable=on,target=native -kernel "$ELF" || die "the firmware failed"
SIZE_TOOL=$(command -v size || command -v llvm-size) || die "no size tool"
code_bytes() { "$SIZE_TOOL" -A "$1" | awk '$1==".text" || $1==".rodata" { s += $2 } END { print s+0 }'; }
full=$(code_bytes "$ELF")
base=$(code_bytes target/baseline/thumbv7em-none-eabihf/release/smp-size)
lock=$(code_bytes target/lock-only/thumbv7em-none-eabihf/release/smp-size)
printf 'keyway-smp on Cortex-M4: code %d B for both sides (lock and client), %d B for the lock side (decode requests, encode answers and refusals)\n' \
  "$((full - base))" "$((lock - base))"
