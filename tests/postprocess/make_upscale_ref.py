#!/usr/bin/env python3
"""tests/postprocess/make_upscale_ref.py - reference data for postprocess.upscale
(tests/postprocess/test_upscale.c), into tests/postprocess/data/upscale/:

  input.png                 a random 8-bit RGB image (fresh each run)
  <model>.{pth,safetensors} small random-weight upscalers, written as
                            torch.save / safetensors files in the layouts
                            found in the wild
  <model>.out.npy           spandrel's output for input.png, float32 [H,W,3],
                            before clamping and quantisation
  pil_<filter>_<w>x<h>.png  Pillow's resize of input.png

Needs torch, spandrel, safetensors, pillow, numpy (PyPI).
Run: python3 tests/postprocess/make_upscale_ref.py"""
import os, re, sys
from collections import OrderedDict
import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
import spandrel
from spandrel.architectures.ESRGAN import ESRGAN
from spandrel.architectures.Compact import Compact

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "data", "upscale")
os.makedirs(out, exist_ok=True)
torch.manual_seed(int.from_bytes(os.urandom(4), "little"))
rng = np.random.default_rng()

H, W = 13, 17
img = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
Image.fromarray(img).save(os.path.join(out, "input.png"))
x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def randomize(model):
    # Default inits leave biases ~0 and PReLU slopes at 0.25: draw them all.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or p.ndim == 1:
                p.copy_(torch.randn_like(p) * 0.1)
    return model


def old_to_new(sd, nb, n_up):
    """ESRGAN old keys (model.N...) -> Real-ESRGAN keys (conv_first, body.N.rdbK.convJ, ...)."""
    new = OrderedDict()
    for k, v in sd.items():
        m = re.match(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$", k)
        if m:
            new[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = v
            continue
        kind = k.split(".")[-1]
        if k.startswith(f"model.1.sub.{nb}."):
            new[f"conv_body.{kind}"] = v
        elif k.startswith("model.0."):
            new[f"conv_first.{kind}"] = v
        else:
            idx = int(k.split(".")[1])
            if idx % 3 == 0 and idx // 3 <= n_up:
                new[f"conv_up{idx // 3}.{kind}"] = v
            elif idx == 3 * n_up + 2:
                new[f"conv_hr.{kind}"] = v
            elif idx == 3 * n_up + 4:
                new[f"conv_last.{kind}"] = v
            else:
                raise KeyError(k)
    return new


def run_spandrel(path, name):
    desc = spandrel.ModelLoader().load_from_file(path)
    with torch.no_grad():
        y = desc.model.eval()(x)
    np.save(os.path.join(out, name + ".out.npy"), y[0].permute(1, 2, 0).numpy().astype(np.float32))
    print(name, desc.architecture.id, "scale", desc.scale, tuple(y.shape))


# RRDBNet x4, old ESRGAN keys, safetensors
m = randomize(ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=2, scale=4))
sd = OrderedDict((k, v.contiguous()) for k, v in m.state_dict().items())
save_file(dict(sd), os.path.join(out, "rrdb_x4_old.safetensors"))
run_spandrel(os.path.join(out, "rrdb_x4_old.safetensors"), "rrdb_x4_old")
# the same weights in Real-ESRGAN keys under params_ema, torch.save
torch.save({"params_ema": old_to_new(sd, 2, 2)}, os.path.join(out, "rrdb_x4_new.pth"))
run_spandrel(os.path.join(out, "rrdb_x4_new.pth"), "rrdb_x4_new")

# RealESRGAN x2plus layout: pixel-unshuffle by 2, then x4 (in_nc = 12)
m = randomize(ESRGAN(in_nc=12, out_nc=3, num_filters=8, num_blocks=1, scale=4, shuffle_factor=2))
sd = OrderedDict((k, v.contiguous()) for k, v in m.state_dict().items())
torch.save({"params_ema": old_to_new(sd, 1, 2)}, os.path.join(out, "rrdb_x2.pth"))
run_spandrel(os.path.join(out, "rrdb_x2.pth"), "rrdb_x2")

# SRVGGNetCompact x4 (realesr-general-x4v3 / animevideov3 layout), PReLU
m = randomize(Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=3, upscale=4, act_type="prelu"))
torch.save({"params": m.state_dict()}, os.path.join(out, "compact_x4.pth"))
run_spandrel(os.path.join(out, "compact_x4.pth"), "compact_x4")
m = randomize(Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2, act_type="prelu"))
save_file({k: v.contiguous() for k, v in m.state_dict().items()}, os.path.join(out, "compact_x2.safetensors"))
run_spandrel(os.path.join(out, "compact_x2.safetensors"), "compact_x2")

# Pillow resizes (non-integer factors too)
pil = Image.open(os.path.join(out, "input.png"))
for flt, code in (("lanczos", Image.LANCZOS), ("bicubic", Image.BICUBIC), ("nearest", Image.NEAREST)):
    for (w, h) in ((W * 4, H * 4), (40, 29), (9, 7)):
        pil.resize((w, h), code).save(os.path.join(out, f"pil_{flt}_{w}x{h}.png"))
print("wrote", out)
