#!/usr/bin/env bash
# Wall time of the workspace's tests at two revisions, side by side in one run.
#
#   scripts/test-time.sh BEFORE_REV AFTER_REV      # e.g. scripts/test-time.sh 77e97f9 HEAD
#
# Checks both revisions out in temporary git worktrees (detached, under
# $TMPDIR), builds both test suites first (untimed: `cargo test --workspace
# --no-run`), then runs `cargo test --workspace` (as scripts/test does) four
# times alternately, BEFORE, AFTER, BEFORE, AFTER, so load from other work
# on the machine falls on both sides alike. It prints each run's wall time,
# each side's best and the ratio AFTER/BEFORE (of the best and of the sums),
# and the sweeps' scenario-count lines of both sides (the lines of the
# tests' output that count scenarios), so a faster suite can be checked to
# run the same scenarios.
#
# Environment:
#   TEST_TIME_RUNS=N       runs per side (default 2)
#   TEST_TIME_SERVICES=0   do not start PostgreSQL and Mosquitto (the hub's
#                          store and MQTT tests then skip on both sides);
#                          by default they are started as scripts/test does,
#                          once, from the AFTER worktree, and both sides use them
#   TEST_TIME_KEEP=1       keep the worktrees and their target directories
#   TEST_TIME_WORK=DIR     reuse a kept run's DIR (its worktrees are moved to
#                          the two revisions; their builds are incremental)
#
# The timed runs pass --no-fail-fast, so a failing test does not cut a
# side's run short (its time would mean nothing); a failure is reported.
#
# Each worktree builds into its own target directory (an uplifted
# target/debug/keyway must be its revision's binary), so the first run
# builds the workspace twice.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 2 ]; then
  echo "usage: $0 BEFORE_REV AFTER_REV" >&2
  exit 2
fi
BEFORE="$(git rev-parse --verify "$1^{commit}")"
AFTER="$(git rev-parse --verify "$2^{commit}")"
RUNS="${TEST_TIME_RUNS:-2}"
REPO="$PWD"
WORK="${TEST_TIME_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/keyway-test-time.XXXXXX")}"
say() { printf '\n==> %s\n' "$*" >&2; }

cleanup() {
  if [ "${TEST_TIME_KEEP:-0}" = 1 ]; then
    echo "kept $WORK" >&2
    return
  fi
  for side in before after; do
    [ -d "$WORK/$side" ] && git -C "$REPO" worktree remove --force "$WORK/$side" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

for side in before after; do
  rev="$BEFORE"; [ "$side" = after ] && rev="$AFTER"
  if [ -d "$WORK/$side" ]; then
    git -C "$WORK/$side" checkout -q --detach "$rev"
  else
    git -C "$REPO" worktree add --detach "$WORK/$side" "$rev" >/dev/null 2>&1
  fi
done

if [ "${TEST_TIME_SERVICES:-1}" = 1 ]; then
  say "PostgreSQL and Mosquitto for the hub's store and MQTT tests (as scripts/test)"
  for svc in postgres mosquitto; do
    if [ -x "$WORK/after/scripts/$svc.sh" ]; then
      eval "$("$WORK/after/scripts/$svc.sh")"
    fi
  done
fi

for side in before after; do
  say "building $side ($(git -C "$WORK/$side" rev-parse --short HEAD)) untimed"
  (cd "$WORK/$side" && cargo test --workspace --locked --no-run -q 2>&1 | tail -n 3) >&2
done

declare -A SUM BEST
SUM[before]=0; SUM[after]=0; BEST[before]=; BEST[after]=
run() {
  local side="$1" i="$2" t0 t1 ms status
  t0="$(date +%s%N)"
  status=0
  (cd "$WORK/$side" && cargo test --workspace --locked --no-fail-fast -- --show-output) \
    >"$WORK/$side.$i.log" 2>&1 || status=$?
  t1="$(date +%s%N)"
  ms=$(( (t1 - t0) / 1000000 ))
  printf '%-6s run %d: %d.%03d s wall%s (load average %s)\n' "$side" "$i" $((ms / 1000)) $((ms % 1000)) \
    "$([ "$status" = 0 ] || echo ", FAILED (exit $status): see $WORK/$side.$i.log")" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
  SUM[$side]=$(( SUM[$side] + ms ))
  if [ -z "${BEST[$side]}" ] || [ "$ms" -lt "${BEST[$side]}" ]; then BEST[$side]=$ms; fi
  [ "$status" = 0 ] || TEST_TIME_KEEP=1
}

say "timed: cargo test --workspace, alternately"
for i in $(seq 1 "$RUNS"); do
  run before "$i"
  run after "$i"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
echo
printf 'before %s: best %d.%03d s, sum %d.%03d s\n' "$(git rev-parse --short "$BEFORE")" \
  $((BEST[before] / 1000)) $((BEST[before] % 1000)) $((SUM[before] / 1000)) $((SUM[before] % 1000))
printf 'after  %s: best %d.%03d s, sum %d.%03d s\n' "$(git rev-parse --short "$AFTER")" \
  $((BEST[after] / 1000)) $((BEST[after] % 1000)) $((SUM[after] / 1000)) $((SUM[after] % 1000))
printf 'ratio after/before: best %s, sum %s (%s%% less wall time by the sums)\n' \
  "$(ratio "${BEST[after]}" "${BEST[before]}")" "$(ratio "${SUM[after]}" "${SUM[before]}")" \
  "$(awk -v a="${SUM[after]}" -v b="${SUM[before]}" 'BEGIN { printf "%.1f", 100 * (1 - a / b) }')"

# The scenario counts: every line of the tests' output that counts
# scenarios, from each side's last run, and the test counts per binary.
counts() {
  grep -hoE '[^|]*[0-9][0-9,]* ([a-z-]+ )?scenarios[^|]*' "$1" | sed 's/ in [0-9.]* s$//; s/[0-9.]* s wall//' | sort
}
echo
echo "scenario-count lines (before | after), from the last run of each:"
paste -d'|' <(counts "$WORK/before.$RUNS.log") <(counts "$WORK/after.$RUNS.log") | column -t -s'|' -o ' | ' || true
echo
# Passed, failed and ignored per test binary, from libtest's summary lines
# only (the tests' own output mentions "failed" too).
results() { sed -nE 's/^test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/p' "$1"; }
for side in before after; do
  printf '%s: %s tests passed, %s failed, %s ignored (summed over the test binaries)\n' "$side" \
    "$(results "$WORK/$side.$RUNS.log" | awk '{s += $1} END {print s + 0}')" \
    "$(results "$WORK/$side.$RUNS.log" | awk '{s += $2} END {print s + 0}')" \
    "$(results "$WORK/$side.$RUNS.log" | awk '{s += $3} END {print s + 0}')"
done
