#!/usr/bin/env bash
# The figures of BENCHMARKS.md "keyway audit": the audit's wall time per
# run against the simulated lock (default and each flawed profile), and the
# unlock latencies check 6 measures during the upload and the install.
#
#   scripts/bench-audit.sh [RUNS]     (default 5 runs per lock)
#
# Each run provisions a fresh lock (factory release, sequence 1) and runs
# `keyway audit --lock-state DIR --vendor-key V.key --json` in its own
# network namespace (unshare -rn), as a user would.
set -euo pipefail
runs=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build -q --release --locked -p keyway -p keyway-lock --manifest-path "$root/Cargo.toml"
bin=$root/target/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$bin/keyway" keygen vendor >/dev/null
head -c 24576 /dev/zero | tr '\0' '\125' >fw.bin
printf '# factory\n' >notes.md
"$bin/keyway" sign --firmware fw.bin --version 1.0.0 --sequence 1 --vendor-domain locks.example \
    --class deadbolt-2 --notes notes.md --key vendor.key -o factory.suit >/dev/null
"$bin/keyway-lock" provision --state lock0 --vendor-key vendor.pub --vendor-domain locks.example \
    --class deadbolt-2 --factory factory.suit >/dev/null

summary() {
    python3 -c '
import json, statistics, sys
runs = [json.loads(l) for l in sys.stdin if l.strip()]
wall = sorted(r["wall_ms"] for r in runs)
fails = sorted({tuple(c["number"] for c in r["checks"] if c["status"] == "FAIL") for r in runs})
print(f"{sys.argv[1]:13} runs {len(runs)}  wall ms median {statistics.median(wall):.0f} (min {wall[0]}, max {wall[-1]})  FAIL {fails}")
if sys.argv[1] == "default":
    for k in ["keypad_upload", "owner_upload", "keypad_install", "owner_install"]:
        f = [dict(r["checks"][5]["figures"]) for r in runs]
        p50 = statistics.median(x[k + "_p50_ms"] for x in f)
        p99 = statistics.median(x[k + "_p99_ms"] for x in f)
        mx = max(x[k + "_max_ms"] for x in f)
        n = sum(x[k + "_n"] for x in f)
        print(f"  {k:15} n {n:.0f}  p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {mx:.2f} ms")
' "$1"
}

for profile in default cloud-verify no-rollback unsigned downgrade forced log-gaps open-pairing; do
    for i in $(seq "$runs"); do
        rm -rf lock && cp -r lock0 lock
        "$bin/keyway" audit --lock-state lock --lock-profile "$profile" --vendor-key vendor.key \
            --out out --json 2>/dev/null | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))' || true
    done | summary "$profile"
done
