"""PyTorch side of the conditioning benchmark (docs/PERFORMANCE.md,
"Conditioning"): the two SDXL text towers (CLIP ViT-L/14 and OpenCLIP
ViT-bigG/14 text configs, random weights) encoding a prompt and a negative
prompt as diffusers' StableDiffusionXLPipeline.encode_prompt does (four
tower passes, 77 tokens, hidden states kept). Dev tool: needs torch and
transformers from PyPI; not part of the build or the tests.

    python bench/conditioning/torch_encode.py [threads] [reps] [dtype]
"""
import sys
import time

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection


def towers(dtype):
    l = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                       num_attention_heads=12, projection_dim=768, hidden_act="quick_gelu")
    g = CLIPTextConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                       num_attention_heads=20, projection_dim=1280, hidden_act="gelu")
    return (CLIPTextModel(l).to(dtype).eval(), CLIPTextModelWithProjection(g).to(dtype).eval())


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[sys.argv[3] if len(sys.argv) > 3 else "f32"]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    te1, te2 = towers(dtype)
    ids = torch.randint(0, 49407, (1, 77))
    best = float("inf")
    with torch.inference_mode():
        for _ in range(reps):
            t0 = time.perf_counter()
            for _prompt in ("prompt", "negative"):
                te1(ids, output_hidden_states=True)
                te2(ids, output_hidden_states=True)
            best = min(best, time.perf_counter() - t0)
    print(f"torch {torch.__version__} {dtype} threads {threads}: SDXL prompt pair best of {reps}: {best:.2f} s")


if __name__ == "__main__":
    main()
