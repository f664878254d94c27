"""Goldens for tests/inference: img2img, inpainting and the SDXL refiner
handoff, computed by diffusers on the tiny reference pipelines.

Run from the repository root (dev machines only; the tests never run Python):
    /work/venv/bin/python tests/inference/gen_goldens.py [../shared/reference] [--lora-only]

--lora-only recomputes just the lora_* cases (txt2img with LoRA adapters,
the files of tests/lora/data) and ays_sdxl_dpmpp_2m (Align Your Steps with
the SDXL table) and replaces them in cases.json.

Writes into tests/inference/data/:
    init.png, mask.png             64x64 init image and mask (white = repaint)
    small.png                      4x4, for the size errors
    models/tiny-sd15-inpaint/      a 9-channel inpainting UNet (random weights,
                                   stored f16; diffusers runs them in f32) and a
                                   model_index.json; the other components are
                                   the reference tiny-sd15's, linked in by the
                                   test at run time (never copied)
    models/tiny-sdxl-refiner/      an SDXL-refiner-architecture UNet (only
                                   text_encoder_2, 5 time ids with the aesthetic
                                   score), the rest linked from tiny-sdxl
    cases.json                     per case: the sdrt request (paths as @REF/,
                                   @DATA/ placeholders), the diffusers call, and
                                   the golden final latents file
    <case>.latents.npy             final latents [1,4,h,w] before VAE decode
    <case>.png                     padding_mask_crop cases: diffusers' final image
                                   (the generated crop overlaid on the original)

Every case: prompt "a red fox in the snow", negative "blurry", 8 steps,
torch.Generator('cpu').manual_seed(42), float32, one thread.
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline,
                       StableDiffusionXLImg2ImgPipeline, StableDiffusionXLInpaintPipeline,
                       StableDiffusionXLPipeline, UNet2DConditionModel)
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
PROMPT, NEG, STEPS, SEED = "a red fox in the snow", "blurry", 8, 42

SCHEDULERS = {
    "euler": (EulerDiscreteScheduler, {}, "EulerDiscreteScheduler"),
    "euler_a": (EulerAncestralDiscreteScheduler, {}, "EulerAncestralDiscreteScheduler"),
    "dpmpp_2m_karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}, "DPMSolverMultistepScheduler"),
    "ddim": (DDIMScheduler, {}, "DDIMScheduler"),
}


def init_image():
    y, x = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    chans = [127.5 + 120 * np.sin(0.21 * x + 0.13 * y + 2 * c) * np.cos(0.07 * y - c) for c in range(3)]
    return Image.fromarray(np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8), "RGB")


def mask_image():
    m = np.zeros((64, 64), np.uint8)
    m[18:50, 13:45] = 255  # not latent-aligned: exercises the nearest downsampling
    return Image.fromarray(m, "L")


def random_unet(config, seed):
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**config)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if p.ndim > 1:
                p.normal_(0.0, 0.05)
            elif "norm" in name and name.endswith("weight"):
                p.normal_(1.0, 0.05)
            else:
                p.normal_(0.0, 0.02)
            p.copy_(p.half().float())  # stored f16; both sides compute f32 on these values
    return unet.eval()


def save_unet(unet, folder):
    os.makedirs(folder, exist_ok=True)
    unet.save_config(folder)
    save_file({k: v.half().contiguous() for k, v in unet.state_dict().items()},
              os.path.join(folder, "diffusion_pytorch_model.safetensors"))


def inpaint_unet(ref):
    cfg = dict(UNet2DConditionModel.load_config(os.path.join(ref, "tiny-sd15/diffusers/unet")))
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    cfg.update(in_channels=9, block_out_channels=[32, 32], layers_per_block=1)
    return random_unet(cfg, 1)


def refiner_unet(ref):
    cfg = dict(UNet2DConditionModel.load_config(os.path.join(ref, "tiny-sdxl/diffusers/unet")))
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    # The refiner's conditioning: text_encoder_2 only (hidden 32, projection 32)
    # and 5 time ids of addition_time_embed_dim 8.
    cfg.update(cross_attention_dim=32, projection_class_embeddings_input_dim=5 * 8 + 32,
               block_out_channels=[32, 32], layers_per_block=1, transformer_layers_per_block=[1, 1],
               attention_head_dim=[2, 2])
    return random_unet(cfg, 2)


def scheduler(pipe_dir, name):
    cls, overrides, _ = SCHEDULERS[name]
    return cls.from_pretrained(pipe_dir, subfolder="scheduler", **overrides)


def gen():
    return torch.Generator("cpu").manual_seed(SEED)


class Writer:
    def __init__(self):
        self.cases = []

    def add(self, cid, request, call, latents):
        lat = latents.detach().float().numpy().astype(np.float32)
        np.save(os.path.join(OUT, cid + ".latents.npy"), lat)
        self.cases.append({"id": cid, "request": request, "diffusers": call, "latents": cid + ".latents.npy"})
        print(cid, lat.shape, float(np.abs(lat).mean()))


def base_request(model, sched, **extra):
    _, overrides, cls = SCHEDULERS[sched]
    r = {"model_id": model, "prompt": PROMPT, "negative_prompt": NEG, "num_inference_steps": STEPS,
         "guidance_scale": 7.5, "seed": SEED, "scheduler": cls, "scheduler_config": overrides,
         "output": {"save_latents": True}}
    r.update(extra)
    return r


def img2img_cases(ref, w, init):
    for tag, cls in (("sd15", StableDiffusionImg2ImgPipeline), ("sdxl", StableDiffusionXLImg2ImgPipeline)):
        pdir = os.path.join(ref, f"tiny-{tag}/diffusers")
        pipe = cls.from_pretrained(pdir)
        for sched, strength in (("euler_a", 0.6), ("dpmpp_2m_karras", 0.5), ("ddim", 0.75)):
            pipe.scheduler = scheduler(pdir, sched)
            out = pipe(PROMPT, negative_prompt=NEG, image=init, strength=strength, num_inference_steps=STEPS,
                       guidance_scale=7.5, generator=gen(), output_type="latent").images
            req = base_request(f"@REF/tiny-{tag}/diffusers", sched, init_image="@DATA/init.png", strength=strength)
            w.add(f"i2i_{tag}_{sched}", req, f"{cls.__name__} strength={strength}", out)


def inpaint_cases(ref, w, init, mask):
    for tag, cls in (("sd15", StableDiffusionInpaintPipeline), ("sdxl", StableDiffusionXLInpaintPipeline)):
        pdir = os.path.join(ref, f"tiny-{tag}/diffusers")
        pipe = cls.from_pretrained(pdir)
        for sched, strength in (("euler_a", 1.0), ("ddim", 0.75), ("dpmpp_2m_karras", 0.8)):
            pipe.scheduler = scheduler(pdir, sched)
            out = pipe(PROMPT, negative_prompt=NEG, image=init, mask_image=mask, strength=strength,
                       num_inference_steps=STEPS, guidance_scale=7.5, generator=gen(), output_type="latent",
                       height=64, width=64).images
            req = base_request(f"@REF/tiny-{tag}/diffusers", sched, init_image="@DATA/init.png",
                               mask_image="@DATA/mask.png", strength=strength)
            w.add(f"inpaint_{tag}_{sched}", req, f"{cls.__name__} strength={strength}", out)


def inpaint_resize_blur_case(ref, w, init, mask):
    """A request size other than the image's (Lanczos resize of image and
    mask) and a blurred mask (VaeImageProcessor.blur, PIL GaussianBlur)."""
    pdir = os.path.join(ref, "tiny-sd15/diffusers")
    pipe = StableDiffusionInpaintPipeline.from_pretrained(pdir)
    pipe.scheduler = scheduler(pdir, "euler")
    blurred = pipe.mask_processor.blur(mask, blur_factor=4)
    out = pipe(PROMPT, negative_prompt=NEG, image=init, mask_image=blurred, strength=0.9, num_inference_steps=STEPS,
               guidance_scale=7.5, generator=gen(), output_type="latent", height=80, width=96).images
    req = base_request("@REF/tiny-sd15/diffusers", "euler", init_image="@DATA/init.png", mask_image="@DATA/mask.png",
                       strength=0.9, width=96, height=80, mask_blur=4)
    w.add("inpaint_sd15_euler_resize_blur", req,
          "StableDiffusionInpaintPipeline strength=0.9 height=80 width=96, mask_processor.blur(mask, 4)", out)


def inpaint_crop_cases(ref, w, init, mask):
    """padding_mask_crop ("only masked"): the crop around the mask, resized
    with resize_mode "fill", and the overlay of the result on the original
    (the final image, PNG, is a golden too)."""
    pdir = os.path.join(ref, "tiny-sd15/diffusers")
    pipe = StableDiffusionInpaintPipeline.from_pretrained(pdir)
    pipe.scheduler = scheduler(pdir, "euler")
    for cid, pad, width, height in (("inpaint_sd15_crop", 8, 64, 64), ("inpaint_sd15_crop_fill", 20, 64, 48)):
        kw = dict(negative_prompt=NEG, image=init, mask_image=mask, strength=0.9, num_inference_steps=STEPS,
                  guidance_scale=7.5, padding_mask_crop=pad, height=height, width=width)
        seen = {}

        def keep(_pipe, _i, _t, kwargs):  # diffusers refuses output_type="latent" with a crop
            seen["latents"] = kwargs["latents"].clone()
            return kwargs

        png = pipe(PROMPT, generator=gen(), callback_on_step_end=keep, **kw).images[0]
        out = seen["latents"]
        png.save(os.path.join(OUT, cid + ".png"))
        req = base_request("@REF/tiny-sd15/diffusers", "euler", init_image="@DATA/init.png",
                           mask_image="@DATA/mask.png", strength=0.9, width=width, height=height,
                           padding_mask_crop=pad)
        w.add(cid, req, f"StableDiffusionInpaintPipeline strength=0.9 padding_mask_crop={pad} {width}x{height}", out)
        w.cases[-1]["image"] = cid + ".png"


def inpaint9_cases(ref, w, init, mask):
    pdir = os.path.join(ref, "tiny-sd15/diffusers")
    unet = inpaint_unet(ref)
    folder = os.path.join(OUT, "models/tiny-sd15-inpaint")
    save_unet(unet, os.path.join(folder, "unet"))
    with open(os.path.join(pdir, "model_index.json")) as f:
        index = json.load(f)
    index["_class_name"] = "StableDiffusionInpaintPipeline"
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(index, f, indent=1)
    pipe = StableDiffusionInpaintPipeline(
        vae=AutoencoderKL.from_pretrained(pdir, subfolder="vae"),
        text_encoder=CLIPTextModel.from_pretrained(pdir, subfolder="text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(pdir, subfolder="tokenizer"), unet=unet,
        scheduler=scheduler(pdir, "euler"), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    for sched, strength in (("euler", 1.0), ("dpmpp_2m_karras", 0.7)):
        pipe.scheduler = scheduler(pdir, sched)
        out = pipe(PROMPT, negative_prompt=NEG, image=init, mask_image=mask, strength=strength,
                   num_inference_steps=STEPS, guidance_scale=7.5, generator=gen(), output_type="latent",
                   height=64, width=64).images
        req = base_request("@MODELS/tiny-sd15-inpaint", sched, init_image="@DATA/init.png",
                           mask_image="@DATA/mask.png", strength=strength)
        w.add(f"inpaint9_sd15_{sched}", req, f"StableDiffusionInpaintPipeline (9-channel) strength={strength}", out)


def refiner_cases(ref, w):
    pdir = os.path.join(ref, "tiny-sdxl/diffusers")
    unet = refiner_unet(ref)
    folder = os.path.join(OUT, "models/tiny-sdxl-refiner")
    save_unet(unet, os.path.join(folder, "unet"))
    index = {"_class_name": "StableDiffusionXLImg2ImgPipeline", "_diffusers_version": "0.42.0",
             "force_zeros_for_empty_prompt": False, "requires_aesthetics_score": True,
             "scheduler": ["diffusers", "EulerDiscreteScheduler"], "text_encoder": [None, None],
             "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "tokenizer": [None, None],
             "tokenizer_2": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(index, f, indent=1)
    base = StableDiffusionXLPipeline.from_pretrained(pdir)
    refiner = StableDiffusionXLImg2ImgPipeline(
        vae=base.vae, text_encoder=None, text_encoder_2=CLIPTextModelWithProjection.from_pretrained(
            pdir, subfolder="text_encoder_2"),
        tokenizer=None, tokenizer_2=CLIPTokenizer.from_pretrained(pdir, subfolder="tokenizer_2"), unet=unet,
        scheduler=scheduler(pdir, "euler"), requires_aesthetics_score=True, force_zeros_for_empty_prompt=False)
    for sched, split in (("euler", 0.8), ("euler_a", 0.7)):
        base.scheduler = scheduler(pdir, sched)
        refiner.scheduler = scheduler(pdir, sched)
        g = gen()  # one generator for the whole request: the refiner continues the base's stream
        lat = base(PROMPT, negative_prompt=NEG, num_inference_steps=STEPS, guidance_scale=7.5, generator=g,
                   denoising_end=split, output_type="latent", height=64, width=64).images
        out = refiner(PROMPT, negative_prompt=NEG, image=lat, num_inference_steps=STEPS, guidance_scale=7.5,
                      generator=g, denoising_start=split, output_type="latent").images
        req = base_request({"base": "@REF/tiny-sdxl/diffusers", "refiner": "@MODELS/tiny-sdxl-refiner"}, sched,
                           denoising_end=split, width=64, height=64)
        w.add(f"refiner_sdxl_{sched}", req,
              f"StableDiffusionXLPipeline denoising_end={split} -> StableDiffusionXLImg2ImgPipeline "
              f"denoising_start={split} (requires_aesthetics_score, one generator)", out)


LORA = "@LORA/"  # tests/lora/data, substituted by the test


def lora_cases(ref, w):
    """txt2img with LoRA: diffusers' load_lora_weights + set_adapters (the
    weight applies to UNet and text encoders alike), the request's
    lora.adapters or a prompt tag on the sdrt side."""
    from diffusers import StableDiffusionPipeline
    ldir = os.path.join(HERE, "../lora/data")
    cases = (
        # id, model, scheduler, [(file, weight)], tag: the adapters come as prompt tags
        ("lora_sd15_kohya", "sd15", "euler", [("sd15_kohya", 1.0)], False),
        ("lora_sd15_peft", "sd15", "euler", [("sd15_peft", 0.7)], False),
        ("lora_sd15_two", "sd15", "euler_a", [("sd15_kohya", 0.8), ("sd15_peft", -0.5)], False),
        ("lora_sd15_tag", "sd15", "euler", [("sd15_kohya", 0.7)], True),
        ("lora_sdxl_kohya", "sdxl", "euler", [("sdxl_kohya", 1.0)], False),
        ("lora_sdxl_peft", "sdxl", "dpmpp_2m_karras", [("sdxl_peft", 0.6)], False),
    )
    for cid, tag, sched, adapters, as_tags in cases:
        pdir = os.path.join(ref, f"tiny-{tag}/diffusers")
        if tag == "sdxl":
            pipe = StableDiffusionXLPipeline.from_pretrained(pdir)
        else:
            pipe = StableDiffusionPipeline.from_pretrained(pdir, safety_checker=None, requires_safety_checker=False)
        pipe.scheduler = scheduler(pdir, sched)
        names = []
        for i, (f, _) in enumerate(adapters):
            names.append(f"a{i}")
            pipe.load_lora_weights(os.path.join(ldir, f + ".safetensors"), adapter_name=names[-1])
        pipe.set_adapters(names, [wt for _, wt in adapters])
        out = pipe(PROMPT, negative_prompt=NEG, num_inference_steps=STEPS, guidance_scale=7.5, generator=gen(),
                   output_type="latent", height=64, width=64).images
        if as_tags:
            prompt = PROMPT + "".join(f" <lora:{f}:{wt:g}>" for f, wt in adapters)
            req = base_request(f"@REF/tiny-{tag}/diffusers", sched, prompt=prompt, width=64, height=64)
        else:
            req = base_request(f"@REF/tiny-{tag}/diffusers", sched, width=64, height=64, lora={
                "adapters": [{"model_id": LORA + f + ".safetensors", "weight": wt} for f, wt in adapters]})
        w.add(cid, req, f"{type(pipe).__name__} load_lora_weights {adapters} set_adapters", out)


def ays_case(ref, w):
    """"DPM++ 2M AYS" on tiny SDXL: diffusers' DPMSolverMultistepScheduler
    (dpmsolver++, order 2) with timesteps=AysSchedules["StableDiffusionXLTimesteps"]
    (10 steps); sdrt picks the SDXL table from the model's architecture."""
    from diffusers.schedulers import AysSchedules
    pdir = os.path.join(ref, "tiny-sdxl/diffusers")
    pipe = StableDiffusionXLPipeline.from_pretrained(pdir)
    pipe.scheduler = DPMSolverMultistepScheduler.from_pretrained(pdir, subfolder="scheduler",
                                                                 algorithm_type="dpmsolver++", solver_order=2)
    ts = AysSchedules["StableDiffusionXLTimesteps"]
    out = pipe(PROMPT, negative_prompt=NEG, timesteps=ts, guidance_scale=7.5, generator=gen(),
               output_type="latent", height=64, width=64).images
    req = base_request("@REF/tiny-sdxl/diffusers", "euler", width=64, height=64, num_inference_steps=10,
                       scheduler="DPM++ 2M AYS", scheduler_config={})
    w.add("ays_sdxl_dpmpp_2m", req, f"StableDiffusionXLPipeline DPMSolverMultistep timesteps={ts}", out)


def vae_f16_case(ref, w):
    """The tiny SD1.5 VAE rounded to f16 (the f16 checkpoint the VAE test
    writes at run time), decoding the reference seed-0 noise in f32."""
    vae = AutoencoderKL.from_pretrained(os.path.join(ref, "tiny-sd15/diffusers/vae")).float().eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.copy_(p.half().float())
        z = torch.from_numpy(np.load(os.path.join(ref, "rng/randn_seed0_1x4x8x8.npy")))
        img = vae.decode(z / vae.config.scaling_factor).sample
    img = (img / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy().astype(np.float32)
    np.save(os.path.join(HERE, "../vae/data/sd15_f16_decode.npy"), img)
    print("vae f16 decode", img.shape)


def lora_only(ref):
    path = os.path.join(OUT, "cases.json")
    with open(path) as f:
        doc = json.load(f)
    w = Writer()
    with torch.no_grad():
        lora_cases(ref, w)
        ays_case(ref, w)
    doc["cases"] = [c for c in doc["cases"] if not c["id"].startswith(("lora_", "ays_"))] + w.cases
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    ref = os.path.abspath(args[0] if args else os.path.join(HERE, "../../../shared/reference"))
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    if "--lora-only" in sys.argv:
        return lora_only(ref)
    init, mask = init_image(), mask_image()
    init.save(os.path.join(OUT, "init.png"))
    mask.save(os.path.join(OUT, "mask.png"))
    Image.new("RGB", (4, 4), (200, 30, 90)).save(os.path.join(OUT, "small.png"))  # for the size errors
    w = Writer()
    with torch.no_grad():
        img2img_cases(ref, w, init)
        inpaint_cases(ref, w, init, mask)
        inpaint_resize_blur_case(ref, w, init, mask)
        inpaint_crop_cases(ref, w, init, mask)
        inpaint9_cases(ref, w, init, mask)
        refiner_cases(ref, w)
        lora_cases(ref, w)
        ays_case(ref, w)
        vae_f16_case(ref, w)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"generator": "tests/inference/gen_goldens.py", "diffusers": __import__("diffusers").__version__,
                   "torch": torch.__version__, "cases": w.cases}, f, indent=1)


if __name__ == "__main__":
    main()
