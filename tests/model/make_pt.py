#!/usr/bin/env python3
"""tests/model/make_pt.py - writes the torch.save files the restricted
pickle reader (plugins/model/pickle.c) is tested on, into tests/model/data/pt/,
with expected.json: per file, per flattened tensor name, dtype, shape and
the values as float (bf16/f16 values are exact in float).

Also copies them into tests/fuzz/corpus/pickle/ as seeds. Needs torch (PyPI). Run: python3 tests/model/make_pt.py [outdir]
Fresh random values each run; the C test reads whatever expected.json says."""
import json, os, sys
import torch

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "data", "pt")
os.makedirs(out, exist_ok=True)
expected = {}


def record(fname, flat):
    expected[fname] = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape),
                           "values": [float(x) for x in v.detach().reshape(-1).double().tolist()]}
                       for k, v in flat.items()}


# 1. a plain OrderedDict state dict: f32, f16, bf16, int64, 0-dim, views into
#    one shared storage (offset, transposed stride).
base = torch.randn(12)
mat = torch.randn(3, 4)
sd = {"conv.weight": torch.randn(2, 3, 3, 3), "conv.bias": torch.randn(2),
      "half": torch.randn(5).half(), "bf16": torch.randn(2, 3).bfloat16(),
      "long": torch.arange(-3, 4, dtype=torch.int64), "scalar": torch.tensor(2.5),
      "view.slice": base[2:7], "view.strided": base[1::3], "view.t": mat.t(), "mat": mat}
from collections import OrderedDict
torch.save(OrderedDict(sd), os.path.join(out, "state_dict.pt"))
record("state_dict.pt", sd)

# 2. RealESRGAN layout: the weights under "params_ema", other entries plain.
inner = OrderedDict([("conv_first.weight", torch.randn(4, 3, 3, 3)), ("conv_first.bias", torch.randn(4))])
torch.save({"params_ema": inner, "iter": 7, "note": "x"}, os.path.join(out, "nested.pth"))
record("nested.pth", {"params_ema." + k: v for k, v in inner.items()})

# 3. textual-inversion layout (A1111): a Parameter, an int dict, strings.
p = torch.nn.Parameter(torch.randn(2, 8))
torch.save({"string_to_param": {"*": p}, "string_to_token": {"*": 265}, "name": "emb", "step": 10,
            "sd_checkpoint": None}, os.path.join(out, "embedding.pt"))
record("embedding.pt", {"string_to_param.*": p})


# 4. a file that would run code if unpickled by Python: refused by name.
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pickle-ran-code",))


torch.save({"w": torch.zeros(1), "x": Evil()}, os.path.join(out, "evil.pt"))

# 5. the legacy (torch < 1.6) non-zip format: refused with a clear error.
torch.save({"w": torch.zeros(2)}, os.path.join(out, "legacy.pt"), _use_new_zipfile_serialization=False)

with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
# The same files seed the fuzz target (tests/fuzz/fuzz_pickle.c).
if len(sys.argv) <= 1:
    import shutil
    corpus = os.path.join(os.path.dirname(__file__), "..", "fuzz", "corpus", "pickle")
    os.makedirs(corpus, exist_ok=True)
    for name in ("state_dict.pt", "nested.pth", "embedding.pt", "evil.pt", "legacy.pt"):
        shutil.copy(os.path.join(out, name), corpus)
print("wrote", out, "with torch", torch.__version__)
