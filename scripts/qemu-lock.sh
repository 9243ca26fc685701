#!/usr/bin/env bash
# The emulated lock: lock-boot and lock-app on QEMU mps2-an386 (Cortex-M4),
# in the foreground. Killing this process (SIGKILL) is a power cut: it
# execs QEMU, so its PID is QEMU's; the flash is DIR/flash.bin, a host file.
#
#   scripts/qemu-lock.sh DIR [--vendor-key V.pub --vendor-domain D --class C --firmware F.suit]
#
# First use of DIR: builds what it needs and provisions DIR as a factory
# would (as `keyway-lock provision` does): the vendor key (a new one in
# DIR/vendor unless --vendor-key), the factory image (lock-app 1.0.0 signed
# as sequence 1 unless --firmware), the device key (DIR/device.key/.pub, for
# `keyway log verify`), the setup code (printed; the control channel's
# `setup-code` answers it), DIR/flash.bin. Later uses boot DIR as it is.
#
# While it runs:
#   DIR/serial  symlink to the pty of UART0: MCUmgr SMP over the serial
#               transport (smpmgr --port DIR/serial, keyway device --target serial:DIR/serial)
#   DIR/ctl     UART1 as a Unix socket: the JSON-line control channel
#               (keyway-lock ctl DIR/ctl presence|keypad PIN|door open|tamper on|
#               battery MV|setup-code|cut-power --after-ops N|status)
#   DIR/qemu.log  QEMU's and the firmware's output (semihosting)
#
# Env: KEYWAY_BIN=PATH reuses a built CLI; KEYWAY_LOCK_ICOUNT=1 runs QEMU
# with -icount shift=0 (instructions as time).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/lock.sh
. "$ROOT/scripts/lib/lock.sh"

usage() { echo "usage: $0 DIR [--vendor-key V.pub --vendor-domain D --class C --firmware F.suit]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
DIR=$1; shift
VENDOR_KEY= DOMAIN=$LOCK_DOMAIN_DEFAULT CLASS=$LOCK_CLASS_DEFAULT FIRMWARE=
while [[ $# -gt 0 ]]; do
  case $1 in
    --vendor-key) VENDOR_KEY=$2; shift 2 ;;
    --vendor-domain) DOMAIN=$2; shift 2 ;;
    --class) CLASS=$2; shift 2 ;;
    --firmware) FIRMWARE=$2; shift 2 ;;
    *) usage ;;
  esac
done
[[ -z $VENDOR_KEY || -n $FIRMWARE ]] || lock_die "--vendor-key needs --firmware (an image signed by that vendor)"
command -v qemu-system-arm >/dev/null || lock_die "qemu-system-arm not found (apt-get install qemu-system-arm)"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

if [[ ! -s $DIR/flash.bin ]]; then
  lock_host_tools
  lock_log "provisioning $DIR"
  lock_keys "$DIR/vendor" "$VENDOR_KEY" "$DOMAIN" "$CLASS"
  if [[ -z $FIRMWARE ]]; then
    lock_app_bin 1.0.0 "$DIR/vendor/lock-app-1.0.0.bin"
    lock_sign "$DIR/vendor/lock-app-1.0.0.bin" 1.0.0 1 "$DIR/vendor" "$DIR/vendor/lock-app-1.0.0.suit"
    FIRMWARE="$DIR/vendor/lock-app-1.0.0.suit"
  fi
  [[ -s $DIR/device.key ]] || lock_device_key "$DIR"
  lock_boot_elf "$DIR/vendor" "$DIR/lock-boot.elf"
  "$PROVISION" --flash "$DIR/flash.bin" --root-pub "$DIR/vendor/root.pub" \
    --vendor-id "$DIR/vendor/vendor-id.bin" --class-id "$DIR/vendor/class-id.bin" \
    --device-seed "$DIR/device.seed" --firmware "$FIRMWARE" | tee "$DIR/provision.txt" >&2 \
    || lock_die "provisioning failed"
fi
if [[ ! -s $DIR/lock-boot.elf ]]; then
  lock_boot_elf "$DIR/vendor" "$DIR/lock-boot.elf"
fi

rm -f "$DIR/ctl" "$DIR/serial" "$DIR/qemu.log"
mkdir -p "$DIR/exports"
# Once QEMU names the pty of UART0 ("char device redirected to /dev/pts/N
# (label serial0)"), link DIR/serial to it.
lock_link_serial "$DIR" 120 &
ICOUNT=()
[[ ${KEYWAY_LOCK_ICOUNT:-0} == 1 ]] && ICOUNT=(-icount shift=0)
cd "$DIR"
exec > >(tee -a "$DIR/qemu.log") 2>&1
exec qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -display none -monitor none "${ICOUNT[@]}" \
  -semihosting-config "enable=on,target=native,arg=flash=$DIR/flash.bin" \
  -serial pty \
  -chardev "socket,id=ctl,path=$DIR/ctl,server=on,wait=off" -serial chardev:ctl \
  -kernel "$DIR/lock-boot.elf"
