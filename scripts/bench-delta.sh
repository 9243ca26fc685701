#!/usr/bin/env bash
# Delta-update size table (BENCHMARKS.md "Delta updates"): `keyway diff` on the
# real firmware pairs in ../shared/data/firmware, each patch applied back with
# `keyway patch` (the lock's decoder) and compared; diff time and peak RSS
# with /usr/bin/time -v when it exists.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${KEYWAY_FIRMWARE:-../shared/data/firmware}"
if [ ! -d "$DATA" ]; then
  echo "SKIP: $DATA not found (the firmware pairs are not in the repository)"
  exit 0
fi
cargo build -q --release -p keyway
K=target/release/keyway
OUT=target/bench-delta
mkdir -p "$OUT"
printf '| pair | old -> new | patch | detools lzma | detools heatshrink | detools lz4 | target | met | diff s | diff RSS MB |\n|---|---|---|---|---|---|---|---|---|---|\n'
while read -r name old new lzma hs lz4 target; do
  patch="$OUT/$name.patch"
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -v "$K" diff "$DATA/$old" "$DATA/$new" -o "$patch" >"$OUT/$name.diff.txt" 2>"$OUT/$name.time.txt"
    secs=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$OUT/$name.time.txt")
    rss=$(awk '/Maximum resident set size/ {printf "%.1f", $NF/1024}' "$OUT/$name.time.txt")
  else
    "$K" diff "$DATA/$old" "$DATA/$new" -o "$patch" >"$OUT/$name.diff.txt"
    secs=?; rss=?
  fi
  "$K" patch "$DATA/$old" "$patch" -o "$OUT/$name.new" >/dev/null
  cmp -s "$OUT/$name.new" "$DATA/$new" || { echo "MISMATCH: $name"; exit 1; }
  size=$(stat -c %s "$patch")
  met=no; [ "$size" -le "$target" ] && met=yes
  printf '| %s | %s -> %s | %s | %s | %s | %s | <= %s | %s | %s | %s |\n' \
    "$name" "$(stat -c %s "$DATA/$old")" "$(stat -c %s "$DATA/$new")" "$size" "$lzma" "$hs" "$lz4" "$target" "$met" "$secs" "$rss"
done <<'PAIRS'
micropython-esp8266 micropython-esp8266/v1.9.4.bin micropython-esp8266/v1.10.bin 71803 96957 91447 80000
pyboard-v11 pyboard-v11/v1.10.bin pyboard-v11/1f5d945af-dirty.bin 36417 53211 50040 42000
synthesizer-m4 synthesizer-m4/1.bin synthesizer-m4/2.bin 1121 3174 1654 1600
PAIRS
# End-to-end update time, full image against delta, over the lock's 10 KB/s
# Bluetooth link (BENCHMARKS.md "Delta updates"): both signed, installed and
# booted through the lock's code on the nRF52840 flash model.
"$K" diff "$DATA/micropython-esp8266/v1.9.4.bin" "$DATA/micropython-esp8266/v1.10.bin" \
  -o "$OUT/e2e.patch" --update-time 10000
