#!/usr/bin/env python3
"""The tiny SD1.5 ControlNet of gen_controlnet.py (data/controlnet/cn-sd15)
as an original-layout (lllyasviel cldm, "control_model.*") single file, as
A1111/ComfyUI users have ControlNets: data/controlnet/cn-sd15-original.safetensors.

The names are written by the inverse of diffusers' conversion, and the file
is checked by diffusers itself: ControlNetModel.from_single_file(file,
config=cn-sd15) must give every tensor of the folder's model bit for bit.

Usage (torch, diffusers from PyPI; from the repository root):
  python tests/inference/gen_controlnet_single.py
"""
import os

import torch
from diffusers import ControlNetModel
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
D = os.path.join(HERE, "data", "controlnet")
sd = load_file(os.path.join(D, "cn-sd15", "diffusion_pytorch_model.safetensors"))
RES = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "norm2": "out_layers.0",
       "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
layers = 2
n_emb = len({k.split(".")[2] for k in sd if k.startswith("controlnet_cond_embedding.blocks.")})
out = {}
for k, v in sd.items():
    p = k.split(".")
    if k.startswith("time_embedding."):
        n = "time_embed." + {"linear_1": "0", "linear_2": "2"}[p[1]] + "." + p[2]
    elif k.startswith("conv_in."):
        n = "input_blocks.0.0." + p[1]
    elif k.startswith("down_blocks."):
        i, kind = int(p[1]), p[2]
        if kind == "downsamplers":
            n = f"input_blocks.{3 + i * (layers + 1)}.0.op." + ".".join(p[5:])
        else:
            j = int(p[3])
            blk = f"input_blocks.{1 + i * (layers + 1) + j}"
            n = (f"{blk}.0.{RES[p[4]]}." + ".".join(p[5:])) if kind == "resnets" else f"{blk}.1." + ".".join(p[4:])
    elif k.startswith("mid_block."):
        idx = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[p[1] + "." + p[2]]
        n = f"middle_block.{idx}." + ((RES[p[3]] + "." + ".".join(p[4:])) if p[1] == "resnets" else ".".join(p[3:]))
    elif k.startswith("controlnet_cond_embedding."):
        if p[1] == "conv_in":
            n = "input_hint_block.0." + p[2]
        elif p[1] == "conv_out":
            n = f"input_hint_block.{2 * n_emb + 2}." + p[2]
        else:
            n = f"input_hint_block.{2 * int(p[2]) + 2}." + p[3]
    elif k.startswith("controlnet_down_blocks."):
        n = f"zero_convs.{p[1]}.0." + p[2]
    elif k.startswith("controlnet_mid_block."):
        n = "middle_block_out.0." + p[1]
    else:
        raise SystemExit("unmapped " + k)
    out["control_model." + n] = v
path = os.path.join(D, "cn-sd15-original.safetensors")
save_file(out, path)
ref = ControlNetModel.from_pretrained(os.path.join(D, "cn-sd15")).state_dict()
got = ControlNetModel.from_single_file(path, config=os.path.join(D, "cn-sd15")).state_dict()
assert ref.keys() == got.keys(), set(ref) ^ set(got)
bad = [k for k in ref if not torch.equal(ref[k].float(), got[k].float())]
assert not bad, bad[:5]
print("ok:", len(out), "tensors; diffusers reads the file back identically")
