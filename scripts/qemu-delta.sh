#!/usr/bin/env bash
# On-target test of the delta-patch decoder: builds firmware/qemu-delta for
# Cortex-M4 (thumbv7em-none-eabihf) and runs it in QEMU (mps2-an386). The
# script makes a synthetic firmware-like pair (24,000 bytes; every 64th word
# shifted as relinked pointers are, 300 bytes inserted, a new tail) and its
# patch with the host's `keyway diff`; the firmware applies the patch from a
# RAM-backed NOR flash slot into another, in 244-byte pieces, and checks the
# output's SHA-256. Reports the decoder's code size (the firmware minus a
# baseline that copies the base instead), the stack of its calls (painted),
# and the instruction count from SysTick under `-icount shift=0`.
#
#   scripts/qemu-delta.sh      (no arguments)
#
# Budgets (bytes): KEYWAY_DELTA_CODE_BUDGET (default 8192) for the decoder's
# .text+.rodata; KEYWAY_DELTA_STACK_BUDGET (default 2048, compiled into the
# firmware and checked on target) for its calls.
# Needs: qemu-system-arm, awk, xxd, size (binutils) or llvm-size, the pinned
# Rust toolchain with thumbv7em-none-eabihf.
set -euo pipefail

# shellcheck source=lib/qemu.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/qemu.sh"
budgets DELTA 8192 2048

qemu_start "$@"

# 1. The pair (deterministic: Park-Miller, exact in awk's doubles) and its patch.
log "synthetic pair and patch (keyway diff)"
PAIR='BEGIN {
  x = 20231125; n = 24000
  for (i = 0; i < n; i++) { x = (x * 16807) % 2147483647; b[i] = int(x / 256) % 256 }
  if (which == "old") { for (i = 0; i < n; i++) printf "%02x", b[i]; exit }
  for (i = 0; i < n; i++) {
    if (i == n / 2) for (k = 0; k < 300; k++) { x = (x * 16807) % 2147483647; printf "%02x", int(x / 256) % 256 }
    v = b[i]; if (i % 256 == 0) v = (v + 4) % 256
    printf "%02x", v
  }
  printf "%s", "6b657977617920312e342e30"
}'
awk -v which=old "$PAIR" | xxd -r -p >"$OUT_DIR/old.bin"
awk -v which=new "$PAIR" | xxd -r -p >"$OUT_DIR/new.bin"
[[ $(stat -c %s "$OUT_DIR/old.bin") == 24000 && $(stat -c %s "$OUT_DIR/new.bin") == 24312 ]] \
  || die "the synthetic pair has the wrong sizes"
host_keyway
"$KEYWAY" diff "$OUT_DIR/old.bin" "$OUT_DIR/new.bin" -o "$OUT_DIR/patch.kwd" >&2

# 2. Build the firmware and its baseline.
export KEYWAY_DELTA_FIXTURES="$OUT_DIR"
fw_variant delta
fw_variant baseline --features baseline

# 3. Run it; -icount shift=0: one instruction = 1 ns of virtual time, which
# drives SysTick (25 MHz on this board), so a tick should be 40 instructions;
# the firmware calibrates it with a loop of a known instruction count.
run_pass delta "$OUT_DIR/run.log"

# 4. Figures.
figures delta
stack=$(grep -o 'flash writes): [0-9]*' "$OUT_DIR/run.log" | grep -o '[0-9]*$')
ticks=$(grep -o 'whole apply: [0-9]*' "$OUT_DIR/run.log" | grep -o '[0-9]*$')
copy=$(grep -o 'same flash writes: [0-9]*' "$OUT_DIR/run.log" | grep -o '[0-9]*$')
out=$(stat -c %s "$OUT_DIR/new.bin")
cal=$(grep -o 'for 2000000 instructions: [0-9]*' "$OUT_DIR/run.log" | grep -o '[0-9]*$')
per_tick=$(( (2000000 + cal / 2) / cal ))
decoder=$(( (ticks - copy) * per_tick ))
printf '\nkeyway-delta on Cortex-M4: decoder code %d B (firmware %d B minus baseline %d B; budget %d), stack of its calls %d B (budget %d) + 7,992 B of Patcher state\n' \
  "$code" "$full" "$base" "$CODE_BUDGET" "$stack" "$STACK_BUDGET"
printf 'apply of %d output bytes: %d SysTick ticks (%d instructions); copying the base with the same flash writes: %d ticks; the decoder: ~%d instructions, ~%d per output byte (icount: %d instructions a tick, calibrated on target)\n' \
  "$out" "$ticks" "$((ticks * per_tick))" "$copy" "$decoder" "$((decoder / out))" "$per_tick"
((code <= CODE_BUDGET)) || die "decoder code $code B over budget $CODE_BUDGET B"
