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


def deterministic_maps(data):
    """Number of maps checked; raises on one whose keys are not in RFC 8949
    §4.2.1 order (bytewise by encoded key). cddl-verifier's
    --require-deterministic does not look inside `bstr .cbor` members, so
    this walks into every byte string that holds exactly one CBOR item."""
    count = 0

    def walk(v, at):
        nonlocal count
        if isinstance(v, dict):
            count += 1
            keys = [cbor2.dumps(k) for k in v]
            if keys != sorted(keys):
                raise ValueError(f"map at {at} is not in deterministic key order")
            for k, x in v.items():
                walk(x, f"{at}/{k!r}")
        elif isinstance(v, (list, tuple)):
            for n, x in enumerate(v):
                walk(x, f"{at}[{n}]")
        elif isinstance(v, cbor2.CBORTag):
            walk(v.value, at)
        elif isinstance(v, bytes):
            try:
                inner = cbor2.loads(v)
            except Exception:  # noqa: BLE001 - not CBOR: a payload, a signature
                return
            try:
                again = cbor2.dumps(inner)
            except Exception:  # noqa: BLE001 - random bytes that merely parse (a lone break)
                return
            if again == v:
                walk(inner, f"{at}<<>>")

    walk(cbor2.loads(data), "")
    return count


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
    key = CoseKey.from_pem_public_key(pub_pem.decode())
    for block in auth[1:]:
        msg = Sign1Message.decode(block)
        msg.payload = digest_bstr  # detached payload (RFC 9052 §4.1)
        msg.key = key
        if not msg.verify_signature():
            raise ValueError(f"the signature does not verify ({msg.phdr})")
    return len(auth) - 1


def redo(data, fn):
    """The envelope with its decoded member map changed by fn."""
    env = dict(envelope_map(data))
    fn(env)
    return cbor2.dumps(cbor2.CBORTag(107, env))


def with_manifest(fn):
    def edit(env):
        m = dict(cbor2.loads(env[3]))
        fn(m)
        env[3] = cbor2.dumps(m)
    return edit


def main():
    kinds = [line.split() for line in (WORK / "envelopes.txt").read_text().splitlines()]
    sigs = maps = 0
    for name, pub in kinds:
        path = WORK / f"{name}.suit"
        ok, why = cddl_ok(path)
        if not ok:
            failures.append(f"CDDL refused {name}: {why}")
        try:
            maps += deterministic_maps(path.read_bytes())
        except ValueError as e:
            failures.append(f"{name}: {e}")
        try:
            sigs += cose_check(path.read_bytes(), (WORK / pub).read_bytes())
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failures.append(f"pycose refused {name}: {e}")
    print(f"suit-interop: {len(kinds)} envelopes valid against the SUIT CDDL, "
          f"{maps} maps in deterministic order at every depth, "
          f"{sigs} COSE_Sign1 signatures verified by pycose")

    plain = (WORK / "plain.suit").read_bytes()
    notes = (WORK / "notes-cves.suit").read_bytes()
    pub = (WORK / "ed.pub").read_bytes()

    def bare_set_version(m):
        m[6] = cbor2.loads(m[6])

    def text_key(env):
        t = dict(cbor2.loads(env[23]))
        t["en"] = dict(t["en"])
        t["en"]["keyway-fixed-cves"] = t["en"].pop(-257)
        env[23] = cbor2.dumps(t)

    def flip_signature(env):
        auth = list(cbor2.loads(env[2]))
        s = cbor2.loads(auth[1])
        parts = list(s.value)
        sig = bytearray(parts[3])
        sig[0] ^= 1
        parts[3] = bytes(sig)
        auth[1] = cbor2.dumps(cbor2.CBORTag(s.tag, parts))
        env[2] = cbor2.dumps(auth)

    def install_params_unsorted(m):
        seq = cbor2.loads(m[20])
        seq[3] = dict(sorted(seq[3].items(), key=lambda kv: -kv[0]))
        m[20] = cbor2.dumps(seq)

    def sequence_up(m):
        m[2] += 1

    def manifest_before_auth(env):
        items = list(env.items())
        env.clear()
        for k, v in [items[1], items[0]] + items[2:]:
            env[k] = v

    # (what, check, envelope, the refusal's reason must contain)
    broken = [
        ("set-version as a bare array", "CDDL", redo(plain, with_manifest(bare_set_version)), ""),
        ("CVE list under a text key", "CDDL", redo(notes, text_key), ""),
        ("envelope map out of canonical order", "CDDL", redo(plain, manifest_before_auth), ""),
        ("install parameters out of order inside bstr .cbor", "DET",
         redo(plain, with_manifest(install_params_unsorted)), "not in deterministic key order"),
        ("a flipped signature bit", "COSE", redo(plain, flip_signature), "does not verify"),
        ("manifest changed after signing", "COSE", redo(plain, with_manifest(sequence_up)),
         "digest mismatch"),
    ]
    refused = 0
    for what, check, data, reason in broken:
        path = WORK / "broken.suit"
        path.write_bytes(data)
        if check == "DET":
            try:
                deterministic_maps(data)
                failures.append(f"the deterministic check accepted an envelope with {what}")
            except ValueError as e:
                refused += 1
                print(f"  refused by the deterministic check, as it must be: {what} ({e})")
        elif check == "CDDL":
            ok, why = cddl_ok(path)
            if ok:
                failures.append(f"CDDL accepted an envelope with {what}")
            else:
                refused += 1
                first = next((x for x in why.splitlines() if "rror" in x or "FAIL" in x), "")
                print(f"  refused by CDDL, as it must be: {what} ({first.strip()[:120]})")
        else:
            try:
                cose_check(data, pub)
                failures.append(f"pycose accepted an envelope with {what}")
            except Exception as e:  # noqa: BLE001
                if reason not in str(e):
                    failures.append(f"pycose refused {what} for another reason: {e}")
                    continue
                refused += 1
                print(f"  refused by pycose, as it must be: {what} ({e})")
    print(f"suit-interop: {refused} of {len(broken)} broken envelopes refused")
    for f in failures:
        print(f"suit-interop: FAIL: {f}", file=sys.stderr)
    sys.exit(1 if failures else 0)


main()
