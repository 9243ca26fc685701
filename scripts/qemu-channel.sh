#!/usr/bin/env bash
# On-target run of the secure local channel: builds firmware/qemu-channel for
# Cortex-M4 (thumbv7em-none-eabihf) and runs it in QEMU (mps2-an386) with
# -icount shift=0. The firmware runs both roles in memory: a wrong setup code
# (refused), a full pairing with the right one (SPAKE2+, Pake1..Pake4), a
# session handshake (msg1..msg4) and one sealed request/response. Each of
# the LOCK's steps is counted in instructions (SysTick under -icount,
# calibrated on target) and its stack painted.
#
#   scripts/qemu-channel.sh      (no arguments)
#
# Built three times: both roles (the client live), lock only (the client's
# messages recorded on the host by build.rs with the same seeds and replayed;
# every message of either build must equal the host's bytes), and a baseline
# without the channel.
# Reports: instructions per lock step (lock-only run); the lock's code
# (.text+.rodata of the lock-only firmware minus the baseline) and that of
# both roles; the deepest lock call's stack
# (budget KEYWAY_CHANNEL_STACK_BUDGET, default 12288, compiled in and checked
# on target); and the handshake's and the pairing's time on the modeled BLE
# link of BENCHMARKS.md (10,000 B/s, MTU 244, 15 ms turnaround per response),
# every message in one SMP frame (8-byte SMP header + 6 bytes of CBOR
# wrapping assumed), lock CPU at 64 MHz taking one cycle per instruction.
# Budgets: KEYWAY_CHANNEL_CODE_BUDGET (default 98304 bytes).
# Needs: qemu-system-arm, awk, size (binutils) or llvm-size, nm, the pinned
# Rust toolchain with thumbv7em-none-eabihf.
set -euo pipefail

# shellcheck source=lib/qemu.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/qemu.sh"
budgets CHANNEL 98304 12288
# The BLE model (BENCHMARKS.md): bytes/s, turnaround per response (ms),
# framing per message (SMP header + CBOR wrapping), lock clock (Hz).
LINK_BPS=10000
TURNAROUND_MS=15
FRAMING=14
CLOCK_HZ=64000000

qemu_start "$@"

fw_variant channel
fw_variant lock-only --features lock-only
fw_variant baseline --features baseline
run_pass channel
run_pass lock-only
# Both builds run the same lock code on the same inputs: same counts.
diff <(grep '^lock step' "$OUT_DIR/channel.log" | sed 's/, stack.*//') \
     <(grep '^lock step' "$OUT_DIR/lock-only.log" | sed 's/, stack.*//') >/dev/null \
  || log "note: the lock's instruction counts differ between the two builds (inlining differs)"

lock_only_figures channel
CRATES='keyway_channel|curve25519_dalek|ed25519_dalek|ed25519|sha2|hkdf|hmac|pbkdf2|chacha20poly1305|chacha20|poly1305|universal_hash|aead|cipher|digest|hybrid_array|block_buffer|subtle'
sym=$(nm -S -C --radix=d "$OUT_DIR/lock-only.elf" | awk -v re="(^|[^A-Za-z0-9_])($CRATES)::" '
  NF >= 4 && $3 ~ /^[TtRr]$/ { name = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", name); if (name ~ re) s += $2 + 0 }
  END { print s+0 }')

awk -v code="$code" -v both="$both" -v full="$lockfw" -v base="$base" -v sym="$sym" -v budget="$CODE_BUDGET" \
    -v bps="$LINK_BPS" -v ta="$TURNAROUND_MS" -v framing="$FRAMING" -v hz="$CLOCK_HZ" "$STEP_AWK"'
  /^message bytes:/ { for (i = 3; i < NF; i += 2) len[$i] = $(i + 1)
    split(len["request"], rq, "+"); split(len["response"], rs, "+") }
  /^lock step / { step_row("lock step ") }
  /^deepest lock call:/ { deepest = $4 }
  END {
    printf "\nkeyway-channel on Cortex-M4 (opt-level z, LTO; %.0f instructions per SysTick tick, calibrated on target)\n", per_tick
    printf "%-32s %14s %10s\n", "lock step", "instructions", "stack (B)"
    for (i = 1; i <= n; i++) { ins[i] = ticks[i] * per_tick; printf "%-32s %14d %10d\n", names[i], ins[i], stack[i] }
    pair = ins[1] + ins[2]; hs = ins[3] + ins[4]
    printf "lock side of pairing: %d instructions (%.2f s at 64 MHz); of the handshake: %d instructions (%.3f s)\n", pair, pair / hz, hs, hs / hz
    printf "lock side code: %d B .text+.rodata (lock-only firmware %d minus baseline %d; budget %d); symbols of the channel crates in it (nm -S): %d B\n", code, full, base, budget, sym
    printf "both roles linked (the full build): %d B\n", both
    printf "deepest lock call: %d B of stack\n", deepest
    # BLE: handshake = 2 round trips (msg1/msg2, msg3/msg4); pairing = 3
    # (start/Params with an empty request, Pake1/Pake2, Pake3/Pake4).
    hb = len["msg1"] + len["msg2"] + len["msg3"] + len["msg4"] + 4 * framing
    pb = len["Params"] + len["Pake1"] + len["Pake2"] + len["Pake3"] + len["Pake4"] + 6 * framing
    hl = hb / bps; pl = pb / bps
    printf "BLE model, handshake: %d B on air (%.3f s) + 2 x %d ms turnaround + lock CPU %.3f s = %.3f s\n", hb, hl, ta, hs / hz, hl + 2 * ta / 1000 + hs / hz
    printf "BLE model, pairing: %d B on air (%.3f s) + 3 x %d ms turnaround + lock CPU %.3f s = %.3f s (plus the client'"'"'s PBKDF2)\n", pb, pl, ta, pair / hz, pl + 3 * ta / 1000 + pair / hz
    printf "BLE model, one request/response: %d + %d B of channel overhead on air (%.4f s)\n", rq[1], rs[1], (rq[1] + rs[1]) / bps
    if (code > budget) { printf "FAILED: channel code %d B over budget %d B\n", code, budget; exit 1 }
  }' "$OUT_DIR/lock-only.log" | tee "$OUT_DIR/summary.txt"
echo "qemu-channel: OK"
