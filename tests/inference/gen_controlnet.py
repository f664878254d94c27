#!/usr/bin/env python3
"""Goldens for the ControlNet cases of tests/inference (test_controlnet.c):
diffusers StableDiffusionControlNetPipeline / ...Img2Img / ...Inpaint on the
tiny SD1.5 reference pipeline with a small random-weight ControlNet.

Writes into tests/inference/data/controlnet/:
  cn-sd15/            ControlNetModel.from_unet(tiny-sd15 unet,
                      conditioning_embedding_out_channels=(4, 8, 8, 16)), every
                      weight perturbed at random (its own zero-initialised
                      layers drawn at random), stored float16 (diffusers
                      loads them as float32, as sdrt does)
  cn-sdxl/            the same from the tiny-sdxl UNet
  ctrl_a.png, ctrl_b.png   control images, 80x48 (resized to 64x64 by both sides)
  <case>.latents.npy  final latents (output_type="latent")
  cases.json          per case: the sdrt request fields (paths as @REF/, @DATA/)

Every case: prompt "a red fox in the snow", negative "blurry", 64x64, 8 steps,
guidance 7.5, torch.Generator('cpu').manual_seed(42), float32, one thread.

Usage (torch, diffusers from PyPI; from the repository root):
  python tests/inference/gen_controlnet.py
"""
import json
import os

import numpy as np
import torch
from PIL import Image
from diffusers import (ControlNetModel, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                       StableDiffusionControlNetImg2ImgPipeline, StableDiffusionControlNetInpaintPipeline,
                       StableDiffusionControlNetPipeline, StableDiffusionXLControlNetPipeline,
                       UNet2DConditionModel)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "controlnet")
DATA = os.path.join(HERE, "data")
REF = os.environ.get("SDRT_REFERENCE", os.path.join(HERE, "..", "..", "..", "shared", "reference"))
torch.set_num_threads(1)
torch.manual_seed(11)
os.makedirs(OUT, exist_ok=True)


def make_cn(model):
    unet = UNet2DConditionModel.from_pretrained(os.path.join(REF, model, "diffusers", "unet"))
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(4, 8, 8, 16))
    with torch.no_grad():
        for name, p in cn.named_parameters():
            if name.startswith("controlnet_"):
                p.copy_(torch.randn_like(p) * (0.3 if p.ndim > 1 else 0.1))
            else:
                p.add_(torch.randn_like(p) * 0.01)
    d = os.path.join(OUT, "cn-" + model.split("-")[1])
    cn.half().save_pretrained(d)
    return ControlNetModel.from_pretrained(d, torch_dtype=torch.float32)


def control_image(seed):
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.arange(48), np.arange(80), indexing="ij")
    img = np.stack([(x * 3 + y * (c + 1) * 2) % 256 for c in range(3)], -1).astype(np.float64)
    img += rng.normal(0, 20, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


ctrl = {}
for name, seed in (("ctrl_a", 1), ("ctrl_b", 2)):
    control_image(seed).save(os.path.join(OUT, name + ".png"))
    ctrl[name] = Image.open(os.path.join(OUT, name + ".png")).convert("RGB")
init = Image.open(os.path.join(DATA, "init.png")).convert("RGB")
mask = Image.open(os.path.join(DATA, "mask.png")).convert("RGB")

cn15 = make_cn("tiny-sd15")
cnxl = make_cn("tiny-sdxl")
ref15 = os.path.join(REF, "tiny-sd15", "diffusers")
common = dict(prompt="a red fox in the snow", negative_prompt="blurry", height=64, width=64,
              num_inference_steps=8, guidance_scale=7.5, output_type="latent")
SCHED = {"euler": (EulerDiscreteScheduler, {}, "EulerDiscreteScheduler"),
         "dpmpp_2m_karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}, "DPMSolverMultistepScheduler")}

cases = {}


def run(case, pipe_cls, base, sched, cns, kwargs, req, cn_entries):
    cls, over, cname = SCHED[sched]
    pipe = pipe_cls.from_pretrained(base, controlnet=cns if len(cns) > 1 else cns[0],
                                    **({"safety_checker": None, "requires_safety_checker": False}
                                       if "XL" not in pipe_cls.__name__ else {}))
    pipe.scheduler = cls.from_config(pipe.scheduler.config, **over)
    with torch.no_grad():
        lat = pipe(**common, **kwargs, generator=torch.Generator("cpu").manual_seed(42)).images
    np.save(os.path.join(OUT, case + ".latents.npy"), lat.float().numpy())
    r = {"model_id": "@REF/" + os.path.relpath(base, REF), "prompt": common["prompt"],
         "negative_prompt": common["negative_prompt"], "width": 64, "height": 64, "num_inference_steps": 8,
         "guidance_scale": 7.5, "seed": 42, "scheduler": cname, "scheduler_config": over, "controlnet": cn_entries}
    r.update(req)
    cases[case] = r
    print(case, "done")


def entry(model_dir, img, scale=1.0, start=0.0, end=1.0):
    return {"model_id": "@DATA/controlnet/" + model_dir, "image": "@DATA/controlnet/" + img + ".png",
            "conditioning_scale": scale, "guidance_start": start, "guidance_end": end}


run("t2i_euler", StableDiffusionControlNetPipeline, ref15, "euler", [cn15],
    dict(image=ctrl["ctrl_a"], controlnet_conditioning_scale=0.8), {}, [entry("cn-sd15", "ctrl_a", 0.8)])
run("t2i_dpmpp_window", StableDiffusionControlNetPipeline, ref15, "dpmpp_2m_karras", [cn15],
    dict(image=ctrl["ctrl_a"], controlnet_conditioning_scale=1.0, control_guidance_start=0.25,
         control_guidance_end=0.75), {}, [entry("cn-sd15", "ctrl_a", 1.0, 0.25, 0.75)])
run("t2i_two", StableDiffusionControlNetPipeline, ref15, "euler", [cn15, cn15],
    dict(image=[ctrl["ctrl_a"], ctrl["ctrl_b"]], controlnet_conditioning_scale=[0.7, 0.4],
         control_guidance_start=[0.0, 0.3], control_guidance_end=[1.0, 0.9]), {},
    [entry("cn-sd15", "ctrl_a", 0.7), entry("cn-sd15", "ctrl_b", 0.4, 0.3, 0.9)])
run("t2i_guess", StableDiffusionControlNetPipeline, ref15, "euler", [cn15],
    dict(image=ctrl["ctrl_b"], controlnet_conditioning_scale=1.0, guess_mode=True), {"guess_mode": True},
    [entry("cn-sd15", "ctrl_b", 1.0)])
run("i2i", StableDiffusionControlNetImg2ImgPipeline, ref15, "euler", [cn15],
    dict(image=init, control_image=ctrl["ctrl_a"], strength=0.75, controlnet_conditioning_scale=0.9),
    {"init_image": "@DATA/init.png", "strength": 0.75}, [entry("cn-sd15", "ctrl_a", 0.9)])
run("inpaint", StableDiffusionControlNetInpaintPipeline, ref15, "euler", [cn15],
    dict(image=init, mask_image=mask, control_image=ctrl["ctrl_b"], strength=1.0,
         controlnet_conditioning_scale=0.9),
    {"init_image": "@DATA/init.png", "mask_image": "@DATA/mask.png", "strength": 1.0},
    [entry("cn-sd15", "ctrl_b", 0.9)])
run("xl_t2i_euler", StableDiffusionXLControlNetPipeline, os.path.join(REF, "tiny-sdxl", "diffusers"), "euler",
    [cnxl], dict(image=ctrl["ctrl_a"], controlnet_conditioning_scale=0.8), {}, [entry("cn-sdxl", "ctrl_a", 0.8)])
with open(os.path.join(OUT, "cases.json"), "w") as f:
    json.dump(cases, f, indent=1)
