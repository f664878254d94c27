#!/usr/bin/env python3
"""tests/inference/make_hires_ref.py - torch.nn.functional.interpolate
references for the hires fix's latent upscalers (plugins/inference/hires.c),
into tests/inference/data/hires/: in.npy [2,4,5,7] (fresh random) and its
resize to 12x16 and 10x14 in the modes A1111's Latent, Latent (bicubic) and
Latent (nearest) use (align_corners=False, antialias=False).
Needs torch and numpy (PyPI)."""
import os
import numpy as np
import torch
import torch.nn.functional as F

out = os.path.join(os.path.dirname(__file__), "data", "hires")
os.makedirs(out, exist_ok=True)
x = torch.randn(2, 4, 5, 7)
np.save(os.path.join(out, "in.npy"), x.numpy())
for mode in ("bilinear", "bicubic", "nearest"):
    for (h, w) in ((12, 16), (10, 14)):
        kw = {} if mode == "nearest" else {"align_corners": False, "antialias": False}
        y = F.interpolate(x, size=(h, w), mode=mode, **kw)
        np.save(os.path.join(out, f"{mode}_{h}x{w}.npy"), y.numpy())
print("wrote", out)
