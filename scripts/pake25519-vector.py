#!/usr/bin/env python3
"""An independent SPAKE2+ edwards25519 vector for keyway-channel's `pake25519`
(the pairing suite): the group operations by libsodium (PyNaCl), the
transcript and key schedule (RFC 9383, sections 3.3-3.4) by hashlib/hmac.
RFC 9383 has vectors for its P-256 suites only, so this checks the Rust
module's group part against another implementation of edwards25519.

    pip install pynacl && python3 scripts/pake25519-vector.py

Prints the vector `pake25519_matches_libsodium_vector` hard-codes. The
inputs are fixed byte patterns (the same the test builds); scalars are
little-endian (RFC 8032), as in the module.
"""
import hashlib
import hmac
import struct

from nacl import bindings as b

M = bytes.fromhex("d048032c6ea0b6d697ddc2e86bda85a33adac920f1bf18e1b0c6d166a5cecdaf")
N = bytes.fromhex("d3bfb518f44f3430f29d0c92af503865a1ed3281dc69b35dd868ba85f886c4ab")
CONTEXT = b"keyway pake25519 libsodium vector"
PROVER_ID = b"client"
VERIFIER_ID = b"lock"


def pattern(n, k):
    """out[i] = (i * 29 + k) mod 256: the test's `pattern`."""
    return bytes((i * 29 + k) & 0xFF for i in range(n))


def reduce(le):
    return b.crypto_core_ed25519_scalar_reduce(le + bytes(64 - len(le)))


def mul(s, p):
    return b.crypto_scalarmult_ed25519_noclamp(s, p)


def base(s):
    return b.crypto_scalarmult_ed25519_base_noclamp(s)


def times8(s):
    return b.crypto_core_ed25519_scalar_mul(s, (8).to_bytes(32, "little"))


def hkdf(ikm, info, length):
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out, i = out + t, i + 1
    return out[:length]


pbkdf = pattern(80, 7)
w0, w1 = reduce(pbkdf[:40]), reduce(pbkdf[40:])
x, y = reduce(pattern(64, 11)), reduce(pattern(64, 13))
L = base(w1)
X = b.crypto_core_ed25519_add(base(x), mul(w0, M))
Y = b.crypto_core_ed25519_add(base(y), mul(w0, N))
# The verifier's Z and V, and the prover's: equal.
Z = mul(times8(y), b.crypto_core_ed25519_sub(X, mul(w0, M)))
V = mul(times8(y), L)
unmasked = b.crypto_core_ed25519_sub(Y, mul(w0, N))
assert Z == mul(times8(x), unmasked)
assert V == mul(times8(w1), unmasked)

tt = b""
for part in (CONTEXT, PROVER_ID, VERIFIER_ID, M, N, X, Y, Z, V, w0):
    tt += struct.pack("<Q", len(part)) + part
k_main = hashlib.sha256(tt).digest()
conf = hkdf(k_main, b"ConfirmationKeys", 64)
k_shared = hkdf(k_main, b"SharedKey", 32)
confirm_p = hmac.new(conf[:32], Y, hashlib.sha256).digest()
confirm_v = hmac.new(conf[32:], X, hashlib.sha256).digest()
for name, value in (("w0", w0), ("L", L), ("shareP", X), ("shareV", Y), ("Z", Z), ("V", V),
                    ("confirmP", confirm_p), ("confirmV", confirm_v), ("K_shared", k_shared)):
    print(f"{name}: {value.hex()}")
