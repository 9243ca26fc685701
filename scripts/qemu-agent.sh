#!/usr/bin/env bash
# On-target run of keyway-agent's dispatch (firmware/qemu-agent): the agent
# and an owner's client in memory on an emulated Cortex-M4 (QEMU
# mps2-an386, -icount shift=0): pairing with the setup code, a session,
# sealed unlock / consent / owners. Prints each agent call's instructions
# and stack, the agent's RAM, and the lock's code (the agent alone, linked
# on opaque frames, minus a baseline), and fails if a call's stack or the
# code is over budget.
#
#   KEYWAY_AGENT_STACK_BUDGET   bytes, one agent call (default 16384)
#   KEYWAY_AGENT_CODE_BUDGET    bytes of .text+.rodata for the agent with
#                               its channel, store and codec (default 131072)
set -euo pipefail

# shellcheck source=lib/qemu.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/qemu.sh"
budgets AGENT 131072 16384

qemu_start "$@"

fw_variant agent
fw_variant lock-only --features lock-only
fw_variant baseline --features baseline
run_pass agent

lock_only_figures agent

awk -v code="$code" -v both="$both" -v lockfw="$lockfw" -v base="$base" -v budget="$CODE_BUDGET" "$STEP_AWK"'
  /^agent RAM:/ { ram = $0; sub(/^agent RAM: /, "", ram) }
  /^agent call / { step_row("agent call ") }
  /^deepest agent call:/ { deepest = $4 }
  END {
    printf "\nkeyway-agent on Cortex-M4 (opt-level z, LTO; %.0f instructions per SysTick tick, calibrated on target)\n", per_tick
    printf "%-28s %14s %10s\n", "agent call (Agent::handle)", "instructions", "stack (B)"
    for (i = 1; i <= n; i++) printf "%-28s %14d %10d\n", names[i], ticks[i] * per_tick, stack[i]
    printf "deepest agent call: %d B of stack\n", deepest
    printf "agent RAM: %s\n", ram
    printf "lock code (agent + channel + store + SMP codec + curve25519 (Ed25519, X25519, SPAKE2+)/SHA-2/ChaCha20-Poly1305): %d B .text+.rodata (lock-only firmware %d minus baseline %d; budget %d)\n", code, lockfw, base, budget
    printf "with the client linked too (the run above): %d B\n", both
  }' "$OUT_DIR/agent.log"

(( code <= CODE_BUDGET )) || die "the agent's code is $code B, over the budget of $CODE_BUDGET B"
log "ok"
