#!/usr/bin/env python3
"""Generates the goldens of tests/blocks: each block of the SDK block library
(sdrt/nn_blocks.h) as diffusers / transformers implement it, on small random
weights and inputs, float32, CPU, one thread.

Writes tests/blocks/data/blocks.safetensors holding, per case <c>:
  <c>.<diffusers weight name>   the block's weights (the names the C test binds)
  in.<c>.<name>                 its inputs
  out.<c>                       the module's output
The block configurations are repeated in tests/blocks/test_blocks.c; keep both
in step. 1-D parameters of the resnet case are stored as float16 (the torch
module runs on the same rounded values), which exercises the library's one
parameter conversion.

Usage (torch, diffusers and transformers from PyPI):
  python tests/blocks/gen_goldens.py
"""
import os

import torch
import torch.nn.functional as F
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.embeddings import TimestepEmbedding
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D
from safetensors.torch import save_file
from transformers import CLIPTextConfig
from transformers.models.clip.modeling_clip import CLIPEncoderLayer

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
G = torch.Generator("cpu").manual_seed(20261207)
tensors = {}


def randn(*shape, scale=1.0):
    return torch.randn(*shape, generator=G) * scale


def randomize(module, scale=0.3, half_vectors=False):
    """Every parameter random (norms included, so their scale and shift
    matter); 1-D ones optionally rounded through float16."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(randn(*p.shape, scale=scale))
            if half_vectors and p.dim() == 1:
                p.copy_(p.half().float())


def save_weights(case, module, half_vectors=False):
    for name, t in module.state_dict().items():
        t = t.detach().clone().contiguous()
        if half_vectors and t.dim() == 1:
            t = t.half()
        tensors[f"{case}.{name}"] = t


def save(name, t):
    tensors[name] = t.detach().float().clone().contiguous()


@torch.no_grad()
def resnet():
    # ResnetBlock2D with time embedding, a channel change (conv_shortcut) and
    # output_scale_factor; f16 parameters.
    m = ResnetBlock2D(in_channels=8, out_channels=16, temb_channels=12, groups=4, eps=1e-5,
                      output_scale_factor=2.0).eval()
    randomize(m, half_vectors=True)
    x, temb = randn(2, 8, 5, 6), randn(2, 12)
    save_weights("resnet", m, half_vectors=True)
    save("in.resnet.x", x)
    save("in.resnet.temb_act", F.silu(temb))  # the library takes silu(temb)
    save("out.resnet", m(x, temb))


@torch.no_grad()
def tblock():
    # BasicTransformerBlock: self attention, cross attention (2 heads of 8),
    # GEGLU feed-forward.
    m = BasicTransformerBlock(dim=16, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=12,
                              activation_fn="geglu").eval()
    randomize(m)
    h, ctx = randn(2, 10, 16), randn(2, 7, 12)
    save_weights("tblock", m)
    save("in.tblock.h", h)
    save("in.tblock.context", ctx)
    save("out.tblock", m(h, encoder_hidden_states=ctx))


@torch.no_grad()
def transformer():
    # Transformer2DModel with 1x1 conv proj_in/proj_out (SD1.x), depth 2.
    m = Transformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=16, num_layers=2,
                           norm_num_groups=4, cross_attention_dim=12, use_linear_projection=False).eval()
    randomize(m)
    x, ctx = randn(1, 16, 3, 5), randn(1, 7, 12)
    save_weights("transformer", m)
    save("in.transformer.x", x)
    save("in.transformer.context", ctx)
    save("out.transformer", m(x, encoder_hidden_states=ctx).sample)


@torch.no_grad()
def vae_mid():
    # The VAE's UNetMidBlock2D: resnet, single-head attention with group norm
    # and residual, resnet; no time embedding, eps 1e-6.
    m = UNetMidBlock2D(in_channels=16, temb_channels=None, resnet_eps=1e-6, resnet_groups=4,
                       attention_head_dim=16, resnet_time_scale_shift="default", add_attention=True).eval()
    randomize(m, scale=0.2)
    x = randn(1, 16, 4, 5)
    save_weights("mid", m)
    save("in.mid.x", x)
    save("out.mid", m(x, None))


@torch.no_grad()
def samplers():
    # Downsample2D(padding=0): the one-sided pad of the VAE encoder, odd size.
    d = Downsample2D(4, use_conv=True, out_channels=4, padding=0, name="conv").eval()
    randomize(d)
    x = randn(1, 4, 5, 7)
    save_weights("down", d)
    save("in.down.x", x)
    save("out.down", d(x))
    # Upsample2D to a forwarded size smaller than 2x (the UNet's odd skips).
    u = Upsample2D(4, use_conv=True, out_channels=4).eval()
    randomize(u)
    y = randn(1, 4, 5, 6)
    save_weights("up", u)
    save("in.up.x", y)
    save("out.up", u(y, output_size=(9, 11)))


@torch.no_grad()
def temb():
    m = TimestepEmbedding(in_channels=8, time_embed_dim=16).eval()
    randomize(m)
    x = randn(3, 8)
    save_weights("temb", m)
    save("in.temb.x", x)
    save("out.temb", m(x))


@torch.no_grad()
def clip_layer():
    # CLIPEncoderLayer of the text tower: causal mask, quick_gelu.
    cfg = CLIPTextConfig(hidden_size=16, intermediate_size=40, num_attention_heads=4, hidden_act="quick_gelu",
                         layer_norm_eps=1e-5)
    cfg._attn_implementation = "eager"
    m = CLIPEncoderLayer(cfg).eval()
    randomize(m)
    b, n = 2, 9
    x = randn(b, n, 16)
    mask = torch.full((n, n), float("-inf")).triu(1)[None, None].expand(b, 1, n, n)
    save_weights("clip", m)
    save("in.clip.x", x)
    try:  # transformers >= 5: the causal mask is the attention mask
        out = m(x, mask)
    except TypeError:  # 4.x: (hidden_states, attention_mask, causal_attention_mask)
        out = m(x, None, mask)
    save("out.clip", out[0] if isinstance(out, tuple) else out)


def main():
    resnet()
    tblock()
    transformer()
    vae_mid()
    samplers()
    temb()
    clip_layer()
    os.makedirs(OUT, exist_ok=True)
    save_file(tensors, os.path.join(OUT, "blocks.safetensors"))
    print(f"wrote {len(tensors)} tensors to {OUT}/blocks.safetensors")


if __name__ == "__main__":
    main()
