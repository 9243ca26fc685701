"""Independent checks of Keyway's envelopes, run by scripts/suit-interop.sh.

Usage: suit_interop_check.py WORK_DIR CDDL_VERIFY

WORK_DIR holds envelopes.txt ("NAME SIGNER.pub" per line), NAME.suit, the
public keys and suit-keyway.cddl (the drafts' CDDL plus Keyway's
extensions). Every envelope must validate against the CDDL (with
deterministic encoding required) and every COSE_Sign1 in it must verify
with pycose; then broken envelopes must be refused by the same checks.
Prints counts; exits non-zero on any failure.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import cbor2
from pycose.algorithms import CoseAlgorithm, EdDSA, Es256
from pycose.keys import CoseKey
from pycose.messages import Sign1Message


# pycose 1.1.0 predates the fully specified COSE algorithms (RFC 9864):
# register their labels for the algorithms pycose implements, so that its own
# ECDSA P-256 / Ed25519 code verifies them.
@CoseAlgorithm.register_attribute()
class Esp256(Es256):
    """ESP256: ECDSA using P-256 and SHA-256 (RFC 9864), -9."""

    identifier = -9
    fullname = "ESP256"


@CoseAlgorithm.register_attribute()
class Ed25519Alg(EdDSA):
    """Ed25519 (RFC 9864), -19."""

    identifier = -19
    fullname = "ED25519"


WORK = Path(sys.argv[1])
CDDL_VERIFY = sys.argv[2]
SCHEMA = WORK / "suit-keyway.cddl"
failures = []


def cddl_ok(path):
    r = subprocess.run(
        [CDDL_VERIFY, "--require-deterministic", "--no-annotate", "-t",
         "SUIT_Envelope_Tagged", "-o", "/dev/null", str(SCHEMA), str(path)],
        capture_output=True, text=True)
    return r.returncode == 0, (r.stderr or r.stdout).strip()


def envelope_map(data):
    env = cbor2.loads(data)
    assert isinstance(env, cbor2.CBORTag) and env.tag == 107, "tag 107"
    return env.value


def cose_check(data, pub_pem):
    """Number of signatures pycose verified; raises on any that does not."""
    env = envelope_map(data)
    auth = cbor2.loads(env[2])
    digest_bstr = auth[0]
    alg, digest = cbor2.loads(digest_bstr)[:2]
    if alg != -16:
        raise ValueError(f"digest algorithm {alg}")
    # draft-37 §8.3: SHA-256 over the bstr-wrapped manifest.
    if hashlib.sha256(cbor2.dumps(env[3])).digest() != digest:
        raise ValueError("manifest digest mismatch")
    key = CoseKey.from_pem_public_key(pub_pem)
    for block in auth[1:]:
        msg = Sign1Message.decode(block)
        msg.payload = digest_bstr  # detached payload (RFC 9052 §4.1)
        msg.key = key
        if not msg.verify_signature():
            raise ValueError(f"signature (alg {msg.phdr}) does not verify")
    return len(auth) - 1


def redo(data, fn):
    """The envelope with its decoded member map changed by fn."""
    env = envelope_map(data)
    fn(env)
    return cbor2.dumps(cbor2.CBORTag(107, env))


def with_manifest(fn):
    def edit(env):
        m = cbor2.loads(env[3])
        fn(m)
        env[3] = cbor2.dumps(m)
    return edit


def main():
    kinds = [line.split() for line in (WORK / "envelopes.txt").read_text().splitlines()]
    sigs = 0
    for name, pub in kinds:
        path = WORK / f"{name}.suit"
        ok, why = cddl_ok(path)
        if not ok:
            failures.append(f"CDDL refused {name}: {why}")
        try:
            sigs += cose_check(path.read_bytes(), (WORK / pub).read_bytes())
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failures.append(f"pycose refused {name}: {e}")
    print(f"suit-interop: {len(kinds)} envelopes valid against the SUIT CDDL "
          f"(deterministic), {sigs} COSE_Sign1 signatures verified by pycose")

    plain = (WORK / "plain.suit").read_bytes()
    notes = (WORK / "notes-cves.suit").read_bytes()
    pub = (WORK / "ed.pub").read_bytes()

    def bare_set_version(m):
        m[6] = cbor2.loads(m[6])

    def text_key(env):
        t = cbor2.loads(env[23])
        t["en"]["keyway-fixed-cves"] = t["en"].pop(-257)
        env[23] = cbor2.dumps(t)

    def flip_signature(env):
        auth = cbor2.loads(env[2])
        s = cbor2.loads(auth[1])
        sig = bytearray(s.value[3])
        sig[0] ^= 1
        s.value[3] = bytes(sig)
        auth[1] = cbor2.dumps(s)
        env[2] = cbor2.dumps(auth)

    def sequence_up(m):
        m[2] += 1

    def manifest_before_auth(env):
        items = list(env.items())
        env.clear()
        for k, v in [items[1], items[0]] + items[2:]:
            env[k] = v

    broken = [
        ("set-version as a bare array", "CDDL", redo(plain, with_manifest(bare_set_version))),
        ("CVE list under a text key", "CDDL", redo(notes, text_key)),
        ("envelope map out of canonical order", "CDDL", redo(plain, manifest_before_auth)),
        ("a flipped signature bit", "COSE", redo(plain, flip_signature)),
        ("manifest changed after signing", "COSE", redo(plain, with_manifest(sequence_up))),
    ]
    refused = 0
    for what, check, data in broken:
        path = WORK / "broken.suit"
        path.write_bytes(data)
        if check == "CDDL":
            ok, why = cddl_ok(path)
            if ok:
                failures.append(f"CDDL accepted an envelope with {what}")
            else:
                refused += 1
                print(f"  refused by CDDL, as it must be: {what}")
        else:
            try:
                cose_check(data, pub)
                failures.append(f"pycose accepted an envelope with {what}")
            except Exception as e:  # noqa: BLE001
                refused += 1
                print(f"  refused by pycose, as it must be: {what} ({e})")
    print(f"suit-interop: {refused} of {len(broken)} broken envelopes refused")
    for f in failures:
        print(f"suit-interop: FAIL: {f}", file=sys.stderr)
    sys.exit(1 if failures else 0)


main()
