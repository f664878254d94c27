#!/usr/bin/env python3
"""tests/postprocess/bench_safety.py - the safety checker in diffusers, for the
side-by-side numbers in docs/PERFORMANCE.md (a benchmark, not a test).

  bench_safety.py make FOLDER        writes a random-weight checker of the real
                                     size (CLIP ViT-L/14 at 224^2, projection 768,
                                     17 concepts, 3 special: the CompVis
                                     stable-diffusion-safety-checker config) as
                                     FOLDER/safety_checker + feature_extractor
  bench_safety.py time FOLDER [N [REPEAT]]
                                     times preprocessing (CLIPImageProcessorPil)
                                     + StableDiffusionSafetyChecker.forward on N
                                     random 512x512 images, best of REPEAT
                                     (torch threads: all cores)
Then: bench-safety FOLDER N REPEAT (SDRT_BUILD_DIR set) for sdrt's time."""
import json, os, sys, time
import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

FE = {"crop_size": 224, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True, "do_resize": True,
      "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
      "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224}


def make(folder):
    vision = dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24,
                  image_size=224, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    cfg = CLIPConfig(vision_config=vision, projection_dim=768)
    torch.manual_seed(0)
    sc = StableDiffusionSafetyChecker(cfg).eval()
    with torch.no_grad():
        for p in sc.parameters():
            p.copy_(torch.randn_like(p) * 0.02)
    sc.save_pretrained(os.path.join(folder, "safety_checker"), safe_serialization=True)
    os.makedirs(os.path.join(folder, "feature_extractor"), exist_ok=True)
    with open(os.path.join(folder, "feature_extractor", "preprocessor_config.json"), "w") as f:
        json.dump(FE, f)


def bench(folder, n, repeat):
    sc = StableDiffusionSafetyChecker.from_pretrained(os.path.join(folder, "safety_checker")).eval()
    proc = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3)
    rng = np.random.default_rng(1)
    imgs = [Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)) for _ in range(n)]
    best = 1e30
    with torch.no_grad():
        for _ in range(repeat):
            t0 = time.perf_counter()
            pv = proc(images=imgs, return_tensors="pt").pixel_values
            sc(clip_input=pv, images=np.zeros((n, 8, 8, 3), np.float32))
            best = min(best, time.perf_counter() - t0)
    print(f"diffusers safety checker ({torch.get_num_threads()} threads): {n} image(s) of 512x512: "
          f"best {best:.3f} s per call ({best / n:.3f} s per image) over {repeat}")


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        bench(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1, int(sys.argv[4]) if len(sys.argv) > 4 else 3)
