#!/usr/bin/env python3
"""Generates non-square UNet goldens for tests/unet (the shared reference only
has 8x8 latents). Runs diffusers' UNet2DConditionModel (float32, CPU, one
thread) on the tiny reference weights; encoder_hidden_states and SDXL pooled
embeds are read from the reference's euler_64x64 call00 inputs, so only the
small tensors are committed.

Usage: /work/venv/bin/python tests/unet/gen_goldens.py [REFERENCE_DIR]
Writes tests/unet/data/<model>_<h>x<w>_{sample,timestep,time_ids,out}.npy.
"""
import os
import sys

import numpy as np
import torch
from diffusers import UNet2DConditionModel

HERE = os.path.dirname(os.path.abspath(__file__))
REF = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "reference")
OUT = os.path.join(HERE, "data")

# (latent h, latent w, timestep): one even non-square size, one odd size that
# exercises diffusers' forwarded upsample size (nearest resize to a skip).
CASES = [(6, 10, 500.0), (9, 13, 637.0)]


def run(model):
    inter = os.path.join(REF, model, "t2i", "euler_64x64.intermediates")
    unet = UNet2DConditionModel.from_pretrained(os.path.join(REF, model, "diffusers", "unet")).eval()
    ehs = torch.from_numpy(np.load(os.path.join(inter, "unet_call00_encoder_hidden_states.npy")))
    sdxl = unet.config.addition_embed_type == "text_time"
    for i, (h, w, t) in enumerate(CASES):
        g = torch.Generator("cpu").manual_seed(1000 + i)
        sample = torch.randn((2, unet.config.in_channels, h, w), generator=g)
        timestep = torch.tensor([t], dtype=torch.float32)
        kwargs = {}
        tag = f"{model}_{h}x{w}"
        if sdxl:
            text = torch.from_numpy(np.load(os.path.join(inter, "unet_call00_added_text_embeds.npy")))
            ids = torch.tensor([[h * 8, w * 8, 0, 0, h * 8, w * 8]] * 2, dtype=torch.float32)
            kwargs["added_cond_kwargs"] = {"text_embeds": text, "time_ids": ids}
            np.save(os.path.join(OUT, tag + "_time_ids.npy"), ids.numpy())
        with torch.no_grad():
            out = unet(sample, timestep, encoder_hidden_states=ehs, **kwargs).sample
        np.save(os.path.join(OUT, tag + "_sample.npy"), sample.numpy())
        np.save(os.path.join(OUT, tag + "_timestep.npy"), timestep.numpy())
        np.save(os.path.join(OUT, tag + "_out.npy"), out.numpy())
        print(tag, tuple(out.shape), float(out.abs().mean()))


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for model in ("tiny-sd15", "tiny-sdxl"):
        run(model)


if __name__ == "__main__":
    main()
