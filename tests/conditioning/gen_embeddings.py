#!/usr/bin/env python3
"""References for textual-inversion embeddings (tests/conditioning/test_embeddings.c).

Writes random-weight embedding files in the formats sdrt reads and what
diffusers' load_textual_inversion + encode_prompt make of prompts using them,
on the tiny reference pipelines (../shared/reference), float32 CPU:

  data/emb/sd15/tinyemb1.safetensors   A1111 {"emb_params": [1, 32]}
  data/emb/sd15/tinyemb3.safetensors   A1111 {"emb_params": [3, 32]} (multi-vector)
  data/emb/sd15/difftok.safetensors    diffusers learned_embeds {"<difftok>": [32]}
  data/emb/sdxl/xlemb2.safetensors     SDXL {"clip_l": [2, 32], "clip_g": [2, 32]}
  data/emb/bad/wide16.safetensors      {"emb_params": [1, 16]} (width mismatch)
  data/emb/<case>.<what>.npy           ids / prompt_embeds / negative_prompt_embeds
                                       (/ pooled for SDXL) from diffusers
  data/emb/t2i_negemb.latents.npy      txt2img on tiny-sd15, prompt "a red fox in
                                       the snow", negative "tinyemb3, blurry", 64x64,
                                       8 steps, guidance 7.5, EulerDiscreteScheduler,
                                       torch.Generator('cpu').manual_seed(42): the
                                       final latents (tests/inference)

Each embedding is registered in diffusers under its file name (the token
sdrt uses for A1111 names). Usage (torch, diffusers, transformers, safetensors
from PyPI; run from the repository root):
  python tests/conditioning/gen_embeddings.py
"""
import os

import numpy as np
import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "emb")
REF = os.environ.get("SDRT_REFERENCE", os.path.join(HERE, "..", "..", "..", "shared", "reference"))

torch.manual_seed(1234)
for d in ("sd15", "sdxl", "bad"):
    os.makedirs(os.path.join(OUT, d), exist_ok=True)

save_file({"emb_params": torch.randn(1, 32) * 0.5}, os.path.join(OUT, "sd15", "tinyemb1.safetensors"))
save_file({"emb_params": torch.randn(3, 32) * 0.5}, os.path.join(OUT, "sd15", "tinyemb3.safetensors"))
save_file({"<difftok>": torch.randn(32) * 0.5}, os.path.join(OUT, "sd15", "difftok.safetensors"))
save_file({"clip_l": torch.randn(2, 32) * 0.5, "clip_g": torch.randn(2, 32) * 0.5},
          os.path.join(OUT, "sdxl", "xlemb2.safetensors"))
save_file({"emb_params": torch.randn(1, 16)}, os.path.join(OUT, "bad", "wide16.safetensors"))


def npy(name, t):
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(t.detach().float().cpu().numpy()))


def ids(tok, text):
    return torch.tensor(tok(text, padding="max_length", max_length=tok.model_max_length,
                            truncation=True).input_ids, dtype=torch.float32)


with torch.no_grad():
    pipe = StableDiffusionPipeline.from_pretrained(os.path.join(REF, "tiny-sd15", "diffusers"),
                                                   safety_checker=None, requires_safety_checker=False)
    for name in ("tinyemb1", "tinyemb3"):
        sd = load_file(os.path.join(OUT, "sd15", name + ".safetensors"))
        pipe.load_textual_inversion(sd["emb_params"], token=name)
    pipe.load_textual_inversion(os.path.join(OUT, "sd15", "difftok.safetensors"))  # token from its key
    cases = {
        "sd15_single": ("a photo of tinyemb1 in the snow", "blurry"),
        "sd15_multi": ("a red fox, tinyemb3, snow", "tinyemb1 blurry"),
        "sd15_diffusers": ("a <difftok> on a table", "low quality"),
    }
    for case, (p, n) in cases.items():
        pe, ne = pipe.encode_prompt(p, "cpu", 1, True, n)
        npy(case + ".ids", ids(pipe.tokenizer, pipe.maybe_convert_prompt(p, pipe.tokenizer)))
        npy(case + ".neg_ids", ids(pipe.tokenizer, pipe.maybe_convert_prompt(n, pipe.tokenizer)))
        npy(case + ".prompt_embeds", pe)
        npy(case + ".negative_prompt_embeds", ne)

    torch.set_num_threads(1)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    lat = pipe("a red fox in the snow", negative_prompt="tinyemb3, blurry", height=64, width=64,
               num_inference_steps=8, guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(42),
               output_type="latent").images
    npy("t2i_negemb.latents", lat)

    xl = StableDiffusionXLPipeline.from_pretrained(os.path.join(REF, "tiny-sdxl", "diffusers"))
    sd = load_file(os.path.join(OUT, "sdxl", "xlemb2.safetensors"))
    xl.load_textual_inversion(sd["clip_l"], token="xlemb2", text_encoder=xl.text_encoder,
                              tokenizer=xl.tokenizer)
    xl.load_textual_inversion(sd["clip_g"], token="xlemb2", text_encoder=xl.text_encoder_2,
                              tokenizer=xl.tokenizer_2)
    p, n = "a red fox xlemb2 in the snow", "xlemb2, blurry"
    pe, ne, pp, npp = xl.encode_prompt(prompt=p, device="cpu", num_images_per_prompt=1,
                                       do_classifier_free_guidance=True, negative_prompt=n)
    npy("sdxl_multi.ids", ids(xl.tokenizer, xl.maybe_convert_prompt(p, xl.tokenizer)))
    npy("sdxl_multi.ids_2", ids(xl.tokenizer_2, xl.maybe_convert_prompt(p, xl.tokenizer_2)))
    npy("sdxl_multi.prompt_embeds", pe)
    npy("sdxl_multi.negative_prompt_embeds", ne)
    npy("sdxl_multi.pooled_prompt_embeds", pp)
    npy("sdxl_multi.negative_pooled_prompt_embeds", npp)
print("wrote", OUT)

# ---- pickled embeddings (.pt A1111 string_to_param, diffusers learned_embeds.bin)
# and a .pt carrying another pickle global (must be refused, never run). Their
# references: diffusers load_textual_inversion on the same files.
import os as _os  # noqa: E402

PT = _os.path.join(OUT, "pt")
BADPT = _os.path.join(OUT, "badpt")
_os.makedirs(PT, exist_ok=True)
_os.makedirs(BADPT, exist_ok=True)
torch.manual_seed(99)
torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": torch.randn(2, 32) * 0.5}, "name": "ptemb",
            "step": 500, "sd_checkpoint": None, "sd_checkpoint_name": None}, _os.path.join(PT, "ptemb.pt"))
torch.save({"diffbin": torch.randn(32) * 0.5}, _os.path.join(PT, "diffbin.bin"))


class Evil:
    def __reduce__(self):
        return (_os.system, ("echo pwned",))


torch.save({"string_to_param": {"*": torch.zeros(1, 32)}, "x": Evil()}, _os.path.join(BADPT, "evil.pt"))
with torch.no_grad():
    pipe = StableDiffusionPipeline.from_pretrained(_os.path.join(REF, "tiny-sd15", "diffusers"),
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.load_textual_inversion(_os.path.join(PT, "ptemb.pt"), token="ptemb")
    pipe.load_textual_inversion(_os.path.join(PT, "diffbin.bin"))
    p, n = "a ptemb fox on a diffbin table", "ptemb"
    pe, ne = pipe.encode_prompt(p, "cpu", 1, True, n)
    npy("sd15_pt.ids", ids(pipe.tokenizer, pipe.maybe_convert_prompt(p, pipe.tokenizer)))
    npy("sd15_pt.prompt_embeds", pe)
    npy("sd15_pt.negative_prompt_embeds", ne)
print("wrote pickled embeddings")
