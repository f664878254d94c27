"""Goldens for tests/vae: AutoencoderKL encoder outputs from diffusers.

Run from the repository root (dev machines only; the tests never run Python):
    /work/venv/bin/python tests/vae/gen_goldens.py [../shared/reference]

For the tiny-sd15 and tiny-sdxl VAEs of the reference data it encodes a
deterministic 48x64 image (the same formula is computed in test_vae.c) and
writes, into tests/vae/data/:
    <model>_encode_mean.npy     latent_dist.mean            [1,4,6,8]
    <model>_encode_sample.npy   (mean + std * noise) * scaling_factor,
                                noise = torch.manual_seed(7); torch.randn(1,4,6,8)
"""
import os
import sys

import numpy as np
import torch
from diffusers import AutoencoderKL

H, W = 48, 64


def image():
    y, x = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    chans = [0.5 + 0.45 * np.sin(0.3 * x + 0.2 * y + c) for c in range(3)]
    return np.stack(chans)[None].astype(np.float32)  # [1,3,H,W] in [0,1]


def main():
    ref = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../shared/reference")
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    x = torch.from_numpy(image()) * 2 - 1
    for name in ("tiny-sd15", "tiny-sdxl"):
        vae = AutoencoderKL.from_pretrained(os.path.join(ref, name, "diffusers", "vae")).float().eval()
        with torch.no_grad():
            dist = vae.encode(x).latent_dist
        torch.manual_seed(7)
        noise = torch.randn(dist.mean.shape)
        sample = (dist.mean + dist.std * noise) * vae.config.scaling_factor
        tag = name.replace("tiny-", "")
        np.save(os.path.join(out, f"{tag}_encode_mean.npy"), dist.mean.numpy().astype(np.float32))
        np.save(os.path.join(out, f"{tag}_encode_sample.npy"), sample.numpy().astype(np.float32))
        print(tag, tuple(dist.mean.shape), float(dist.mean.abs().mean()), float(dist.std.mean()))


if __name__ == "__main__":
    main()
