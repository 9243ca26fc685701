#!/usr/bin/env bash
# On-target test of the bootloader's decision logic: builds firmware/qemu-boot
# for Cortex-M4 (thumbv7em-none-eabihf, keyway-device with Ed25519) and runs
# it in QEMU (mps2-an386) over a RAM-backed NOR flash: a factory image, a
# boot, an update's trial, a failed self-test and its revert, a second trial
# that confirms (floor raised), and a tampered slot that must not boot; then
# swap mode on a second RAM flash: the update staged in the secondary, swapped
# into the primary (one erase per moved sector per slot) and tried, swapped
# back after a failed self-test, staged again, its swap cut off halfway by a
# power cut and resumed after the reset, confirmed.
#
#   scripts/qemu-boot.sh     (no arguments)
#
# Steps: 1. fixtures -> target/qemu-boot-fixture/ (host CLI: one Ed25519 key,
#           v1 with sequence 1 and v2 with sequence 2, random 8 KiB payloads)
#        2. build the firmware (release)
#        3. run it under QEMU with a timeout; the exit status must be success
#           and every expected line must be in the log
#        4. print a summary with the firmware's code size
# KEYWAY_QEMU_BOOT_FIXTURES=DIR: use fixtures already in DIR instead.
# Needs: qemu-system-arm, size (binutils) or llvm-size, python3, the pinned
# Rust toolchain with thumbv7em-none-eabihf.
set -euo pipefail

# shellcheck source=lib/qemu.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/qemu.sh"
FIXTURE_DIR="${KEYWAY_QEMU_BOOT_FIXTURES:-$ROOT/target/qemu-boot-fixture}"

[[ $# == 0 ]] || { echo "usage: $0" >&2; exit 2; }


# --- 1. fixtures -------------------------------------------------------------
# Leaves in $FIXTURE_DIR: ed25519.pub (32 raw bytes), vendor-id.bin and
# class-id.bin (16-byte UUIDs as FORMAT.md defines them), v1.suit and v2.suit
# (signed envelopes with the payload integrated).
make_fixtures() {
  rm -rf "$FIXTURE_DIR"
  mkdir -p "$FIXTURE_DIR"
  # The host workspace's own target dir (CARGO_TARGET_DIR above is the firmware's).
  host_keyway
  signed_releases "$FIXTURE_DIR" "$FIXTURE_DIR/ed25519" qemu-boot
}

check_fixtures() {
  local n
  for n in ed25519.pub vendor-id.bin class-id.bin v1.suit v2.suit; do
    [[ -s "$FIXTURE_DIR/$n" ]] || die "fixture $n was not produced"
  done
  [[ $(stat -c %s "$FIXTURE_DIR/ed25519.pub") == 32 ]] || die "ed25519.pub is not 32 bytes"
  [[ $(stat -c %s "$FIXTURE_DIR/vendor-id.bin") == 16 ]] || die "vendor-id.bin is not 16 bytes"
  [[ $(stat -c %s "$FIXTURE_DIR/class-id.bin") == 16 ]] || die "class-id.bin is not 16 bytes"
}

# --- 3. run ------------------------------------------------------------------

# The lines the firmware must print (each a check it asserted on target).
EXPECTED=(
  '^ok    nor rules: '
  '^ok    factory: v1 (seq 1) installed in slot 0; journal: active 0, Confirmed, floor Some(1)$'
  '^ok    boot: Slot(0) (Active), nothing committed$'
  '^ok    install v2: seq 2 in slot 1 .*; journal Pending { slot: 1 }$'
  '^ok    trial: Slot(1) (StartTrial { slot: 1, attempts_left: 3 }); slot 1 verified: seq Ok(2)$'
  '^ok    self-test fails: confirm: slot 1 self-test failed (motor false, '
  '^ok    revert: Slot(0) (Reverted { slot: 1, cause: AttemptsExhausted }); journal: active 0, floor Some(1)$'
  '^ok    trial again: v2 reinstalled in slot 1; Slot(1) (StartTrial '
  '^ok    confirm: Ok(1) (slot 1 confirmed); journal: active 1, Confirmed, floor Some(2)$'
  '^ok    boot v2: Slot(1) (Active), nothing committed$'
  '^ok    tamper: .*: Recovery (NoVerifiedSlot); slot 1: slot: image: .*; slot 0: slot: seq 1 < floor 2 (boot rule)$'
  '^ok    swap factory: v1 (seq 1) in the primary (slot 0); journal: active 0, Confirmed, floor Some(1); swap::boot: Slot(0) (Active)$'
  '^ok    swap stage: seq 2 staged in slot 1 .*; journal Pending { slot: 1 }, swap Some(Staged)$'
  '^ok    swap: Slot(0) (StartTrial { slot: 0, attempts_left: 3 }); primary verified: seq Ok(2); 3 sectors moved, erases per sector: primary \[1, 1, 0, 1\], secondary \[1, 1, 1, 0, 0\], '
  '^ok    swap self-test fails: confirm: slot 0 self-test failed (motor false, '
  '^ok    swap back: Slot(0) (Reverted { slot: 0, cause: AttemptsExhausted }); primary verified: seq Ok(1); journal: swap None, floor Some(1)$'
  '^ok    swap power cut: v2 staged again; cut after [0-9][0-9]* of [0-9][0-9]* flash ops: .*PowerCut.*; journal swap Some(Swapping { step: [1-9]'
  '^ok    swap resumed: Slot(0) (StartTrial { slot: 0, attempts_left: 3 }); primary verified: seq Ok(2); journal swap Some(Swapped)$'
  '^ok    swap confirm: Ok(0) (primary confirmed); journal: active 0, Confirmed, floor Some(2)$'
  '^ok    swap boot v2: Slot(0) (Active), nothing committed$'
  '^qemu-boot: 20 checks passed$'
)

main() {
  ensure_qemu
  local size_tool
  size_tool=$(command -v size || command -v llvm-size || command -v arm-none-eabi-size || true)
  [[ -n $size_tool ]] || die "no size tool (binutils 'size' or llvm-size)"
  mkdir -p "$OUT_DIR"

  fixtures "${KEYWAY_QEMU_BOOT_FIXTURES:-}"
  check_fixtures

  # --- 2. build --------------------------------------------------------------
  KEYWAY_BOOT_FIXTURE_DIR="$FIXTURE_DIR" fw_variant qemu-boot --locked
  local elf="$OUT_DIR/qemu-boot.elf" logf="$OUT_DIR/qemu-boot.log"

  log "running under QEMU (timeout ${QEMU_TIMEOUT}s)"
  local rc
  rc=0
  KEYWAY_QEMU_ICOUNT=0 run_qemu "$elf" "$logf" || rc=$?
  [[ $rc == 124 ]] && die "QEMU timed out after ${QEMU_TIMEOUT}s (see $logf)"

  # --- 4. judge and report ---------------------------------------------------
  local fail=0 pattern
  [[ $rc == 0 ]] || { echo "qemu-boot: firmware exit status $rc (see $logf)"; fail=1; }
  for pattern in "${EXPECTED[@]}"; do
    grep -q -- "$pattern" "$logf" || { echo "qemu-boot: missing line: $pattern"; fail=1; }
  done
  local text rodata
  text=$("$size_tool" -A "$elf" | awk '$1==".text" { print $2 }')
  rodata=$("$size_tool" -A "$elf" | awk '$1==".rodata" { print $2 }')
  echo
  echo "qemu-boot summary (Cortex-M4, opt-level z, LTO, keyway-device + Ed25519; direct A/B and swap mode)"
  echo "firmware: .text $text bytes, .rodata $rodata bytes (includes the two 8 KiB fixture envelopes)"
  if command -v nm >/dev/null; then
    # Symbols by crate (nm -S): a lower bound for keyway-device, as LTO
    # inlines some of its functions into the harness's.
    nm -S -C --radix=d "$elf" | awk '
      NF >= 4 && $3 ~ /^[TtRr]$/ { name = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", name)
        if (name ~ /(^|[^A-Za-z0-9_])keyway_device::/) dev += $2
        else if (name ~ /(^|[^A-Za-z0-9_])(keyway_suit|ed25519_compact|sha2|digest|heapless|hybrid_array|block_buffer)::/) ver += $2 }
      END { printf "symbols: keyway_device %d bytes, verifier crates (keyway_suit, ed25519_compact, sha2, ...) %d bytes\n", dev, ver }'
  fi
  "$size_tool" -A "$elf" | awk 'NR<=2 || $1 ~ /^\.(vector_table|text|rodata|data|bss|uninit)$/'
  grep -E '^(flash|swap flash|qemu-boot): ' "$logf" || true
  if [[ $fail == 0 ]]; then echo "qemu-boot: OK"; else echo "qemu-boot: FAILED"; fi
  return "$fail"
}

main
