#!/usr/bin/env bash
# On-target test of the audit log: builds firmware/qemu-audit for Cortex-M4
# (thumbv7em-none-eabihf) and runs it in QEMU (mps2-an386). The firmware
# appends 300 events to a keyway-audit log on a RAM-backed 4 x 4 KiB NOR
# flash (the ring wraps; checkpoints are signed on the device), reopens it,
# and exports it; this script then verifies the export with the host's
# `keyway log verify` against the device key made by `keyway keygen`, checks
# that a tampered copy is refused, and reports code size and stack.
#
#   scripts/qemu-audit.sh      (no arguments)
#
# Budgets (bytes; override for experiments): KEYWAY_AUDIT_CODE_BUDGET
# (default 32768) for .text+.rodata of the firmware minus a baseline build
# without the log; KEYWAY_AUDIT_STACK_BUDGET (default 9216, compiled into the
# firmware and checked on target) for any one call (Ed25519 signing with
# ed25519-compact's `opt_size` dominates).
# Needs: qemu-system-arm, size (binutils) or llvm-size, xxd, base64, the
# pinned Rust toolchain with thumbv7em-none-eabihf.
set -euo pipefail

# shellcheck source=lib/qemu.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/qemu.sh"
budgets AUDIT 32768 9216

qemu_start "$@"

# 1. The device key, as a lock would make it at provisioning.
log "device key (keyway keygen)"
host_keyway
"$KEYWAY" keygen "$OUT_DIR/device" >&2
KEYWAY_AUDIT_SEED=$(ed25519_seed_hex "$OUT_DIR/device.key")

# 2. Build the firmware and its baseline.
export KEYWAY_AUDIT_SEED
# The device key on ed25519-dalek (the firmware's default feature
# curve25519, the lock core's backend); KEYWAY_AUDIT_COMPACT=1: on
# ed25519-compact instead, for comparison.
if [[ ${KEYWAY_AUDIT_COMPACT:-} == 1 ]]; then
  EXTRA=compact
  fw_variant audit --no-default-features --features "$EXTRA"
  fw_variant baseline --no-default-features --features "baseline,$EXTRA"
else
  fw_variant audit
  fw_variant baseline --features baseline
fi

# 3. Run it.
log "running on QEMU mps2-an386"
rc=0
QEMU_HIDE_HEX=1 KEYWAY_QEMU_ICOUNT=0 run_qemu "$OUT_DIR/audit.elf" "$OUT_DIR/run.log" || rc=$?
[[ $rc == 124 ]] && die "QEMU timed out after ${QEMU_TIMEOUT}s"
[[ $rc == 0 ]] || die "the firmware reported a failure (exit $rc)"

# 4. Verify the device's export on the host.
sed -n '/^BEGIN EXPORT$/,/^END EXPORT$/p' "$OUT_DIR/run.log" | sed '1d;$d' | xxd -r -p >"$OUT_DIR/export.bin"
[[ -s "$OUT_DIR/export.bin" ]] || die "no export in the firmware's output"
"$KEYWAY" log verify "$OUT_DIR/export.bin" --device-key "$OUT_DIR/device.pub" \
  || die "keyway log verify refused the device's export"
cp "$OUT_DIR/export.bin" "$OUT_DIR/tampered.bin"
# Flip every bit of byte 700 (a fixed value would leave the copy unchanged
# whenever the export already holds it there: the device key is new each run).
python3 - "$OUT_DIR/tampered.bin" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(700)
    b = f.read(1)
    f.seek(700)
    f.write(bytes([b[0] ^ 0xFF]))
PY
cmp -s "$OUT_DIR/export.bin" "$OUT_DIR/tampered.bin" && die "the tampered copy equals the export"
if "$KEYWAY" log verify "$OUT_DIR/tampered.bin" --device-key "$OUT_DIR/device.pub" >/dev/null 2>&1; then
  die "keyway log verify accepted a tampered export"
fi

# 5. Code size.
figures audit
stack=$(grep -o 'with checkpoint signing): [0-9]*' "$OUT_DIR/run.log" | grep -o '[0-9]*$')
printf '\nkeyway-audit on Cortex-M4: code %d B (budget %d), worst stack %d B (budget %d); export verified by keyway log verify, tampered copy refused\n' \
  "$code" "$CODE_BUDGET" "$stack" "$STACK_BUDGET"
((code <= CODE_BUDGET)) || die "code $code B over budget $CODE_BUDGET B"
