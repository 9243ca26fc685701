# Shared by scripts/qemu-lock.sh, scripts/lock-proof.sh and the soak: builds
# the emulated lock's parts and signs its releases. Source it after setting
# ROOT (the repository). Functions die with a message on failure.
#
#   lock_host_tools          -> $KEYWAY (the CLI; KEYWAY_BIN to reuse one), $PROVISION
#   lock_app_bin VERSION OUT -> OUT: the lock application's raw image (objcopy -O binary),
#                               built with KEYWAY_APP_VERSION=VERSION
#   lock_sign BIN VERSION SEQ KEYDIR OUT [ARGS] -> OUT.suit signed by KEYDIR/root.key
#                               (ARGS: more `keyway sign` options, e.g. --cve ID:SEVERITY)
#   lock_keys KEYDIR [V.pub DOMAIN CLASS] -> KEYDIR/{root.pub (raw), vendor-id.bin, class-id.bin,
#                               domain, class} (a new vendor key in KEYDIR unless V.pub given)
#   lock_boot_elf KEYDIR OUT -> OUT: lock-boot built for KEYDIR's trust anchor and identity
#   lock_patch_fail IN OUT   -> OUT: IN with the self-test-failure marker at offset 256

LOCK_TRIPLE=thumbv7em-none-eabihf
LOCK_FW_TARGET="$ROOT/target/firmware"
LOCK_DOMAIN_DEFAULT=example.invalid
LOCK_CLASS_DEFAULT=keyway-qemu-lock

# device_ids DOMAIN CLASS DIR
# shellcheck source=ids.sh
. "$ROOT/scripts/lib/ids.sh"

lock_die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }
lock_log() { printf '==> %s\n' "$*" >&2; }

lock_host_tools() {
  if [[ -n ${KEYWAY_BIN:-} ]]; then
    KEYWAY=$KEYWAY_BIN
  else
    (cd "$ROOT" && cargo build -q -p keyway --target-dir "$ROOT/target") || lock_die "building the host CLI failed"
    KEYWAY="$ROOT/target/debug/keyway"
  fi
  (cd "$ROOT/firmware/lock-provision" && CARGO_TARGET_DIR="$ROOT/target/lock-host" cargo build -q --release) \
    || lock_die "building lock-provision failed"
  PROVISION="$ROOT/target/lock-host/release/lock-provision"
}

lock_objcopy() {
  local tool
  for tool in rust-objcopy llvm-objcopy arm-none-eabi-objcopy objcopy; do
    command -v "$tool" >/dev/null && { "$tool" "$@"; return; }
  done
  lock_die "no objcopy (binutils or llvm-tools)"
}

lock_app_bin() {
  local version=$1 out=$2
  (cd "$ROOT/firmware/lock-app" && KEYWAY_APP_VERSION="$version" CARGO_TARGET_DIR="$LOCK_FW_TARGET" \
    cargo build -q --release) || lock_die "building lock-app $version failed"
  local elf="$LOCK_FW_TARGET/$LOCK_TRIPLE/release/lock-app"
  cp "$elf" "${out%.bin}.elf"
  lock_objcopy -O binary "$elf" "$out" || lock_die "objcopy of lock-app failed"
}

lock_sign() {
  local bin=$1 version=$2 seq=$3 keys=$4 out=$5
  shift 5
  printf '# %s\n\nlock-app %s for the emulated lock.\n' "$version" "$version" >"${out%.suit}.md"
  "$KEYWAY" sign --firmware "$bin" --version "$version" --sequence "$seq" \
    --vendor-domain "$(cat "$keys/domain")" --class "$(cat "$keys/class")" --vendor-name "Keyway QEMU" \
    --notes "${out%.suit}.md" --key "$keys/root.key" -o "$out" "$@" >/dev/null \
    || lock_die "signing $bin as $version (sequence $seq) failed"
}

lock_keys() {
  local keys=$1 pub=${2:-} domain=${3:-$LOCK_DOMAIN_DEFAULT} class=${4:-$LOCK_CLASS_DEFAULT}
  mkdir -p "$keys"
  if [[ -n $pub ]]; then
    cp "$pub" "$keys/root.spki.pem"
  elif [[ ! -s $keys/root.key ]]; then
    "$KEYWAY" keygen "$keys/root" --alg ed25519 >/dev/null || lock_die "keygen failed"
    mv "$keys/root.pub" "$keys/root.spki.pem"
  fi
  # SPKI for Ed25519 (RFC 8410): the raw key is the last 32 bytes.
  sed '1d;$d' "$keys/root.spki.pem" | base64 -d | tail -c 32 >"$keys/root.pub"
  [[ $(stat -c %s "$keys/root.pub") == 32 ]] || lock_die "$keys/root.spki.pem: not an Ed25519 key"
  printf '%s' "$domain" >"$keys/domain"
  printf '%s' "$class" >"$keys/class"
  device_ids "$domain" "$class" "$keys" || lock_die "$keys: writing the device ids failed"
}

lock_boot_elf() {
  local keys=$1 out=$2
  (cd "$ROOT/firmware/lock-boot" && KEYWAY_LOCK_FIXTURES="$keys" CARGO_TARGET_DIR="$LOCK_FW_TARGET" \
    cargo build -q --release) || lock_die "building lock-boot failed"
  cp "$LOCK_FW_TARGET/$LOCK_TRIPLE/release/lock-boot" "$out"
}

lock_patch_fail() {
  cp "$1" "$2"
  printf 'KEYWAY-SELF-TEST-FAIL' | dd of="$2" bs=1 seek=256 conv=notrunc status=none
}

# The device key: `keyway keygen` (so the host verifies the audit log with
# DIR/device.pub), its raw seed for the factory record.
lock_device_key() {
  local dir=$1 der
  "$KEYWAY" keygen "$dir/device" >/dev/null || lock_die "device keygen failed"
  # PKCS#8 for Ed25519 (RFC 8410): the 32-byte seed is at bytes 16..48.
  der=$(grep -v -- '-----' "$dir/device.key" | base64 -d | xxd -p -c 256)
  [[ ${der:4:28} =~ ^02010[01]300506032b657004220420$ ]] || lock_die "$dir/device.key: not an Ed25519 PKCS#8 key"
  printf '%s' "${der:32:64}" | xxd -r -p >"$dir/device.seed"
}

# The emulated lock kept running across power cuts, in the background:
# scripts/qemu-lock.sh DIR [ARGS] started again each time QEMU exits (a cut
# of the flash driver ends the run with status 3: one byte is appended to
# DIR/power-cuts, which the control channel's `status` reports as
# `power_cuts`), until lock_loop_stop. Sets LOCK_LOOP_PID; QEMU's PID is in
# DIR/qemu.pid while it runs.
#   lock_loop_start DIR [ARGS]  lock_loop_wait DIR [SECS]  lock_loop_stop DIR
lock_loop_start() {
  local dir=$1; shift
  mkdir -p "$dir"
  # A previous run's links and log must not pass for this one's.
  rm -f "$dir/loop.stop" "$dir/serial" "$dir/ctl" "$dir/qemu.log" "$dir/loop.log"
  (
    trap 'kill -9 "$(cat "$dir/qemu.pid" 2>/dev/null)" 2>/dev/null; exit 0' TERM
    while [[ ! -e $dir/loop.stop ]]; do
      # The last run's pty must not be linked again.
      rm -f "$dir/qemu.log" "$dir/serial"
      "$ROOT/scripts/qemu-lock.sh" "$dir" "$@" >>"$dir/lock.out" 2>&1 &
      qemu=$!
      echo $qemu >"$dir/qemu.pid"
      lock_loop_note "$dir" "started QEMU (pid $qemu)"
      # qemu-lock.sh links DIR/serial (lock_link_serial).
      rc=0; wait $qemu || rc=$?
      rm -f "$dir/qemu.pid"
      lock_loop_note "$dir" "QEMU exited with status $rc$([[ $rc == 3 ]] && echo ' (a power cut)')"
      if [[ $rc == 3 ]]; then printf x >>"$dir/power-cuts"; fi
      sleep 0.2
    done
  ) &
  LOCK_LOOP_PID=$!
}

# One timestamped line in DIR/loop.log: what the restart loop did and when,
# for a failure's report.
lock_loop_note() { printf '%s %s\n' "$(date +%H:%M:%S.%3N)" "$2" >>"$1/loop.log"; }

# Links DIR/serial to the pty QEMU names in DIR/qemu.log, if the link is
# missing or leads elsewhere, polling for up to SECS. qemu-lock.sh runs it
# in the background as it starts QEMU; the scripts that wait for the lock
# call it again while the link is missing. DIR/loop.log records each link.
# scripts/lib/test-lock-link.sh tests it.
lock_link_serial() {
  local dir=$1 secs=$2 pty
  for _ in $(seq "$(awk -v s="$secs" 'BEGIN { n = int(s * 10); print (n < 1 ? 1 : n) }')"); do
    # `|| pty=`: the callers run under `set -eo pipefail`, and before QEMU's
    # log exists sed fails; without it that ended this (background) linker
    # at once, and DIR/serial never appeared (CI at 0fbd6f3: loop.log shows
    # the start with no link; the pty-link flake seen since issue 17).
    pty=$(sed -n 's/.*char device redirected to \(\/dev\/pts\/[0-9]*\) (label serial0).*/\1/p' "$dir/qemu.log" 2>/dev/null | head -1) || pty=
    if [[ -n $pty ]]; then
      if [[ $(readlink "$dir/serial" 2>/dev/null) != "$pty" ]]; then
        ln -sfn "$pty" "$dir/serial"
        lock_loop_note "$dir" "linked serial -> $pty"
      fi
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# Waits until the lock answers: DIR/serial and DIR/ctl exist and lock-app
# runs (its banner in DIR/qemu.log).
# It also links DIR/serial itself while the link is missing, a second line
# of defence: in CI at beaaa5e and 0fbd6f3 the background linker had died
# (its first poll, before QEMU's log existed, failed under `set -e`; fixed
# in lock_link_serial at ca2a547) and DIR/serial never appeared.
lock_loop_wait() {
  local dir=$1 secs=${2:-300}
  for _ in $(seq $((secs * 10))); do
    [[ -L $dir/serial ]] || lock_link_serial "$dir" 0.1 || true
    [[ -L $dir/serial && -S $dir/ctl ]] && grep -q "lock-app .*running slot" "$dir/qemu.log" 2>/dev/null && return 0
    kill -0 "$LOCK_LOOP_PID" 2>/dev/null || lock_die "the lock's restart loop ended: $(tail -5 "$dir/lock.out")"
    sleep 0.1
  done
  lock_die "the lock did not come up in $secs s: $(tail -5 "$dir/lock.out")"
}

# Ends the loop and the QEMU it runs (by their PIDs).
lock_loop_stop() {
  local dir=$1 pid
  : >"$dir/loop.stop"
  if [[ -n ${LOCK_LOOP_PID:-} ]]; then kill "$LOCK_LOOP_PID" 2>/dev/null || true; fi
  pid=$(cat "$dir/qemu.pid" 2>/dev/null || true)
  if [[ -n $pid ]]; then kill -9 "$pid" 2>/dev/null || true; fi
  if [[ -n ${LOCK_LOOP_PID:-} ]]; then wait "$LOCK_LOOP_PID" 2>/dev/null || true; fi
  LOCK_LOOP_PID=
  return 0
}
