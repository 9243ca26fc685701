#!/usr/bin/env bash
# The boot chain on the emulated lock (QEMU mps2-an386, Cortex-M4):
# firmware/lock-boot (the bootloader) and a small signed test application
# (firmware/lock-boot/test-app), over the board's persistent flash file.
#
#  0. keyway-board's drivers: the semihosting flash keeps NOR rules, persists
#     across QEMU runs and tears a write at the armed power cut (exit 3);
#  1. an empty flash: the bootloader enters serial recovery; a tampered
#     envelope uploaded over the pty (UART0, MCUmgr serial transport) is
#     refused and leaves nothing bootable;
#  1b. the power is cut (the flash driver's counter: QEMU exits 3, the
#     interrupted write torn) in the middle of a recovery upload; the next
#     boot does not jump to the half-written slot: recovery again;
#  2. the signed image (the test application padded to 300 KiB) is uploaded
#     over the pty; the client asks for a reset; the bootloader verifies the
#     slot in RAM, jumps, and the application runs (checks its own VTOR and
#     address, exits 0);
#  3. the same flash, a new QEMU run: the application runs again
#     (persistence); this boot's time, reset to jump, is counted in
#     instructions (-icount shift=0, SysTick calibrated);
#  4. one bit of the installed image flipped in the flash file: the
#     bootloader does not jump (it falls to recovery);
#  5. a signed image of random bytes (verifies, but has no vector table): the
#     bootloader does not jump to it.
# Then the bootloader's code size with its serial recovery, by crate, against
# KEYWAY_BOOT_CODE_BUDGET (65536).
#
# Needs: qemu-system-arm, python3, llvm-objcopy or objcopy, size, nm.
set -euo pipefail
# shellcheck source=lib/qemu.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/qemu.sh"

OUT="$ROOT/target/qemu-boot-chain"
FIX="$OUT/fixture"
CODE_BUDGET="${KEYWAY_BOOT_CODE_BUDGET:-65536}"
IMAGE_BYTES=$((300 * 1024))
VENDOR_DOMAIN=keyway.example
DEVICE_CLASS=lock-qemu
ensure_qemu
rm -rf "$OUT" && mkdir -p "$FIX"

# --- fixtures: the vendor key, the device ids -------------------------------
host_keyway
"$KEYWAY" keygen "$FIX/vendor" --alg ed25519 >&2
raw_ed25519_pub "$FIX/vendor.pub" "$FIX/root.pub"
device_ids "$VENDOR_DOMAIN" "$DEVICE_CLASS" "$FIX"

# --- builds -----------------------------------------------------------------
export KEYWAY_LOCK_FIXTURES="$FIX"
fw_build lock-boot lock-boot "$OUT/lock-boot.elf"
fw_build lock-boot/test-app lock-boot-test-app "$OUT/app.elf"
fw_build keyway-board examples/flash_rules "$OUT/flash-rules.elf" --example flash_rules --features harness-map
OBJCOPY=$(command -v llvm-objcopy || command -v objcopy) || die "no objcopy"
"$OBJCOPY" -O binary "$OUT/app.elf" "$OUT/app.bin"
app_bytes=$(stat -c %s "$OUT/app.bin")
# The image: the application, then random bytes up to 300 KiB (signed,
# copied and hashed like code; never executed).
cp "$OUT/app.bin" "$OUT/image.bin"
head -c $((IMAGE_BYTES - app_bytes)) /dev/urandom >>"$OUT/image.bin"
printf '# 1.0.1\n\nBoot-chain test application.\n' >"$OUT/notes.md"
"$KEYWAY" sign --firmware "$OUT/image.bin" --version 1.0.1 --sequence 1 \
  --vendor-domain "$VENDOR_DOMAIN" --class "$DEVICE_CLASS" --vendor-name "Keyway CI" \
  --notes "$OUT/notes.md" --key "$FIX/vendor.key" -o "$OUT/image.suit" >&2 || die "signing failed"
# A signed image that is not an application (random bytes: no vector table).
head -c 4096 /dev/urandom >"$OUT/random.bin"
"$KEYWAY" sign --firmware "$OUT/random.bin" --version 1.0.1 --sequence 1 \
  --vendor-domain "$VENDOR_DOMAIN" --class "$DEVICE_CLASS" --vendor-name "Keyway CI" \
  --notes "$OUT/notes.md" --key "$FIX/vendor.key" -o "$OUT/random.suit" >&2 || die "signing failed"
# A tampered copy: the last payload byte flipped (the signature still holds
# for the manifest; the digest does not).
python3 - "$OUT/image.suit" "$OUT/tampered.suit" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[-1] ^= 1
open(sys.argv[2], "wb").write(b)
PY

# --- 0. the flash driver ----------------------------------------------------
log "0. keyway-board's semihosting flash: rules, persistence, power cut"
rm -f "$OUT/rules.bin"
for phase in 1 2 3 4; do
  extra=(); [[ $phase == 3 ]] && extra=(,arg=cut=1)
  rc=0
  KEYWAY_QEMU_ICOUNT=0 run_qemu "$OUT/flash-rules.elf" "$OUT/rules-$phase.log" \
    -semihosting-config "enable=on,target=native,arg=flash=$OUT/rules.bin,arg=phase=$phase${extra[*]:-}" || rc=$?
  want=0; [[ $phase == 3 ]] && want=3
  [[ $rc == "$want" ]] || die "flash rules phase $phase: QEMU exit $rc, wanted $want"
done

# --- a bootloader run with UART0 on a pty ------------------------------------
# boot_run NAME FLASH [client args...]: starts QEMU in the background (with
# ICOUNT=1 under -icount shift=0, for the boot-time figure: the pty then
# delivers only a few KB/s, so the uploads run without it), and
# if client args are given runs the SMP client on the pty; waits for QEMU
# (the application exits it) or, with WAIT_FOR=REGEX, until the log matches
# and then stops QEMU. Leaves NAME.log; sets RC.
boot_run() {
  local name=$1 flash=$2 pid pty="" i icount=()
  shift 2
  [[ -n ${ICOUNT:-} ]] && icount=(-icount shift=0)
  timeout "$QEMU_TIMEOUT" qemu-system-arm -machine mps2-an386 -cpu cortex-m4 "${icount[@]}" \
    -nographic -monitor none -serial pty \
    -semihosting-config "enable=on,target=native,arg=flash=$flash${ICOUNT:+,arg=calibrate=1}${CUT:+,arg=cut=$CUT}" \
    -kernel "$OUT/lock-boot.elf" </dev/null >"$OUT/$name.log" 2>"$OUT/$name.err" &
  pid=$!
  for i in $(seq 100); do
    pty=$( { cat "$OUT/$name.err" "$OUT/$name.log" 2>/dev/null || true; } | sed -n 's|.*char device redirected to \(/dev/pts/[0-9]*\).*|\1|p' | head -1)
    [[ -n $pty ]] && break
    sleep 0.1
  done
  [[ -n $pty ]] || { kill "$pid" 2>/dev/null; die "$name: QEMU gave no pty"; }
  if (($#)); then
    python3 "$ROOT/scripts/smp_serial_upload.py" "$pty" "$@" | tee "$OUT/$name.client" \
      || { kill "$pid" 2>/dev/null; cat "$OUT/$name.log"; die "$name: the SMP client failed"; }
  fi
  if [[ -n ${WAIT_FOR:-} ]]; then
    for i in $(seq 300); do
      grep -qE "$WAIT_FOR" "$OUT/$name.log" && break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
  fi
  RC=0
  wait "$pid" || RC=$?
  cat "$OUT/$name.log"
}

FLASH="$OUT/flash.bin"
RECOVERY='serial recovery on UART0'
log "1. empty flash: recovery; a tampered envelope is refused"
WAIT_FOR="$RECOVERY" boot_run recovery-tampered "$FLASH" "$OUT/tampered.suit" --expect-refusal --no-reset
grep -q "$RECOVERY" "$OUT/recovery-tampered.log" || die "an empty flash did not enter recovery"

log "1b. the power cut during a recovery upload (after 60 flash operations), then a boot: no jump"
CUT=60 WAIT_FOR='' boot_run recovery-cut "$FLASH" "$OUT/image.suit" --power-cut
[[ $RC == 3 ]] || die "the power cut did not end the run (QEMU exit $RC, wanted 3)"
grep -q 'POWER CUT' "$OUT/recovery-cut.log" || die "no power cut in the log"
WAIT_FOR="$RECOVERY" boot_run after-cut "$FLASH"
grep -q 'lock-boot-test-app: running' "$OUT/after-cut.log" && die "the bootloader jumped to a half-written image"
grep -q "$RECOVERY" "$OUT/after-cut.log" || die "the boot after the cut did not enter recovery"

log "2. the signed image uploaded over the serial pty, reset, boot"
WAIT_FOR='' boot_run recovery-upload "$FLASH" "$OUT/image.suit"
[[ $RC == 0 ]] || die "the boot after the recovery upload failed (QEMU exit $RC)"
grep -q 'lock-boot-test-app: running' "$OUT/recovery-upload.log" || die "the application did not run"
grep -q '^PASS\|^FAIL' "$OUT/recovery-upload.log" && die "unexpected output"

log "3. the same flash, a new QEMU run: the application runs again"
ICOUNT=1 WAIT_FOR='' boot_run reboot "$FLASH"
[[ $RC == 0 ]] || die "the second boot failed (QEMU exit $RC)"
grep -q 'lock-boot-test-app: running' "$OUT/reboot.log" || die "the application did not run after a restart"

log "4. one bit of the installed image flipped in the flash file: no jump"
slot=$(sed -n 's/.*lock-boot: slot \([01]\) .*/\1/p' "$OUT/reboot.log" | head -1)
[[ -n $slot ]] || die "no slot in the boot log"
python3 - "$FLASH" "$slot" <<'PY'
import sys
path, slot = sys.argv[1], int(sys.argv[2])
offset = (2 + 96 * slot) * 4096 + 1000  # keyway_board::map: SLOT0 = page 2, 96 pages a slot
b = bytearray(open(path, "rb").read()); b[offset] ^= 0x01
open(path, "wb").write(b)
PY
WAIT_FOR="$RECOVERY" boot_run tampered "$FLASH"
grep -q 'lock-boot-test-app: running' "$OUT/tampered.log" && die "the bootloader jumped to a tampered image"
grep -q "$RECOVERY" "$OUT/tampered.log" || die "a tampered image did not lead to recovery"

log "5. a signed image that is not an application (no vector table): verified, but not jumped to"
WAIT_FOR="vector table" boot_run not-an-app "$OUT/flash-random.bin" "$OUT/random.suit"
grep -q "the image's vector table is not an application's" "$OUT/not-an-app.log" \
  || die "the bootloader did not refuse an image without a vector table"

# --- figures ----------------------------------------------------------------
code=$(code_bytes "$OUT/lock-boot.elf")
by_crate "$OUT/lock-boot.elf" \
  'keyway_suit=(^|[^A-Za-z0-9_])keyway_suit::' \
  'curve25519 (curve25519_dalek, ed25519_dalek)=(^|[^A-Za-z0-9_])(curve25519_dalek|ed25519_dalek|ed25519)::' \
  'sha2=(^|[^A-Za-z0-9_])(sha2|digest|block_buffer|hybrid_array)::' \
  'keyway_device (journal, installer, boot, VerifiedSlot)=(^|[^A-Za-z0-9_])keyway_device::' \
  'keyway_smp (SMP, CBOR, serial codec)=(^|[^A-Za-z0-9_])keyway_smp::' \
  'lock_boot (RAM load, recovery server)=(^|[^A-Za-z0-9_])lock_boot::' \
  'keyway_board (semihosting flash, UART, meter)=(^|[^A-Za-z0-9_])(keyway_board|cortex_m_semihosting|cortex_m)::' \
  'core::fmt (the log lines)=(^|[^A-Za-z0-9_])core::fmt' >"$OUT/by-crate.txt"
awk '/^SysTick ticks for 2000000 instructions:/ { per = 2000000 / $NF }
  /lock-boot: slot .* boot: [0-9]+ ticks/ { t = $NF; sub(/ ticks/, "", t); for (i = 1; i <= NF; i++) if ($i == "boot:") t = $(i + 1) }
  END { if (per && t) printf "boot time, reset to the jump, 300 KiB image: %d instructions (%.0f per SysTick tick)\n", t * per, per }' \
  "$OUT/reboot.log" | tee "$OUT/summary.txt"
printf 'lock-boot code: %d B .text+.rodata (with serial recovery); budget %d B\n' "$code" "$CODE_BUDGET" | tee -a "$OUT/summary.txt"
echo "code by crate (nm -S; LTO inlines across crates, unnamed constants in other):"
cat "$OUT/by-crate.txt"
((code <= CODE_BUDGET)) || die "the bootloader's code is over budget ($code > $CODE_BUDGET B)"
echo "qemu-boot-chain: OK"
