#!/usr/bin/env python3
"""Writes tests/ops/data/<case>__<tensor>.npy: small inputs and PyTorch
outputs for every backend op. Run once (dev only) with the project venv:

    /work/venv/bin/python tests/ops/gen_goldens.py

Inputs come from a fixed seed; f16/bf16 weights are stored as float32
values that are exactly representable in that dtype (the test converts them
back losslessly), and the expected output uses the same rounded weights.
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
g = torch.Generator().manual_seed(1234)


def rnd(*shape, scale=1.0):
    return (torch.randn(*shape, generator=g, dtype=torch.float32) * scale).contiguous()


def save(case, **tensors):
    for name, t in tensors.items():
        arr = t.detach().to(torch.float32).contiguous().numpy()
        np.save(os.path.join(OUT, f"{case}__{name}.npy"), arr)


def linear_cases():
    a, w, b = rnd(2, 37, 48), rnd(24, 48, scale=0.2), rnd(24)
    save("matmul_linear", a=a, w=w, bias=b, out=F.linear(a, w, b))
    a, b = rnd(2, 3, 17, 20), rnd(2, 3, 20, 19)
    save("matmul_batched", a=a, b=b, out=0.5 * torch.matmul(a, b))
    a, b = rnd(2, 3, 17, 20), rnd(20, 19)
    save("matmul_bcast", a=a, b=b, out=torch.matmul(a, b))
    for dt, name in ((torch.float16, "f16"), (torch.bfloat16, "bf16")):
        a, w, b = rnd(37, 64), rnd(40, 64, scale=0.2).to(dt).float(), rnd(40)
        save(f"matmul_{name}", a=a, w=w, bias=b, out=F.linear(a, w, b))


def conv_cases():
    x, w, b = rnd(1, 8, 9, 9), rnd(16, 8, 3, 3, scale=0.2), rnd(16)
    save("conv_s2p1", x=x, w=w, bias=b, out=F.conv2d(x, w, b, stride=2, padding=1))
    x, w, b = rnd(2, 6, 8, 8), rnd(8, 6, 3, 3, scale=0.2), rnd(8)
    save("conv_3x3", x=x, w=w, bias=b, out=F.conv2d(x, w, b, stride=1, padding=1))
    x, w, b = rnd(1, 16, 5, 7), rnd(12, 16, 1, 1, scale=0.2), rnd(12)
    save("conv_1x1", x=x, w=w, bias=b, out=F.conv2d(x, w, b))
    x, w, b = rnd(1, 4, 6, 6), rnd(8, 4, 3, 3, scale=0.2).half().float(), rnd(8)
    save("conv_f16", x=x, w=w, bias=b, out=F.conv2d(x, w, b, padding=1))
    x, w, b = rnd(1, 8, 7, 7), rnd(8, 2, 3, 3, scale=0.2), rnd(8)
    save("conv_groups", x=x, w=w, bias=b, out=F.conv2d(x, w, b, padding=1, groups=4))


def norm_cases():
    x, gm, bt = rnd(2, 64, 4, 4, scale=2.0) + 0.5, rnd(64), rnd(64)
    save("groupnorm_silu", x=x, gamma=gm, beta=bt, out=F.silu(F.group_norm(x, 32, gm, bt, eps=1e-5)))
    save("groupnorm", x=x, gamma=gm, beta=bt, out=F.group_norm(x, 32, gm, bt, eps=1e-6))
    x, gm, bt = rnd(2, 5, 48) + 1.0, rnd(48), rnd(48)
    save("layernorm", x=x, gamma=gm, beta=bt, out=F.layer_norm(x, (48,), gm, bt, eps=1e-5))
    x = rnd(3, 7, 33, scale=3.0)
    save("softmax", x=x, out=torch.softmax(x * 0.7, dim=-1))


def attention_cases():
    q, k, v = rnd(2, 3, 37, 16), rnd(2, 3, 37, 16), rnd(2, 3, 37, 16)
    save("attn_self", q=q, k=k, v=v, out=F.scaled_dot_product_attention(q, k, v))
    q, k, v = rnd(1, 2, 37, 16), rnd(1, 2, 77, 16), rnd(1, 2, 77, 24)
    save("attn_cross", q=q, k=k, v=v, out=F.scaled_dot_product_attention(q, k, v))
    q, k, v = rnd(1, 2, 21, 8), rnd(1, 2, 21, 8), rnd(1, 2, 21, 8)
    save("attn_causal", q=q, k=k, v=v, out=F.scaled_dot_product_attention(q, k, v, is_causal=True))


def elementwise_cases():
    x = torch.linspace(-6, 6, 1000, dtype=torch.float32) + rnd(1000, scale=0.01)
    save("gelu", x=x, out=F.gelu(x))
    save("gelu_tanh", x=x, out=F.gelu(x, approximate="tanh"))
    save("quick_gelu", x=x, out=x * torch.sigmoid(1.702 * x))
    save("silu", x=x, out=F.silu(x))
    save("scale", x=x, out=x * 0.18215 + 0.5)
    x = rnd(3, 5, 48)
    a, gate = x.chunk(2, dim=-1)
    save("geglu", x=x, out=a * F.gelu(gate))
    a, b = rnd(2, 8, 5, 5), rnd(8, 1, 1)
    save("add_bcast", a=a, b=b, out=a + b)
    a, b = rnd(2, 3, 10), rnd(10)
    save("add_alpha", a=a, b=b, out=a + 0.5 * b)
    a, b = rnd(2, 8, 5, 5), rnd(2, 8, 1, 1)
    save("mul_bcast", a=a, b=b, out=a * b)


def layout_cases():
    a, b = rnd(2, 3, 4, 5), rnd(2, 2, 4, 5)
    save("concat_dim1", a=a, b=b, out=torch.cat([a, b], dim=1))
    a, b = rnd(2, 3, 4, 5), rnd(2, 3, 4, 2)
    save("concat_dim3", a=a, b=b, out=torch.cat([a, b], dim=3))
    x = rnd(1, 3, 4, 5)
    save("upsample", x=x, out=F.interpolate(x, scale_factor=2.0, mode="nearest"))
    x = rnd(2, 3, 4, 5)
    save("copy_permute", x=x, out=x.permute(0, 2, 3, 1).contiguous())


def timestep_embedding(t, dim, flip, shift, max_period=10000, scale=1):
    # diffusers.models.embeddings.get_timestep_embedding
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32)
    exponent = exponent / (half - shift)
    emb = torch.exp(exponent)
    emb = t[:, None].float() * emb[None, :]
    emb = scale * emb
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


def timestep_cases():
    t = torch.tensor([0.0, 1.0, 10.5, 49.0], dtype=torch.float32)
    for dim in (32, 33):
        for flip in (0, 1):
            for shift in (0, 1):
                save(f"timestep_d{dim}_f{flip}_s{shift}", t=t, out=timestep_embedding(t, dim, flip, shift))
    t = torch.tensor([999.0, 500.0], dtype=torch.float32)
    save("timestep_large", t=t, out=timestep_embedding(t, 320, 1, 0))


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".npy"):
            os.remove(os.path.join(OUT, f))
    linear_cases()
    conv_cases()
    norm_cases()
    attention_cases()
    elementwise_cases()
    layout_cases()
    timestep_cases()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, torch {torch.__version__}")


if __name__ == "__main__":
    main()
