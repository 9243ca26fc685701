#!/usr/bin/env bash
# keyway-lock against the MCUmgr tools from PyPI (pinned): smpmgr updates the
# lock (refused without the presence window; with it: upload, then the reset
# smpmgr sends is the consent of the person at the lock: trial boot,
# self-test, confirm), the state
# survives a kill (a power cut), and an smpclient script runs upload -> state
# read -> test by hash -> reset; the lock's audit log of it all (and of keypad
# events) exports and verifies.
#
# The lock installs only with the bolt withdrawn (install_needs_unlocked, on
# by default): before each update the script unlocks it with the keypad
# through the control socket, as the person at the door would.
# Needs python3 with venv and PyPI access the first time (target/smp-venv is reused).
#
# `scripts/smp-interop.sh --serial` runs the same steps over the lock's serial
# port instead of UDP: keyway-lock --serial makes a pty pair speaking MCUmgr's
# serial transport (base64 lines, CRC-16), and smpmgr --port PTY and
# smpclient's SMPSerialTransport (pyserial) drive it.
#
# The lock's brain is keyway-agent. What a stock tool may do is what the
# presence window authorizes: upload, image state (test), erase, and one
# reset per press of the button; a reset (the lock's own, when it installs,
# or the tool's) reboots the agent and closes the window. So the script
# presses the button (`presence`) before each step that needs the window.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=udp
case "${1:-}" in
  --serial) MODE=serial ;;
  "") ;;
  *) echo "usage: scripts/smp-interop.sh [--serial]" >&2; exit 2 ;;
esac

step() { printf '\n==> %s\n' "$*"; }
die() { echo "smp-interop: FAIL: $*" >&2; exit 1; }

VENV="$PWD/target/smp-venv"
have() { [ -x "$VENV/bin/pip" ] && "$VENV/bin/pip" show "$1" 2>/dev/null | grep -x "Version: $2" >/dev/null; }
if ! { have smpclient 7.3.0 && have smpmgr 0.19.1 && have pyserial 3.5; }; then
  step "venv with smpclient 7.3.0, smpmgr 0.19.1 and pyserial 3.5"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q smpclient==7.3.0 smpmgr==0.19.1 pyserial==3.5
fi
PY="$VENV/bin/python"
SMPMGR_BIN="$VENV/bin/smpmgr"
# Every tool call is bounded: a lock that stops answering fails the script, never hangs it.
SMPMGR() { timeout 60 "$SMPMGR_BIN" "$@"; }
export COLUMNS=200
SMPMGR --help >/dev/null

step "build"
# The dev profile: `cargo test --workspace` has built both already (a
# release build of the two took 519 s of CI's 40 minutes), and the
# workspace optimises the crypto and the verifier even in dev builds.
cargo build -q -p keyway -p keyway-lock
KEYWAY="$PWD/target/debug/keyway"
LOCK="$PWD/target/debug/keyway-lock"
CHECK="$PWD/scripts/smp_client_check.py"

W=target/smp-interop
[ "$MODE" = serial ] && W=target/smp-interop-serial
rm -rf "$W"; mkdir -p "$W"; cd "$W"

step "vendor: key, releases 1.4.0 (factory), 2.1.0, 3.0.0, 4.0.0"
"$KEYWAY" keygen vendor >/dev/null
printf 'Fixes the keypad timing leak (CVE-2024-12345).\n' > NOTES.md
for r in "1.4.0 1 90000" "2.1.0 2 150000" "3.0.0 3 120000" "4.0.0 4 100000"; do
  set -- $r
  head -c "$3" /dev/urandom > "fw-$1.bin"
  "$KEYWAY" sign --firmware "fw-$1.bin" --version "$1" --sequence "$2" \
    --vendor-domain locks.example --class deadbolt-2 --notes NOTES.md \
    --key vendor.key -o "v$1.suit" >/dev/null
done

step "provision the lock (factory 1.4.0)"
"$LOCK" provision --state lock --vendor-key vendor.pub \
  --vendor-domain locks.example --class deadbolt-2 --factory v1.4.0.suit

if [ "$MODE" = udp ]; then
# smpmgr always talks to UDP port 1337: find a loopback address where it is free.
ADDR=$("$PY" - <<'PY'
import random, socket
cands = ["127.0.0.1"] + [f"127.{random.randint(1,254)}.{random.randint(0,254)}.{random.randint(1,254)}" for _ in range(20)]
for a in cands:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((a, 1337)); print(a); break
    except OSError:
        pass
    finally:
        s.close()
PY
)
[ -n "$ADDR" ] || die "no loopback address with UDP port 1337 free"
  BIND="$ADDR:1337"; SERIAL_ARGS=(); TOOL=(--ip "$ADDR"); CHECK_AT=("$ADDR" 1337)
else
  # The serial port: a pty the lock links at $W/serial (UDP on any free port, unused).
  ADDR=127.0.0.1; BIND=127.0.0.1:0; SER="$PWD/serial"
  SERIAL_ARGS=(--serial "$SER"); TOOL=(--port "$SER"); CHECK_AT=("serial:$SER" 0)
fi

LOCK_PID=
start_lock() {
  "$LOCK" --state lock --bind "$BIND" --control 127.0.0.1:0 --relock-seconds 120 \
    "${SERIAL_ARGS[@]}" >lock.out 2>>lock.err &
  LOCK_PID=$!
  for _ in $(seq 50); do grep -q '^listening on' lock.out 2>/dev/null && break; sleep 0.1; done
  grep -q '^listening on' lock.out || die "the lock did not start: $(cat lock.err)"
  CONTROL_PORT=$(sed -n 's/^control on 127.0.0.1://p' lock.out)
}
stop_lock() { if [ -n "$LOCK_PID" ]; then kill "$LOCK_PID" 2>/dev/null || true; wait "$LOCK_PID" 2>/dev/null || true; LOCK_PID=; fi; }
trap stop_lock EXIT
control() {
  "$PY" -c 'import socket,sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(sys.argv[2].encode() + b"\n"); print(s.makefile().readline().strip())' "$CONTROL_PORT" "$1"
}
state() { timeout 30 "$PY" "$CHECK" state "${CHECK_AT[@]}"; }
# expect_state FILE PATTERN WHY: the state read into FILE (and shown) must match PATTERN.
expect_state() { state | tee "$1"; grep -q "$2" "$1" || die "$3"; }
# upgrade_fails SUIT FILE WHY [ERROR]: smpmgr's upgrade with SUIT must fail (its
# output in FILE), with ERROR in that output if given.
upgrade_fails() {
  if SMPMGR "${TOOL[@]}" upgrade --format any "$1" >"$2" 2>&1; then die "$3"; fi
  [[ -z ${4:-} ]] || grep -q "$4" "$2" || die "expected $4: $(tail -5 "$2")"
}
# The update policy installs only with the bolt withdrawn: unlock with the keypad first.
unlock() { echo "unlock with the keypad (the lock installs only while the bolt is withdrawn)"; control '{"cmd":"keypad","pin":"1234"}'; }

step "start the lock ($MODE: ${TOOL[*]})"
start_lock
expect_state state0.txt 'version=1.4.0 active=True confirmed=True' "factory state"

step "smpmgr upgrade without the presence window: refused (rc 11)"
upgrade_fails v2.1.0.suit refused.txt "the upgrade was accepted without presence" EACCESSDENIED
echo "refused: EACCESSDENIED (11)"

step "with the bolt locked: smpmgr's reset (the consent) is answered rc 6 \"postponed\", the upload waits unarmed"
control '{"cmd":"presence","seconds":120}'
upgrade_fails v2.1.0.suit postponed.txt "the upgrade went through with the bolt locked"
grep -q 'postponed: the bolt is locked' lock.err || die "the lock did not postpone: $(tail -3 lock.err)"
grep 'postponed: the bolt is locked' lock.err | tail -1
expect_state state-postponed.txt 'version=1.4.0 active=True confirmed=True' "1.4.0 must still run"
grep -q 'version=2.1.0 active=False confirmed=False pending=False' state-postponed.txt || die "2.1.0 must wait unarmed"

step "unlock: the consent was kept, the lock installs 2.1.0 by itself (trial boot, self-test, confirm)"
unlock
for _ in $(seq 50); do grep -q 'installing 2.1.0' lock.err && break; sleep 0.1; done
sleep 0.5
expect_state state1.txt 'version=2.1.0 active=True confirmed=True' "2.1.0 did not boot on trial and confirm"
grep 'reset: boot' lock.err | tail -1

step "kill the lock (a power cut) and start it again"
stop_lock
start_lock
expect_state state2.txt 'version=2.1.0 active=True confirmed=True' "2.1.0 lost across the restart"

step "power cut halfway through an smpmgr upload of 3.0.0 (keyway-lock ctl cut-power --mid-upload), then smpmgr again"
control '{"cmd":"presence","seconds":120}'
unlock
"$LOCK" ctl "127.0.0.1:$CONTROL_PORT" cut-power --mid-upload
upgrade_fails v3.0.0.suit cut.txt "the upload went through a power cut"
grep 'POWER CUT' lock.err | tail -1
control '{"cmd":"presence","seconds":120}'
unlock
SMPMGR "${TOOL[@]}" upgrade --format any v3.0.0.suit 2>&1 | tail -2
grep -q 'upload resumed from the journal' lock.err || die "the second upload did not resume from the journal"
grep 'upload resumed from the journal' lock.err | tail -1
expect_state state3.txt 'version=3.0.0 active=True confirmed=True' "3.0.0 did not boot and confirm"

step "smpclient: upload 4.0.0 -> state read -> test by hash -> reset"
control '{"cmd":"presence","seconds":120}'
unlock
timeout 60 "$PY" "$CHECK" flow "${CHECK_AT[@]}" v4.0.0.suit
sleep 0.3
expect_state state4.txt 'version=4.0.0 active=True confirmed=True' "4.0.0 did not boot and confirm"

step "smpmgr upgrade with 1.4.0 (a rollback): refused"
control '{"cmd":"presence","seconds":120}'
upgrade_fails v1.4.0.suit rollback.txt "the rollback was accepted" CURRENT_VERSION_IS_NEWER
# The agent answers the image group's error to the tool (SMPv2 `err`); the
# device core's refusal is not a line of the lock's log any more.
echo "refused: CURRENT_VERSION_IS_NEWER (27)"

step "the lock's audit log: keypad, door, tamper, export, keyway log verify"
control '{"cmd":"keypad","pin":"0000"}'
control '{"cmd":"keypad","pin":"1234"}' | tee keypad.txt
grep -q '"result":"unlocked"' keypad.txt || die "the default PIN did not unlock"
control '{"cmd":"tamper","state":"on"}' >/dev/null
control '{"cmd":"lock"}' >/dev/null
# The lock writes exports only into its state directory (lock/exports/).
control '{"cmd":"log-export","path":"audit.bin"}'
cp lock/exports/audit.bin audit.bin
"$KEYWAY" log verify audit.bin --device-key lock/device.pub || die "the audit log does not verify"
"$KEYWAY" log show audit.bin > audit.txt
for e in 'update rejected: sequence 1, reason anti-rollback' 'confirmed: slot 1, sequence 4' \
         'consent given: sequence 2' 'update installed: sequence 2, slot 1' \
         'PIN failed: 1 in a row' 'unlocked: keypad' 'tamper detected' 'locked: owner command'; do
  grep -q "$e" audit.txt || die "the audit log lacks \"$e\""
done
tail -4 audit.txt

echo
echo "smp-interop ($MODE): OK"
