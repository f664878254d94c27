#!/usr/bin/env python3
"""Writes tests/rng/goldens.json: extra torch CPU generator goldens beyond the
shared reference (odd sizes around the 16-wide Box-Muller blocks, a latent-
sized draw, large seeds, successive draws mixing randn and rand).

Values are stored as uint32 bit patterns so the test compares bits. The
large draw is stored as a checksum (sum of bit patterns mod 2^64 plus a few
sampled values) to keep the file small.

Run with: /work/venv/bin/python tests/rng/gen_goldens.py
PyTorch's AVX512 and AVX2 CPU kernels differ in the last bit for randn; sdrt
follows the AVX2 kernel (which the shared reference was made with), so the
script pins ATEN_CPU_CAPABILITY=avx2 before importing torch.
"""
import json
import os
import sys

os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
import numpy as np  # noqa: E402
import torch  # noqa: E402


def bits(t):
    return [int(v) for v in t.contiguous().numpy().view(np.uint32).ravel()]


def main():
    out = {"torch_version": torch.__version__,
           "capability": torch.backends.cpu.get_cpu_capability(),
           "cases": [], "big": [], "sequences": []}
    for seed in (0, 7, 2**32 + 5, 2**40 + 7, 2**63 - 1):
        for n in (1, 2, 3, 15, 16, 31, 32, 33, 47, 100):
            g = torch.Generator("cpu").manual_seed(seed)
            out["cases"].append({"seed": seed, "op": "randn", "n": n,
                                 "bits": bits(torch.randn(n, generator=g))})
        for n in (1, 5, 33):
            g = torch.Generator("cpu").manual_seed(seed)
            out["cases"].append({"seed": seed, "op": "rand", "n": n,
                                 "bits": bits(torch.rand(n, generator=g))})
    for seed, n in ((42, 4 * 128 * 128), (123456789, 4 * 96 * 96 + 3)):
        g = torch.Generator("cpu").manual_seed(seed)
        b = np.array(bits(torch.randn(n, generator=g)), dtype=np.uint64)
        idx = [0, 1, n // 3, n // 2, n - 17, n - 1]
        out["big"].append({"seed": seed, "n": n, "bitsum": int(sum(int(v) for v in b) % (1 << 64)),
                           "samples": {str(i): int(b[i]) for i in idx}})
    seq = [("randn", 5), ("randn", 20), ("rand", 3), ("randn", 1), ("randn", 3),
           ("rand", 16), ("randn", 15), ("randn", 16), ("randn", 17)]
    for seed in (42, 2**40 + 7):
        g = torch.Generator("cpu").manual_seed(seed)
        draws = []
        for op, n in seq:
            fn = torch.randn if op == "randn" else torch.rand
            draws.append({"op": op, "n": n, "bits": bits(fn(n, generator=g))})
        out["sequences"].append({"seed": seed, "draws": draws})
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "goldens.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
