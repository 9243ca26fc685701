#!/usr/bin/env bash
# Regenerates the envelope fuzz target's Keyway seeds (fuzz/seeds/) with the
# `keyway` CLI, so they carry what the encoder writes today (set-version as
# bstr .cbor, CVEs under text key -257, canonical maps):
#
#   scripts/fuzz-seeds.sh      (no arguments; needs cargo and python3)
#
# Writes, each with the mode byte fuzz_targets/envelope.rs reads first:
#   m0-*.suit (0: Envelope::decode), m4-*.suit (4: verify with the seed root),
#   m5-*.suit (5: verify with the stored key set v3, floor 1),
#   m2-keyset.cbor (2: KeySet::from_document);
#   *-root-release: signed by the seed root; *-keyset-release: signed by the
#   key set's signer and carrying the key set;
# and, without a mode byte: keyset-v3.cbor (the fuzz target's stored key
# set) and fuzz/seed-root.pub (the root's raw 32-byte Ed25519 public key,
# which the target includes). The private keys are thrown away: every run
# makes new keys, so the three outputs must be committed together.
# The audit-log and patch seeds are not touched.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SEEDS="$ROOT/fuzz/seeds"
[[ $# == 0 ]] || { echo "usage: $0" >&2; exit 2; }

(cd "$ROOT" && cargo build -q -p keyway)
keyway="$ROOT/target/debug/keyway"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

raw_public_key() { # SPKI PEM -> its last 32 bytes (the Ed25519 key)
  sed '1d;$d' "$1" | base64 -d | tail -c 32
}
with_mode() { # with_mode BYTE IN OUT
  { printf "\\x$(printf %02x "$1")"; cat "$2"; } >"$3"
}

"$keyway" keygen "$work/root" --alg ed25519 >/dev/null
"$keyway" keygen "$work/signer" --alg ed25519 >/dev/null
"$keyway" keyset --root "$work/root.key" --signer "$work/signer.pub" --threshold 1 \
  --version 3 -o "$work/keyset.cbor" >/dev/null

# A fixed 3,000-byte image (not random: only the keys change between runs).
python3 -c 'import sys; sys.stdout.buffer.write(bytes((i * 151 + 7) % 256 for i in range(3000)))' \
  >"$work/firmware.bin"
printf '# seed\n\nA release for the fuzz corpus.\n' >"$work/notes.md"

common=(--firmware "$work/firmware.bin" --version 1.0.0 --sequence 2
  --vendor-domain fuzz.example --class lock --vendor-name "Keyway fuzz"
  --notes "$work/notes.md" --use-before 4102444800 --min-battery-mwh 500)
"$keyway" sign "${common[@]}" --cve CVE-2024-1111:low --key "$work/root.key" \
  -o "$work/root-release.suit" >/dev/null
"$keyway" sign "${common[@]}" --cve CVE-2024-1111:low --cve CVE-2024-2222:critical \
  --key "$work/signer.key" --keyset "$work/keyset.cbor" -o "$work/keyset-release.suit" >/dev/null

# Both verify as the fuzz target's modes 4 and 5 need.
"$keyway" verify "$work/root-release.suit" --trust "$work/root.pub" >/dev/null
"$keyway" verify "$work/keyset-release.suit" --trust "$work/root.pub" --floor 1 \
  --stored-keyset "$work/keyset.cbor" >/dev/null

for m in 0 4 5; do
  with_mode "$m" "$work/root-release.suit" "$SEEDS/m$m-root-release.suit"
  with_mode "$m" "$work/keyset-release.suit" "$SEEDS/m$m-keyset-release.suit"
done
with_mode 2 "$work/keyset.cbor" "$SEEDS/m2-keyset.cbor"
cp "$work/keyset.cbor" "$SEEDS/keyset-v3.cbor"
raw_public_key "$work/root.pub" >"$ROOT/fuzz/seed-root.pub"
echo "fuzz-seeds: wrote $(ls "$SEEDS"/m*-* "$SEEDS/keyset-v3.cbor" | wc -l) seeds to $SEEDS and fuzz/seed-root.pub"
