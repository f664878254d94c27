#!/usr/bin/env python3
"""Reference data for tests/gguf, made with the `gguf` Python package
(pip install gguf numpy), the format's own implementation.

Writes into tests/gguf/data/ (committed; the tests need no Python):
  <type>.blocks   ggml blocks of 1024 elements (random finite scales)
  <type>.deq      their dequantisation by gguf-py, float32 LE
  <type>.src      random float32 input (types gguf-py quantises)
  <type>.q        gguf-py's quantisation of .src (bit-exact with ggml)
  small.gguf      a GGUF v3 file: metadata of every value type, tensors
                  in f32/f16/bf16/q8_0/q4_0/q4_K/q6_K, ldm-style names
  small.<name>.deq  each small.gguf tensor dequantised by gguf-py

Run again with --check FILE to read a GGUF written by sdrt with gguf-py
and print its tensors (the writer test's Python-side cross-check).
"""
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
N = 1024
TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
QUANTISABLE = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]
# Byte offsets of the f16 scale fields in each block (kept finite).
F16_FIELDS = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
              "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}


def random_blocks(rng, name):
    qt = T[name]
    bs, bb = gguf.GGML_QUANT_SIZES[qt]
    raw = rng.integers(0, 256, size=(N // bs, bb), dtype=np.uint8)
    for off in F16_FIELDS[name]:
        vals = (rng.standard_normal(N // bs) * 0.05).astype(np.float16)
        raw[:, off:off + 2] = vals.view(np.uint8).reshape(-1, 2)
    return raw


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        r = gguf.GGUFReader(sys.argv[2])
        counts = {}
        for t in r.tensors:
            if t.tensor_type.name.startswith("I"):
                d = np.asarray(t.data)
            else:
                d = quants.dequantize(t.data, t.tensor_type)
            assert np.all(np.isfinite(d)), t.name
            counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
        print(sys.argv[2], "read by gguf-py", gguf.__name__, "tensors by type:", counts)
        return
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(17)
    for name in TYPES:
        raw = random_blocks(rng, name)
        deq = quants.dequantize(raw.reshape(-1), T[name]).astype(np.float32)
        raw.tofile(os.path.join(OUT, name.lower() + ".blocks"))
        deq.tofile(os.path.join(OUT, name.lower() + ".deq"))
        if name in QUANTISABLE:
            src = (rng.standard_normal(N) * rng.uniform(0.01, 2.0)).astype(np.float32)
            src[:32] = 0.0  # an all-zero block (d == 0)
            q = quants.quantize(src, T[name])
            src.tofile(os.path.join(OUT, name.lower() + ".src"))
            q.tofile(os.path.join(OUT, name.lower() + ".q"))

    w = gguf.GGUFWriter(os.path.join(OUT, "small.gguf"), arch="sdrt-test")
    w.add_uint32("test.u32", 7)
    w.add_int8("test.i8", -3)
    w.add_float32("test.f32", 0.5)
    w.add_bool("test.bool", True)
    w.add_string("test.str", "hello")
    w.add_array("test.arr", [1, 2, 3])
    w.add_array("test.strs", ["a", "bc"])
    w.add_uint64("test.u64", 1 << 40)
    w.add_float64("test.f64", 0.25)
    tensors = {
        "model.diffusion_model.time_embed.0.weight": ("F32", (4, 8)),
        "model.diffusion_model.time_embed.0.bias": ("F16", (4,)),
        "model.diffusion_model.time_embed.2.weight": ("BF16", (2, 3)),
        "model.diffusion_model.out.2.weight": ("Q8_0", (3, 64)),
        "first_stage_model.decoder.conv_in.weight": ("Q4_0", (2, 32)),
        "cond_stage_model.transformer.text_model.final_layer_norm.weight": ("Q4_K", (2, 256)),
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": ("Q6_K", (1, 256)),
    }
    for tname, (tt, shape) in tensors.items():
        n = int(np.prod(shape))
        if tt in ("Q4_K", "Q6_K"):
            raw = random_blocks(rng, tt)[: n // 256].reshape(shape[0], -1)
            w.add_tensor(tname, raw, raw_shape=raw.shape, raw_dtype=T[tt])
            deq = quants.dequantize(raw.reshape(-1), T[tt])
        elif tt in ("Q8_0", "Q4_0"):
            src = rng.standard_normal(shape).astype(np.float32)
            q = quants.quantize(src, T[tt])
            w.add_tensor(tname, q, raw_shape=q.shape, raw_dtype=T[tt])
            deq = quants.dequantize(q, T[tt])
        elif tt == "BF16":
            src = rng.standard_normal(shape).astype(np.float32)
            q = quants.quantize(src, T.BF16)
            w.add_tensor(tname, q, raw_shape=q.shape, raw_dtype=T.BF16)
            deq = quants.dequantize(q, T.BF16)
        else:
            src = rng.standard_normal(shape).astype(np.float32 if tt == "F32" else np.float16)
            w.add_tensor(tname, src)
            deq = src
        np.asarray(deq, dtype=np.float32).tofile(os.path.join(OUT, "small." + tname + ".deq"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
