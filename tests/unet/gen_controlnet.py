#!/usr/bin/env python3
"""Goldens for tests/unet/test_controlnet.c: diffusers ControlNetModel on the
tiny reference UNets (../shared/reference), float32, CPU.

For each of tiny-sd15 and tiny-sdxl, ControlNetModel.from_unet(unet,
conditioning_embedding_out_channels=(4, 8, 8, 16)) copies the UNet's encoder half;
its own layers (controlnet_cond_embedding.*, controlnet_down_blocks.*,
controlnet_mid_block.*, zero-initialised by diffusers) get random weights.
Only those own layers are stored (the rest are the reference UNet's tensors
under the same names, read from ../shared/reference by the test):

  data/controlnet/<model>/config.json           the ControlNetModel config
  data/controlnet/<model>/controlnet_own.safetensors
  data/controlnet/<model>.<what>.npy            inputs: sample [2,4,8,8],
      timesteps [2], context [2,77,D], cond [2,3,64,64] in [0,1]
      (SDXL: text_embeds [2,32], time_ids [2,6]); outputs per case
      (plain: conditioning_scale 0.8; guess: guess_mode, scale 0.5):
      <case>.down<i>, <case>.mid, and plain.unet_out (the UNet given the
      plain residuals as down_block_additional_residuals /
      mid_block_additional_residual).

Usage (torch, diffusers from PyPI; from the repository root):
  python tests/unet/gen_controlnet.py
"""
import json
import os

import numpy as np
import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "controlnet")
REF = os.environ.get("SDRT_REFERENCE", os.path.join(HERE, "..", "..", "..", "shared", "reference"))
torch.manual_seed(7)
torch.set_num_threads(1)


def npy(name, t):
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(t.detach().float().numpy()))


for model, ctx_dim in (("tiny-sd15", 32), ("tiny-sdxl", 64)):
    unet = UNet2DConditionModel.from_pretrained(os.path.join(REF, model, "diffusers", "unet")).eval()
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(4, 8, 8, 16)).eval()
    own = {}
    with torch.no_grad():
        for name, p in cn.named_parameters():
            if name.startswith("controlnet_"):
                p.copy_(torch.randn_like(p) * (0.3 if p.ndim > 1 else 0.1))
                own[name] = p.detach().clone().contiguous()
    d = os.path.join(OUT, model)
    os.makedirs(d, exist_ok=True)
    save_file(own, os.path.join(d, "controlnet_own.safetensors"))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(dict(cn.config), f, indent=1, sort_keys=True, default=list)
    sample = torch.randn(2, 4, 8, 8)
    t = torch.tensor([601.0, 601.0])
    ctx = torch.randn(2, 77, ctx_dim)
    cond = torch.rand(2, 3, 64, 64)
    added = None
    for n, v in (("sample", sample), ("timesteps", t), ("context", ctx), ("cond", cond)):
        npy(f"{model}.{n}", v)
    if model == "tiny-sdxl":
        added = {"text_embeds": torch.randn(2, 32),
                 "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]] * 2)}
        npy(f"{model}.text_embeds", added["text_embeds"])
        npy(f"{model}.time_ids", added["time_ids"])
    with torch.no_grad():
        for case, scale, guess in (("plain", 0.8, False), ("guess", 0.5, True)):
            down, mid = cn(sample, t, ctx, cond, conditioning_scale=scale, guess_mode=guess,
                           added_cond_kwargs=added, return_dict=False)
            for i, r in enumerate(down):
                npy(f"{model}.{case}.down{i}", r)
            npy(f"{model}.{case}.mid", mid)
            if case == "plain":
                out = unet(sample, t, ctx, added_cond_kwargs=added, down_block_additional_residuals=down,
                           mid_block_additional_residual=mid).sample
                npy(f"{model}.plain.unet_out", out)
    print(model, "down residuals:", len(down))
