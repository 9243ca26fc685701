#!/usr/bin/env bash
# On-target run of the whole lock core: builds firmware/qemu-core for
# Cortex-M4 (thumbv7em-none-eabihf) and runs it in QEMU (mps2-an386) with
# -icount shift=0. The firmware drives one owner session through the lock
# core in memory, every frame through keyway-agent's Agent::handle with
# lock-core's Device (the one lock-app runs, without its image-state
# feature: installer, journal, boot, audit log), from the flash
# image the factory programs (build.rs makes it with the same crates on
# the host: v1 in slot 0, the pairing verifier): boot, the button, pairing with the setup
# code (a wrong code first; SPAKE2+; owner stored in the owner store,
# logged), a session handshake, the upload of a signed v2 as SMP
# image-upload frames sealed in session records (head verified, payload
# installed into slot 1), a replayed record refused, the release notes,
# the owner's consent (stored, then spent by arming the slot), the reboot (boot::boot: trial),
# confirm (floor 2), a new session and the log export (its head checked on
# target; here verified by `keyway log verify`). The client's frames are
# recorded on the host by build.rs and replayed.
#
#   scripts/qemu-core.sh      (no arguments)
#
# Reports, against the lock's budget (issue 12):
#   code = .text+.rodata of the `quiet` build (the same lock calls in the
#          same order, results through black_box, no checks or reports; it
#          must pass too) minus a baseline build (the same meter, prints,
#          RAM flash and every fixture, no lock core);
#          budget KEYWAY_CORE_CODE_BUDGET (default 131072 bytes);
#   RAM  = .data+.bss+.uninit statics of the quiet build + the peak of the
#          lock's RAM on the stack in its run (its state, buffers and calls,
#          painted; the emulated NOR flash and the client's export copy
#          excluded; the checked build's figure is printed too);
#          budget KEYWAY_CORE_RAM_BUDGET (default 32768 bytes);
# and a table per step: instructions (SysTick under -icount, calibrated on
# target), the call's stack and the lock's RAM on the stack.
# Exits non-zero if the firmware failed, the export does not verify on the
# host, or either figure is over budget.
# KEYWAY_QEMU_CORE_FIXTURES=DIR: use fixtures already in DIR. KEYWAY_BIN=PATH: a
# built `keyway` CLI (otherwise built here).
# Needs: qemu-system-arm, size (binutils) or llvm-size, nm, xxd, python3,
# the pinned Rust toolchain with thumbv7em-none-eabihf.
set -euo pipefail

# shellcheck source=lib/qemu.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/qemu.sh"
FIXTURE_DIR="${KEYWAY_QEMU_CORE_FIXTURES:-$ROOT/target/qemu-core-fixture}"
CODE_BUDGET="${KEYWAY_CORE_CODE_BUDGET:-131072}"
RAM_BUDGET="${KEYWAY_CORE_RAM_BUDGET:-32768}"
QEMU_TIMEOUT="${KEYWAY_QEMU_TIMEOUT:-300}"

qemu_start "$@"

# The host CLI (its own target dir; CARGO_TARGET_DIR is the firmware's).
# KEYWAY_BIN=PATH: use that `keyway` binary instead.
if [[ -n ${KEYWAY_BIN:-} ]]; then
  KEYWAY=$KEYWAY_BIN
else
  host_keyway
fi

# --- 1. fixtures --------------------------------------------------------------
# root.pub (the vendor's raw Ed25519 key), vendor-id.bin, class-id.bin,
# v1.suit and v2.suit (signed envelopes, sequence 1 and 2, 8 KiB payloads
# integrated), device.key/.pub (the lock's device key, `keyway keygen`) and
# device.seed (its raw 32-byte seed, for the firmware and build.rs).
make_fixtures() {
  rm -rf "$FIXTURE_DIR" && mkdir -p "$FIXTURE_DIR"
  local f="$FIXTURE_DIR" seed
  signed_releases "$f" "$f/root" qemu-core
  "$KEYWAY" keygen "$f/device" >&2
  seed=$(ed25519_seed_hex "$f/device.key")
  printf '%s' "$seed" | xxd -r -p >"$f/device.seed"
}
fixtures "${KEYWAY_QEMU_CORE_FIXTURES:-}"
for n in root.pub vendor-id.bin class-id.bin v1.suit v2.suit device.pub device.seed; do
  [[ -s "$FIXTURE_DIR/$n" ]] || die "fixture $n missing in $FIXTURE_DIR"
done
[[ $(stat -c %s "$FIXTURE_DIR/device.seed") == 32 ]] || die "device.seed is not 32 bytes"

# --- 2. build -----------------------------------------------------------------
# Source paths in panic locations are remapped, so the code figure does
# not depend on where the checkout or the cargo registry lives. Cargo
# appends these to the rustflags of firmware/qemu-core/.cargo/config.toml.
REMAP="target.$TRIPLE.rustflags=[\"--remap-path-prefix=$ROOT=/keyway\", \"--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo\"]"
export KEYWAY_CORE_FIXTURES="$FIXTURE_DIR"
fw_variant core --locked --config "$REMAP"
fw_variant quiet --locked --config "$REMAP" --features quiet
fw_variant baseline --locked --config "$REMAP" --features baseline

# --- 3. run -------------------------------------------------------------------
export QEMU_HIDE_HEX=1
run_pass core
run_pass quiet
run_pass baseline

# Every step of the session must have been checked on target.
EXPECTED=(
  '^ok factory: v1 (seq 1) in slot 0, confirmed; verifier stored; no owner$'
  '^ok boot: Slot(0) (Active), running seq 1$'
  '^ok wrong code: refused (BadSetupCode), counted in the owner store (1), no owner$'
  '^ok pair: owner "Alice", key id [0-9a-f]\{16\}, stored; Pake2, Pake4 as on the host$'
  '^ok session: msg2, msg4 as on the host$'
  '^ok upload: [0-9]* B in [0-9]* chunks of 512 B$'
  '^ok replay: the first upload record again is refused (RecordRefused), nothing changed$'
  '^ok notes: v1.2.0 (seq 2), its release notes served to the owner$'
  '^ok consent: given for seq 2 by the owner, spent by arming; journal Pending { slot: 1 }$'
  '^ok reboot: Slot(1) (StartTrial { slot: 1 }), running seq 2; owner reopened from the flash, no consent$'
  '^ok confirm: slot 1, floor 2, no consent$'
  '^ok session after the reboot: msg2, msg4 as on the host$'
  '^ok log export: [0-9]* B; head signed by the device over the chain head ([0-9]* events)$'
  '^ok refusal: a log request past the end gets an SMP error answer (rc 3)$'
)
for pattern in "${EXPECTED[@]}"; do
  grep -q -- "$pattern" "$OUT_DIR/core.log" || die "missing line in the firmware's output: $pattern"
done
log "all ${#EXPECTED[@]} checks of the session reported"

# --- 4. the export, verified on the host ---------------------------------------
sed -n '/^BEGIN EXPORT$/,/^END EXPORT$/p' "$OUT_DIR/core.log" | sed '1d;$d' | xxd -r -p >"$OUT_DIR/export.bin"
[[ -s "$OUT_DIR/export.bin" ]] || die "no export in the firmware's output"
"$KEYWAY" log verify "$OUT_DIR/export.bin" --device-key "$FIXTURE_DIR/device.pub" >"$OUT_DIR/verify.txt" \
  || die "keyway log verify refused the lock's export"
log "keyway log verify: the lock's export verifies with the device key"

# --- 5. judge -------------------------------------------------------------------
# Fixture parity: code = quiet - baseline holds no fixture bytes only if
# both images keep every fixture. (A quiet build that read only v2.suit's
# length dropped its 8,638 bytes, which the baseline keeps: the figure was
# that much too small.) Each input fixture and each message build.rs
# recorded must appear, whole, once in each image.
# The recorded messages: the newest build-script output (this run's).
RECORDED=$(ls -dt "$CARGO_TARGET_DIR/$TRIPLE/release/build"/qemu-core-*/out/session1.bin 2>/dev/null | head -n 1)
RECORDED=${RECORDED%/session1.bin}
[[ -n $RECORDED ]] || die "no recorded messages found under $CARGO_TARGET_DIR/$TRIPLE/release/build"
python3 - "$OUT_DIR/quiet.elf" "$OUT_DIR/baseline.elf" "$RECORDED" <<'PY' || die "fixture parity: the quiet and baseline images do not both hold every fixture"
import os, sys
images = {os.path.basename(p): open(p, "rb").read() for p in sys.argv[1:3]}
bad = 0
for name in sorted(os.listdir(sys.argv[3])):
    if not name.endswith((".bin", ".frame", ".suit", ".pub", ".seed", ".flash")):
        continue
    data = open(os.path.join(sys.argv[3], name), "rb").read()
    for image, blob in images.items():
        if len(data) >= 16 and data not in blob:
            print(f"fixture parity: {name} ({len(data)} B) is not in {image}")
            bad = 1
sys.exit(bad)
PY
log "fixture parity: every fixture is in both the quiet and the baseline image"
full=$(sect "$OUT_DIR/quiet.elf" '^\.(text|rodata)$')
checked=$(sect "$OUT_DIR/core.elf" '^\.(text|rodata)$')
base=$(sect "$OUT_DIR/baseline.elf" '^\.(text|rodata)$')
statics=$(sect "$OUT_DIR/quiet.elf" '^\.(data|bss|uninit)$')
code=$((full - base))
peak=$(sed -n 's/^lock RAM on stack, peak: \([0-9]*\) B.*/\1/p' "$OUT_DIR/quiet.log")
checked_peak=$(sed -n 's/^lock RAM on stack, peak: \([0-9]*\) B.*/\1/p' "$OUT_DIR/core.log")
[[ -n $peak && -n $checked_peak ]] || die "no stack figure in the firmware's output"
ram=$((statics + peak))
nm -S -C --size-sort --radix=d "$OUT_DIR/quiet.elf" | awk 'NF >= 4 && $3 ~ /^[TtRr]$/' | tail -n 25 >"$OUT_DIR/biggest.txt"
CRATES='keyway_channel|hkdf|hmac|pbkdf2|chacha20poly1305|chacha20|poly1305|universal_hash|aead|cipher|subtle|zeroize'
nm -S -C --radix=d "$OUT_DIR/quiet.elf" | awk -v chan="(^|[^A-Za-z0-9_])($CRATES)::" '
  NF >= 4 && $3 ~ /^[TtRr]$/ { name = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", name); s = $2 + 0
    if (name ~ /(^|[^A-Za-z0-9_])keyway_suit::/) c["keyway_suit"] += s
    else if (name ~ /(^|[^A-Za-z0-9_])(curve25519_dalek|ed25519_dalek|ed25519)::/) c["curve25519 (curve25519_dalek, ed25519_dalek)"] += s
    else if (name ~ /(^|[^A-Za-z0-9_])keyway_device::/) c["keyway_device"] += s
    else if (name ~ /(^|[^A-Za-z0-9_])keyway_audit::/) c["keyway_audit"] += s
    else if (name ~ /(^|[^A-Za-z0-9_])keyway_agent::|keyway_ring::/) c["keyway_agent+ring"] += s
    else if (name ~ /(^|[^A-Za-z0-9_])keyway_smp::/) c["keyway_smp"] += s
    else if (name ~ chan) c["channel (keyway_channel: SPAKE2+, X25519, SIGMA-I; AEAD, KDFs)"] += s
    else if (name ~ /(^|[^A-Za-z0-9_])(sha2|digest|block_buffer|hybrid_array)::/) c["sha2"] += s
    else if (name ~ /(^|[^A-Za-z0-9_])lock_core::/) c["the lock around the agent (lock_core::lock)"] += s
    else if (name ~ /(^|[^A-Za-z0-9_])core::fmt/) c["core::fmt"] += s
    else c["other (harness, compiler_builtins, unnamed)"] += s }
  END { for (k in c) printf "%8d  %s\n", c[k], k }' | sort -rn >"$OUT_DIR/by-crate.txt"

awk -v code="$code" -v full="$full" -v checked="$checked" -v base="$base" -v statics="$statics" -v peak="$peak" \
    -v ram="$ram" -v cpeak="$checked_peak" -v cb="$CODE_BUDGET" -v rb="$RAM_BUDGET" '
  /^SysTick ticks for 2000000 instructions:/ { per_tick = 2000000 / $NF }
  /^step / { line = $0; sub(/^step /, "", line); name = line; sub(/: [0-9]+ calls, .*/, "", name)
    c = line; sub(/.*: /, "", c); sub(/ calls.*/, "", c)
    t = line; sub(/.* calls, /, "", t); sub(/ ticks.*/, "", t)
    s = line; sub(/.*ticks, stack /, "", s); sub(/ B.*/, "", s)
    r = line; sub(/.*lock RAM on stack /, "", r); sub(/ B.*/, "", r)
    n++; names[n] = name; calls[n] = c; ticks[n] = t; stack[n] = s; rams[n] = r }
  /^lock RAM on stack, peak:/ { peak_step = $0; sub(/.*\(step /, "", peak_step); sub(/\)$/, "", peak_step) }
  END {
    printf "\nThe lock core on Cortex-M4 (opt-level z, LTO; %.0f instructions per SysTick tick, calibrated on target)\n", per_tick
    printf "%-48s %6s %14s %10s %14s\n", "step", "calls", "instructions", "stack (B)", "lock RAM (B)"
    for (i = 1; i <= n; i++) printf "%-48s %6d %14d %10d %14d\n", names[i], calls[i], ticks[i] * per_tick, stack[i], rams[i]
    printf "code: %d B .text+.rodata (quiet firmware %d minus baseline %d); budget %d B\n", code, full, base, cb
    printf "      (the checked firmware, with the harness'"'"'s checks and reports: %d B over the baseline)\n", checked - base
    printf "RAM: %d B = statics %d B (.data+.bss+.uninit) + lock RAM on the stack at its peak %d B (%s); budget %d B\n", ram, statics, peak, peak_step, rb
    printf "      (the checked firmware, whose frame also holds the checks'"'"' temporaries: %d B on the stack at its peak)\n", cpeak
    bad = 0
    if (code > cb) { printf "FAILED: code %d B over budget %d B\n", code, cb; bad = 1 }
    if (ram > rb) { printf "FAILED: RAM %d B over budget %d B\n", ram, rb; bad = 1 }
    exit bad
  }' "$OUT_DIR/quiet.log" | tee "$OUT_DIR/summary.txt"
status=${PIPESTATUS[0]}
echo "code by crate (nm -S symbols of the quiet firmware; LTO inlines across crates, unnamed constants in other):"
cat "$OUT_DIR/by-crate.txt"
echo "biggest symbols: $OUT_DIR/biggest.txt"
[[ $status == 0 ]] || { echo "qemu-core: FAILED (over budget)"; exit 1; }
echo "qemu-core: OK"
