#!/usr/bin/env bash
# Size probe for the lock core's public-key crypto (issue 12, item 2):
# builds firmware/curve-probe eight ways (baseline, route-a, route-b,
# route-c, pake-a, pake-b, route-b-split, pake-b-split; opt-level z, LTO, the qemu-core rustflags),
# runs each in QEMU
# (mps2-an386, -icount shift=0) and prints, per route, .text+.rodata minus
# the baseline's and the instructions of one variable-base scalar
# multiplication, Ed25519 sign/verify and one DH side, and the stack of each.
#   route-a: ed25519-compact + p256 (today)
#   route-b: curve25519-dalek + ed25519-dalek (no precomputed tables)
#   route-c: ed25519-compact (Ed25519, X25519) + curve25519-dalek (SPAKE2+)
#   pake-a:  route-a + both roles of the `spake2plus` crate (P-256)
#   pake-b:  route-b + both roles of keyway-channel's `pake25519`
#   route-b-split, pake-b-split: the same, Ed25519 verified as two
#            single-scalar multiplications (less stack than ed25519-dalek's)
#
#   scripts/curve-probe.sh      (no arguments)
# Needs: qemu-system-arm, size (binutils), the pinned toolchain with
# thumbv7em-none-eabihf.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FIRMWARE="$ROOT/firmware/curve-probe"
OUT="$ROOT/target/curve-probe-out"
export CARGO_TARGET_DIR="$ROOT/target/firmware"
TRIPLE=thumbv7em-none-eabihf
[[ $# == 0 ]] || { echo "usage: $0" >&2; exit 2; }
command -v qemu-system-arm >/dev/null || { echo "curve-probe: qemu-system-arm not found" >&2; exit 1; }
mkdir -p "$OUT"
for r in baseline route-a route-b route-c pake-a pake-b route-b-split pake-b-split; do
  echo "==> building $r" >&2
  (cd "$FIRMWARE" && cargo build --locked --release --target "$TRIPLE" --features "$r")
  cp "$CARGO_TARGET_DIR/$TRIPLE/release/curve-probe" "$OUT/$r.elf"
  echo "==> running $r" >&2
  timeout 300 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -icount shift=0 \
    -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -kernel "$OUT/$r.elf" </dev/null >"$OUT/$r.log" \
    || { cat "$OUT/$r.log"; echo "curve-probe: $r failed" >&2; exit 1; }
  grep -q '^PASS$' "$OUT/$r.log" || { cat "$OUT/$r.log"; echo "curve-probe: no PASS from $r" >&2; exit 1; }
done
sect() { size -A "$1" | awk '$1 ~ /^\.(text|rodata)$/ { s += $2 } END { print s + 0 }'; }
base=$(sect "$OUT/baseline.elf")
printf '%-13s %10s %10s   %s\n' route "image (B)" "code (B)" "instructions (SysTick ticks x instructions per tick)"
for r in route-a route-b route-c pake-a pake-b route-b-split pake-b-split; do
  full=$(sect "$OUT/$r.elf")
  per=$(awk '/^SysTick ticks for 2000000 instructions:/ { print 2000000 / $NF }' "$OUT/$r.log")
  ops=$(awk -v per="$per" '/^ticks / { line = $0; sub(/^ticks /, "", line); n = line; sub(/: [0-9]+$/, "", n)
        t = line; sub(/.*: /, "", t); printf "%s%s %.2f M", sep, n, t * per / 1e6; sep = "; " }' "$OUT/$r.log")
  printf '%-13s %10d %10d   %s\n' "$r" "$full" "$((full - base))" "$ops"
done
echo "stack of each call (bytes, painted):"
for r in route-a route-b route-c pake-a pake-b route-b-split pake-b-split; do
  st=$(awk '/^stack / { line = $0; sub(/^stack /, "", line); n = line; sub(/: [0-9]+$/, "", n)
        v = line; sub(/.*: /, "", v); printf "%s%s %d", sep, n, v; sep = "; " }' "$OUT/$r.log")
  printf '%-13s %s\n' "$r" "$st"
done
echo "baseline (the harness alone): $base B"
