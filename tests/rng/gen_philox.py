#!/usr/bin/env python3
"""Expected values for the Philox test (tests/rng/test_philox.c).

An independent re-implementation, from the published algorithm, of
Philox4x32-10 (Salmon et al. 2011, Random123) and of the "NV" normal
generator of AUTOMATIC1111's web UI (modules/rng_philox.py: counter
{offset, 0, index, 0}, key = the 64-bit seed as (low, high) words,
Box-Muller on the first two words in float64 with float32-rounded
constants, one offset per call). Plain Python integers and the math
module only, so nothing is shared with the C code under test.

Writes tests/rng/philox_goldens.json: for each case the float32 bit
patterns of the outputs. Run: python3 tests/rng/gen_philox.py
"""
import json
import math
import os
import struct

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox4x32(ctr, key, rounds=10):
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for r in range(rounds):
        if r > 0:
            k0 = (k0 + W0) & MASK
            k1 = (k1 + W1) & MASK
        p0 = M0 * c0
        p1 = M1 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & MASK, p1 & MASK, ((p0 >> 32) ^ c3 ^ k1) & MASK, p0 & MASK
    return [c0, c1, c2, c3]


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


INV32 = f32(2.3283064e-10)
INV32_2PI = f32(2.3283064e-10 * 6.2831855)


def randn(seed, offset, n):
    key = [seed & MASK, (seed >> 32) & MASK]
    out = []
    for i in range(n):
        w = philox4x32([offset & MASK, 0, i & MASK, (i >> 32) & MASK], key)
        u = w[0] * INV32 + INV32 / 2
        v = w[1] * INV32_2PI + INV32_2PI / 2
        out.append(f32(math.sqrt(-2.0 * math.log(u)) * math.sin(v)))
    return out


def main():
    cases = []
    # seed, number of calls before (offset), n
    for seed, offset, n in [(0, 0, 12), (0, 1, 12), (1, 0, 64), (42, 3, 33), (123456789, 0, 17),
                            (2**32 + 5, 0, 8), (2**63 + 12345, 7, 8), (4294967295, 2, 40)]:
        cases.append({"seed": str(seed), "offset": offset, "n": n,
                      "bits": [f32_bits(v) for v in randn(seed, offset, n)]})
    kat = []
    for ctr, key in [([0, 0, 0, 0], [0, 0]), ([MASK] * 4, [MASK, MASK]),
                     ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0]),
                     ([7, 0, 99, 0], [0xDEADBEEF, 1])]:
        kat.append({"ctr": ctr, "key": key, "out": philox4x32(ctr, key)})
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "philox_goldens.json")
    with open(path, "w") as f:
        json.dump({"generator": "tests/rng/gen_philox.py", "randn": cases, "philox": kat}, f, indent=0)
        f.write("\n")
    # The A1111 docstring example (seed 0, shape (3, 4)) for a quick look.
    print(["%.8f" % v for v in randn(0, 0, 12)])


if __name__ == "__main__":
    main()
