# shellcheck shell=bash
# The shared library of the scripts that run firmware on QEMU mps2-an386
# (scripts/qemu-*.sh, scripts/qemu-boot-chain.sh). Source it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/qemu.sh"
#
# QEMU_NAME (for messages, OUT_DIR and fw_variant's project) is the
# script's name without .sh unless the script set it before.
# It sets ROOT (the repository), TRIPLE, CARGO_TARGET_DIR (target/firmware,
# shared by every firmware project), OUT_DIR (target/$QEMU_NAME; a script
# may set another after sourcing), QEMU_TIMEOUT (KEYWAY_QEMU_TIMEOUT,
# default 120 s), the fixtures' VENDOR_DOMAIN and DEVICE_CLASS and
# PAYLOAD_BYTES (8192; a script may set others after sourcing) and defines:
#   log MSG / die MSG              progress on stderr / error and exit 1
#   ensure_qemu                    qemu-system-arm, installed by apt-get as root
#   qemu_start "$@"                a script's start: no arguments (else usage, exit 2),
#                                  ensure_qemu, an empty $OUT_DIR
#   budgets NAME CODE STACK        CODE_BUDGET from KEYWAY_NAME_CODE_BUDGET (default CODE) and
#                                  STACK_BUDGET from KEYWAY_NAME_STACK_BUDGET (default STACK),
#                                  which it exports for the firmware's build to compile in
#   fw_build DIR ELF_NAME OUT [cargo args]
#                                  cargo build --release in firmware/DIR, copy the ELF to OUT
#   fw_variant NAME [cargo args]   fw_build of firmware/$QEMU_NAME (its ELF has that name) into
#                                  $OUT_DIR/NAME.elf; what the build reads from the environment
#                                  goes in front: `KEYWAY_X_STACK_BUDGET=8192 fw_variant NAME`
#   run_qemu ELF LOG [qemu args]   boot ELF with semihosting under `timeout`,
#                                  stdout into LOG (and shown); returns QEMU's status
#                                  (124: timed out; call it as `run_qemu ... || rc=$?`).
#                                  QEMU_HIDE_HEX=1 leaves the hex dump lines out of what is shown. KEYWAY_QEMU_ICOUNT=0 leaves out -icount.
#   run_pass NAME [LOG]            run_qemu $OUT_DIR/NAME.elf (log: LOG, default $OUT_DIR/NAME.log);
#                                  die unless it exited 0 (not timed out) and printed PASS
#   judge NAME STATUS LOG          die unless STATUS is 0 and LOG has no FAIL line
#   code_bytes ELF                 .text+.rodata
#   figures FULL                   .text+.rodata of $OUT_DIR/FULL.elf and baseline.elf into
#                                  full and base; code = full - base
#   lock_only_figures FULL         .text+.rodata of $OUT_DIR/FULL.elf, lock-only.elf and
#                                  baseline.elf into full, lockfw and base; code = lockfw - base,
#                                  both = full - base
#   sect ELF REGEX                 the sizes of the sections matching REGEX
#   host_keyway                    builds the host CLI once; sets KEYWAY (its path)
#   fixtures GIVEN                 make_fixtures (the script's) into $FIXTURE_DIR, unless GIVEN
#                                  (the script's KEYWAY_*_FIXTURES) names a folder to use as it is
#   raw_public_key SPKI_PEM BYTES  the raw key (its last BYTES bytes) of an SPKI PEM, on stdout
#   raw_ed25519_pub SPKI_PEM OUT   the 32 raw key bytes of an Ed25519 SPKI PEM
#   ed25519_seed_hex KEY_PEM       the 32-byte seed of an Ed25519 PKCS#8 key (`keyway keygen`), hex
#   device_ids DOMAIN CLASS DIR    vendor-id.bin and class-id.bin (UUIDv5, FORMAT.md; lib/ids.sh)
#   signed_releases DIR KEY NAME   an Ed25519 key KEY.key (raw public key KEY.pub, its SPKI
#                                  KEY.spki.pem) and DIR/v1.suit, v2.suit signed with it:
#                                  sequence 1 and 2, PAYLOAD_BYTES random bytes, notes naming
#                                  NAME, for VENDOR_DOMAIN / DEVICE_CLASS (their ids in DIR)
#   by_crate ELF 'label=regex' ... code by crate from `nm -S` (symbols whose
#                                  demangled name matches regex), largest first
# and STEP_AWK, awk rules to put in front of a program that reads a firmware's
# log: per_tick (instructions per SysTick tick, from the calibration line) and
# step_row(PREFIX), which reads a line `PREFIX NAME: T ticks, stack S bytes`
# into names[n], ticks[n] and stack[n] (n counts the rows).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TRIPLE=thumbv7em-none-eabihf
export CARGO_TARGET_DIR="$ROOT/target/firmware"
QEMU_TIMEOUT="${KEYWAY_QEMU_TIMEOUT:-120}"
: "${QEMU_NAME:=$(basename "$0" .sh)}"
OUT_DIR="$ROOT/target/$QEMU_NAME"
VENDOR_DOMAIN=example.invalid
DEVICE_CLASS=qemu-test-lock
PAYLOAD_BYTES=8192

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$QEMU_NAME" "$*" >&2; exit 1; }

ensure_qemu() {
  command -v qemu-system-arm >/dev/null && return
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing qemu-system-arm"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-arm; } >&2 \
      || die "apt-get install qemu-system-arm failed"
  else
    die "qemu-system-arm not found (apt-get install -y qemu-system-arm)"
  fi
}

qemu_start() { # qemu_start "$@"
  [[ $# == 0 ]] || { echo "usage: $0" >&2; exit 2; }
  ensure_qemu
  rm -rf "$OUT_DIR" && mkdir -p "$OUT_DIR"
}

budgets() { # budgets NAME CODE STACK
  local code="KEYWAY_$1_CODE_BUDGET" stack="KEYWAY_$1_STACK_BUDGET"
  CODE_BUDGET="${!code:-$2}"
  STACK_BUDGET="${!stack:-$3}"
  export "$stack=$STACK_BUDGET"
}

fw_build() { # fw_build DIR ELF_NAME OUT [cargo args]
  local dir=$1 elf=$2 out=$3
  shift 3
  log "building firmware/$dir $* -> $out"
  (cd "$ROOT/firmware/$dir" && cargo build --release --target "$TRIPLE" "$@") \
    || die "firmware build ($dir $*) failed"
  cp "$CARGO_TARGET_DIR/$TRIPLE/release/$elf" "$out"
}

fw_variant() { # fw_variant NAME [cargo args]
  local name=$1
  shift
  fw_build "$QEMU_NAME" "$QEMU_NAME" "$OUT_DIR/$name.elf" "$@"
}

run_qemu() { # run_qemu ELF LOG [qemu args]
  local elf=$1 logf=$2 rc icount=()
  shift 2
  [[ ${KEYWAY_QEMU_ICOUNT:-1} == 0 ]] || icount=(-icount shift=0)
  rc=0
  timeout "$QEMU_TIMEOUT" qemu-system-arm -machine mps2-an386 -cpu cortex-m4 "${icount[@]}" \
    -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native "$@" -kernel "$elf" </dev/null >"$logf" || rc=$?
  if [[ ${QEMU_HIDE_HEX:-0} == 1 ]]; then grep -v '^[0-9a-f]*$' "$logf" || true; else cat "$logf"; fi
  return "$rc"
}

run_pass() { # run_pass NAME [LOG]
  local name=$1 logf=${2:-$OUT_DIR/$1.log} rc=0
  log "running $name on QEMU mps2-an386"
  run_qemu "$OUT_DIR/$name.elf" "$logf" || rc=$?
  [[ $rc == 124 ]] && die "QEMU timed out after ${QEMU_TIMEOUT}s ($name)"
  [[ $rc == 0 ]] || die "the firmware reported a failure (exit $rc, $name)"
  grep -q '^PASS$' "$logf" || die "no PASS from the firmware ($name)"
}

judge() { # judge NAME STATUS LOG
  [[ $2 == 124 ]] && die "QEMU timed out after ${QEMU_TIMEOUT}s ($1)"
  [[ $2 == 0 ]] || die "the firmware reported a failure (exit $2, $1)"
  if grep -q '^FAIL' "$3"; then die "a check failed ($1)"; fi
}

SIZE_TOOL=$(command -v size || command -v llvm-size || true)
sect() { # sect ELF REGEX
  [[ -n $SIZE_TOOL ]] || die "no size tool (binutils size or llvm-size)"
  "$SIZE_TOOL" -A "$1" | awk -v re="$2" '$1 ~ re { s += $2 } END { print s+0 }'
}
code_bytes() { sect "$1" '^\.(text|rodata)$'; }

figures() { # figures FULL
  full=$(code_bytes "$OUT_DIR/$1.elf")
  base=$(code_bytes "$OUT_DIR/baseline.elf")
  code=$((full - base))
}

lock_only_figures() { # lock_only_figures FULL
  figures "$1"
  both=$code
  lockfw=$(code_bytes "$OUT_DIR/lock-only.elf")
  code=$((lockfw - base))
}

host_keyway() {
  if [[ -z ${KEYWAY:-} ]]; then
    log "building the host CLI (keyway)"
    (cd "$ROOT" && cargo build -q -p keyway --target-dir "$ROOT/target") \
      || die "building the host CLI failed"
    KEYWAY="$ROOT/target/debug/keyway"
  fi
}

fixtures() { # fixtures GIVEN
  if [[ -n $1 ]]; then
    log "fixtures: using $FIXTURE_DIR"
  else
    log "fixtures -> $FIXTURE_DIR"
    make_fixtures
  fi
}

raw_public_key() { # raw_public_key SPKI_PEM BYTES
  sed '1d;$d' "$1" | base64 -d | tail -c "$2"
}

raw_ed25519_pub() { # raw_ed25519_pub SPKI_PEM OUT
  raw_public_key "$1" 32 >"$2"
}

ed25519_seed_hex() { # ed25519_seed_hex KEY_PEM
  # PKCS#8 for Ed25519 (RFC 8410, v1 or v2): the 32-byte seed is at bytes
  # 16..48, after 30 2e|51 02 01 00|01 30 05 06 03 2b 65 70 04 22 04 20.
  local der
  der=$(grep -v -- '-----' "$1" | base64 -d | xxd -p -c 256)
  [[ ${der:4:28} =~ ^02010[01]300506032b657004220420$ ]] || die "$1: not an Ed25519 PKCS#8 key"
  [[ ${#der} -ge 96 ]] || die "$1: too short for an Ed25519 seed"
  printf '%s' "${der:32:64}"
}

# device_ids DOMAIN CLASS DIR
# shellcheck source=ids.sh
source "$ROOT/scripts/lib/ids.sh"

signed_releases() { # signed_releases DIR KEY NAME
  local f=$1 key=$2 name=$3 seq
  "$KEYWAY" keygen "$key" --alg ed25519 >&2
  for seq in 1 2; do
    printf '# 1.%s.0\n\n%s fixture release %s.\n' "$seq" "$name" "$seq" >"$f/v$seq.md"
    head -c "$PAYLOAD_BYTES" /dev/urandom >"$f/v$seq.bin"
    "$KEYWAY" sign --firmware "$f/v$seq.bin" --version "1.$seq.0" --sequence "$seq" \
      --vendor-domain "$VENDOR_DOMAIN" --class "$DEVICE_CLASS" --vendor-name "Keyway CI" \
      --notes "$f/v$seq.md" --key "$key.key" -o "$f/v$seq.suit" >&2 \
      || die "signing v$seq failed"
  done
  # The firmware wants the raw 32-byte key: the end of the SPKI.
  mv "$key.pub" "$key.spki.pem"
  raw_ed25519_pub "$key.spki.pem" "$key.pub"
  device_ids "$VENDOR_DOMAIN" "$DEVICE_CLASS" "$f"
}

STEP_AWK='
  function step_row(prefix,  line) {
    line = $0; sub("^" prefix, "", line); n++
    names[n] = line; sub(/: .*/, "", names[n])
    ticks[n] = line; sub(/.*: /, "", ticks[n]); sub(/ ticks.*/, "", ticks[n])
    stack[n] = line; sub(/.*stack /, "", stack[n]); sub(/ bytes.*/, "", stack[n])
  }
  /^SysTick ticks for 2000000 instructions:/ { per_tick = 2000000 / $NF }
'

by_crate() { # by_crate ELF 'label=regex' ...  (first match wins; the rest is "other")
  local elf=$1
  shift
  nm -S -C --radix=d "$elf" | awk -v specs="$(printf '%s\n' "$@")" '
    BEGIN { n = split(specs, lines, "\n")
      for (i = 1; i <= n; i++) { eq = index(lines[i], "="); label[i] = substr(lines[i], 1, eq - 1); re[i] = substr(lines[i], eq + 1) } }
    NF >= 4 && $3 ~ /^[TtRr]$/ { name = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", name); s = $2 + 0; hit = 0
      for (i = 1; i <= n; i++) if (name ~ re[i]) { c[label[i]] += s; hit = 1; break }
      if (!hit) c["other (compiler_builtins, unnamed constants, ...)"] += s }
    END { for (k in c) printf "%8d  %s\n", c[k], k }' | sort -rn
}
