#!/usr/bin/env bash
# Independent checks of Keyway's envelopes (issue 13), with software nobody
# on the project wrote, pinned, from PyPI, in a venv under target/:
#   CDDL  every kind of envelope `keyway sign` makes is validated with
#         cddl-verifier against the SUIT drafts' own CDDL
#         (../shared/data/suit/cddl: draft-ietf-suit-manifest-37, glue,
#         draft-ietf-suit-update-management, RFC 9052's COSE rules, in that
#         order) plus Keyway's declared extensions
#         (crates/device/keyway-suit/cddl/keyway-extensions.cddl), with
#         deterministic encoding required;
#   COSE  every COSE_Sign1 in those envelopes is verified by pycose against
#         the signer's public key (detached payload: the bstr-wrapped
#         SUIT_Digest, draft-37 §8.3), and the digest is recomputed over the
#         bstr-wrapped manifest.
# Both checks must be able to fail: the script also feeds broken envelopes
# (set-version as a bare array, a text-string key in the text map, maps out
# of canonical order, a flipped signature bit, a manifest changed after
# signing) and requires each to be refused.
#
#   scripts/suit-interop.sh     (no arguments)
#
# Needs: python3 with venv, network to PyPI on the first run; the shared
# CDDL (skipped with a message when ../shared is absent).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CDDL_DIR="${KEYWAY_SUIT_CDDL:-$ROOT/../shared/data/suit/cddl}"
VENV="$ROOT/target/suit-interop-venv"
WORK="$ROOT/target/suit-interop"
# Pinned: the versions this script was written and checked against.
# cbor2 stays below 6: cbor2 6 decodes arrays as tuples, which pycose 1.1.0
# does not take as COSE messages.
PINS=(cddl-verifier==1.5.3 pycose==1.1.0 cbor2==5.6.5 cryptography==46.0.3)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'suit-interop: error: %s\n' "$*" >&2; exit 1; }

[[ $# == 0 ]] || { echo "usage: $0" >&2; exit 2; }
if [[ ! -d "$CDDL_DIR" ]]; then
  echo "suit-interop: SKIPPED: $CDDL_DIR is absent (the SUIT drafts' CDDL)" >&2
  exit 0
fi

# --- venv ---------------------------------------------------------------------
pinned() { # whether the venv holds exactly the pinned versions
  local p have
  [[ -x "$VENV/bin/pip" ]] || return 1
  for p in "${PINS[@]}"; do
    have="$("$VENV/bin/pip" show "${p%%==*}" 2>/dev/null | sed -n 's/^Version: //p')"
    [[ "$have" == "${p##*==}" ]] || return 1
  done
}
if ! pinned; then
  log "venv $VENV: ${PINS[*]}"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}"
  pinned || die "could not install ${PINS[*]} into $VENV"
fi

# --- envelopes ----------------------------------------------------------------
log "building keyway"
cargo build -q --locked -p keyway
KEYWAY="$ROOT/target/debug/keyway"
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
"$KEYWAY" keygen ed --alg ed25519 >/dev/null
"$KEYWAY" keygen p256 --alg p256 >/dev/null
"$KEYWAY" keygen signer --alg ed25519 >/dev/null
head -c 20000 /dev/urandom >old.bin
cp old.bin new.bin
printf 'patched' | dd of=new.bin bs=1 seek=1000 conv=notrunc status=none
printf '# Release 2.1.0\n\nFixes the keypad lockout bypass.\n' >notes.md
"$KEYWAY" keyset --root ed.key --signer signer.pub --threshold 1 --version 1 -o keyset.cbor >/dev/null

# `keyway sign` always writes release notes (the text map, severed at 23).
sign() { # sign NAME KEY [ARGS...]: writes NAME.suit, records NAME KEY.pub
  local name="$1" key="$2"
  shift 2
  "$KEYWAY" sign --firmware new.bin --version 2.1.0 --sequence 7 --vendor-domain locks.example \
    --class deadbolt-2 --notes notes.md --key "$key.key" -o "$name.suit" "$@" >/dev/null
  echo "$name $key.pub" >>envelopes.txt
}
: >envelopes.txt
sign plain ed
sign notes-cves ed --cve CVE-2025-10001:high --cve CVE-2024-4242:critical \
  --min-battery-mwh 1500 --use-before 4102444800
sign keyset signer --keyset keyset.cbor
sign detached ed --detached
sign delta ed --delta-from old.bin --cve CVE-2025-10001:low
sign p256-esp256 p256
sign p256-es256 p256 --p256-alg es256
sign ed25519-eddsa ed --ed25519-alg eddsa
sign ed25519-fully-specified ed --ed25519-alg ed25519
sign no-kid ed --no-kid

cat "$CDDL_DIR/draft-ietf-suit-manifest-37.cddl" "$CDDL_DIR/glue.cddl" \
  "$CDDL_DIR/draft-ietf-suit-update-management.cddl" "$CDDL_DIR/cose-rfc9052.cddl" \
  "$ROOT/crates/device/keyway-suit/cddl/keyway-extensions.cddl" >suit-keyway.cddl

# --- checks -------------------------------------------------------------------
"$VENV/bin/python" "$ROOT/scripts/suit_interop_check.py" "$WORK" "$VENV/bin/cddl-verify"
