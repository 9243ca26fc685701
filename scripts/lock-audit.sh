#!/usr/bin/env bash
# `keyway audit` against the emulated lock (issue 17): a freshly provisioned
# lock (scripts/qemu-lock.sh DIR: lock-boot + lock-app 1.0.0 on QEMU
# mps2-an386), kept running across the power cuts the audit makes (each
# cut ends QEMU; it is started again on the same flash file), audited over
# its serial SMP port and its control channel:
#
#   keyway audit --target serial:DIR/serial --control DIR/ctl \
#     --vendor-key DIR/vendor/root.key --vendor-domain example.invalid \
#     --class keyway-qemu-lock --device-key DIR/device.pub --pin 1234 \
#     --image DIR/vendor/lock-app-1.0.0.bin --json
#
# Prints the scorecard (one line a check) and the time; exits non-zero
# unless every check is PASS, or N/A where the audit says the check has no
# subject on a serial line. Work dir: target/lock-audit
# (KEYWAY_LOCK_AUDIT_DIR): DIR is lock/, the report audit.json, the
# audit's files out/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/lock.sh
. "$ROOT/scripts/lib/lock.sh"
WORK="${KEYWAY_LOCK_AUDIT_DIR:-$ROOT/target/lock-audit}"
L="$WORK/lock"
die() { printf 'lock-audit: FAIL: %s\n' "$*" >&2; [[ -f $L/qemu.log ]] && tail -15 "$L/qemu.log" >&2; exit 1; }
command -v qemu-system-arm >/dev/null || die "qemu-system-arm not found"

rm -rf "$WORK" && mkdir -p "$WORK"
lock_host_tools
export KEYWAY_BIN="$KEYWAY"
trap 'lock_loop_stop "$L"' EXIT
lock_log "provisioning and starting the emulated lock in $L"
lock_loop_start "$L"
lock_loop_wait "$L" 600

lock_log "keyway audit --target serial:$L/serial (the report: $WORK/audit.json)"
t0=$(date +%s)
rc=0
"$KEYWAY" audit --target "serial:$L/serial" --control "$L/ctl" \
  --vendor-key "$L/vendor/root.key" --vendor-domain "$LOCK_DOMAIN_DEFAULT" --class "$LOCK_CLASS_DEFAULT" \
  --device-key "$L/device.pub" --pin 1234 --image "$L/vendor/lock-app-1.0.0.bin" \
  --out "$WORK/out" --json -v >"$WORK/audit.json" 2>"$WORK/audit.err" || rc=$?
secs=$(($(date +%s) - t0))
[[ -s $WORK/audit.json ]] || die "the audit wrote no report (exit $rc): $(tail -5 "$WORK/audit.err")"
lock_loop_stop "$L"
trap - EXIT

# On a failure, what the restart loop and the audit saw, with times.
report_failure() {
  printf '\n--- %s (the restart loop, last 30 lines)\n' "$L/loop.log" >&2; tail -30 "$L/loop.log" >&2 || true
  printf -- '--- %s (the lock, last 20 lines)\n' "$L/lock.out" >&2; tail -20 "$L/lock.out" >&2 || true
  printf -- '--- %s (the audit, last 30 lines)\n' "$WORK/audit.err" >&2; tail -30 "$WORK/audit.err" >&2 || true
  exit 1
}
python3 - "$WORK/audit.json" "$secs" "$(wc -c <"$L/power-cuts" 2>/dev/null || echo 0)" <<'PY' || report_failure
import json, sys
r = json.load(open(sys.argv[1]))
bad = []
for c in r["checks"]:
    s = c["status"]
    print(f'{c["number"]:>3} {s:<5} {c["title"]}: {c["summary"]}')
    serial_na = s == "N/A" and c["summary"].startswith("not applicable on a serial line")
    if s != "PASS" and not serial_na:
        bad.append(c["number"])
        for e in c["evidence"][-8:]:
            print(f"        {e}")
print(f'keyway audit against the emulated lock: {r["pass"]} PASS / {r["fail"]} FAIL / {r["skip"]} SKIP / '
      f'{r["not_applicable"]} N/A in {sys.argv[2]} s ({sys.argv[3].strip()} power cuts)')
if bad:
    print("lock-audit: FAIL: checks " + ", ".join(map(str, bad)) + " are neither PASS nor N/A on a serial line", file=sys.stderr)
    sys.exit(1)
PY
