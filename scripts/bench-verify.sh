#!/usr/bin/env bash
# Benchmark: `keyway verify` on an envelope with a 64 MiB integrated payload
# against `sha256sum` of the same payload, side by side in one run
# (alternating, warm page cache), reporting medians and their ratio.
#   scripts/bench-verify.sh [MiB] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB="${1:-64}"
ROUNDS="${2:-9}"
DIR=target/bench-verify
mkdir -p "$DIR"
cargo build -q --release -p keyway
KW=target/release/keyway
rm -f "$DIR"/vendor.key "$DIR"/vendor.pub
$KW keygen "$DIR/vendor" >/dev/null
head -c "$((MIB * 1024 * 1024))" /dev/urandom > "$DIR/fw.bin"
printf '# bench\n' > "$DIR/notes.md"
$KW sign --firmware "$DIR/fw.bin" --version 1.0.0 --sequence 1 --vendor-domain bench.example \
  --class bench --notes "$DIR/notes.md" --key "$DIR/vendor.key" -o "$DIR/fw.suit" >/dev/null
python3 - "$KW" "$DIR" "$ROUNDS" <<'PY'
import statistics, subprocess, sys, time
kw, d, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
cmds = {
    "keyway verify": [kw, "verify", f"{d}/fw.suit", "--trust", f"{d}/vendor.pub"],
    "sha256sum": ["sha256sum", f"{d}/fw.bin"],
}
for c in cmds.values():  # warm the page cache and check both succeed
    subprocess.run(c, check=True, stdout=subprocess.DEVNULL)
times = {k: [] for k in cmds}
for _ in range(rounds):
    for k, c in cmds.items():
        t = time.perf_counter()
        subprocess.run(c, check=True, stdout=subprocess.DEVNULL)
        times[k].append(time.perf_counter() - t)
med = {k: statistics.median(v) for k, v in times.items()}
for k, v in med.items():
    print(f"{k:15s} median {v*1000:8.1f} ms over {rounds} rounds (min {min(times[k])*1000:.1f}, max {max(times[k])*1000:.1f})")
print(f"ratio keyway verify / sha256sum = {med['keyway verify'] / med['sha256sum']:.3f}")
PY
