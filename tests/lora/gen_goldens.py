#!/usr/bin/env python3
"""Generates the LoRA test files and diffusers goldens in tests/lora/data/.

Run with the project's dev venv (torch, diffusers 0.42, transformers, peft,
safetensors, numpy):

    /work/venv/bin/python tests/lora/gen_goldens.py [REFERENCE_DIR]

REFERENCE_DIR defaults to ../shared/reference (read in place). Every LoRA
file is random (seeded) and small (rank 4 on the tiny models). For each case
the merged weights of every patched tensor come from diffusers itself:
`pipe.load_lora_weights(file, adapter_name=...)`, `set_adapters(names,
weights)`, `fuse_lora()`, then the fused module weights. LoHa and LoKr are not
loadable by diffusers' Stable Diffusion pipelines, so their goldens are the
LyCORIS/A1111 formulas evaluated in float64 (stated in cases.json).

Outputs (data/):
  <case>.safetensors        the LoRA files (a case may use several)
  <case>.golden.npy         float32, the merged tensors concatenated (C order)
  cases.json                per case: model, adapters [{file, weight}], and
                            the tensor list [{component, name, shape, offset}]
  sd15_kohya.te_out.npy     text_encoder last_hidden_state [1, 77, 32] of
                            "a red fox in the snow" with sd15_kohya fused at
                            weight 1 (test_cond_hook.c)
  plus small malformed files for the error tests.
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
REF = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "reference")
RANK = 4


def load_pipe(model):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    cls = StableDiffusionXLPipeline if model == "tiny-sdxl" else StableDiffusionPipeline
    kw = {} if model == "tiny-sdxl" else {"safety_checker": None, "requires_safety_checker": False}
    return cls.from_pretrained(os.path.join(REF, model, "diffusers"), torch_dtype=torch.float32, **kw)


def components(pipe):
    comps = {"unet": pipe.unet, "text_encoder": pipe.text_encoder}
    if getattr(pipe, "text_encoder_2", None) is not None:
        comps["text_encoder_2"] = pipe.text_encoder_2
    return comps


def file_name(comp, k):
    """The tensor name as stored in the model files (and exposed by the
    model plugin): transformers 5 drops CLIPTextModel's `text_model.`."""
    if comp.startswith("text_encoder") and k.split(".")[0] in ("embeddings", "encoder", "final_layer_norm"):
        return "text_model." + k
    return k


def state(comp, mod):
    return {file_name(comp, k): v.detach().clone() for k, v in mod.state_dict().items()}


def base_weights(pipe):
    return {c: state(c, m) for c, m in components(pipe).items()}


# ---- which modules a LoRA targets ------------------------------------------

UNET_SD15 = [
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
    "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj",
    "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2",
    "down_blocks.0.attentions.0.proj_in",          # 1x1 conv
    "mid_block.attentions.0.transformer_blocks.0.attn2.to_v",
    "up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_q",
    "up_blocks.1.attentions.2.proj_out",
]
TE_LAYERS = [
    "text_model.encoder.layers.0.self_attn.q_proj",
    "text_model.encoder.layers.0.self_attn.k_proj",
    "text_model.encoder.layers.0.self_attn.v_proj",
    "text_model.encoder.layers.0.self_attn.out_proj",
    "text_model.encoder.layers.1.mlp.fc1",
    "text_model.encoder.layers.1.mlp.fc2",
]
CONV_SD15 = [
    "down_blocks.0.resnets.0.conv1",
    "down_blocks.1.resnets.1.conv2",
    "up_blocks.0.resnets.2.conv1",
    "down_blocks.0.resnets.0.time_emb_proj",
]
UNET_SDXL = [
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
    "down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k",
    "down_blocks.1.attentions.1.proj_in",
    "down_blocks.1.attentions.1.transformer_blocks.0.ff.net.2",
    "mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0",
    "up_blocks.0.attentions.1.transformer_blocks.1.attn1.to_v",
    "up_blocks.0.attentions.2.proj_out",
]
CONV_SDXL = ["down_blocks.0.resnets.1.conv1", "up_blocks.1.resnets.0.conv2"]


def module_shape(weights, comp, mod):
    return tuple(weights[comp][mod + ".weight"].shape)


def low_rank(gen, shape, rank):
    """LoRA down/up for a weight of `shape` (Linear or Conv2d), kohya layout."""
    out_f, in_f = shape[0], shape[1]
    if len(shape) == 4:
        down = torch.randn((rank, in_f, shape[2], shape[3]), generator=gen) * 0.2
        up = torch.randn((out_f, rank, 1, 1), generator=gen) * 0.2
    else:
        down = torch.randn((rank, in_f), generator=gen) * 0.2
        up = torch.randn((out_f, rank), generator=gen) * 0.2
    return down, up


# ---- SDXL diffusers -> SGM names (kohya trains SDXL on the SGM UNet) -----

RESNET_SGM = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
              "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def sgm_name(mod, lpb=2):
    p = mod.split(".")
    if p[0] == "down_blocks":
        i, kind, j, rest = int(p[1]), p[2], int(p[3]), p[4:]
        blk = 1 + i * (lpb + 1) + j
        if kind == "resnets":
            return f"input_blocks.{blk}.0." + RESNET_SGM[rest[0]]
        return f"input_blocks.{blk}.1." + ".".join(rest)
    if p[0] == "up_blocks":
        i, kind, j, rest = int(p[1]), p[2], int(p[3]), p[4:]
        blk = i * (lpb + 1) + j
        if kind == "resnets":
            return f"output_blocks.{blk}.0." + RESNET_SGM[rest[0]]
        return f"output_blocks.{blk}.1." + ".".join(rest)
    if p[0] == "mid_block":
        kind, j, rest = p[1], int(p[2]), p[3:]
        if kind == "attentions":
            return "middle_block.1." + ".".join(rest)
        return f"middle_block.{2 * j}." + RESNET_SGM[rest[0]]
    raise ValueError(mod)


def kohya_key(prefix, mod):
    return prefix + mod.replace(".", "_")


# ---- file builders -------------------------------------------------------

def kohya_file(weights, gen, unet_mods, te_sets, sgm=False, alpha=2.0):
    sd = {}
    for comp, prefix, mods in [("unet", "lora_unet_", unet_mods)] + te_sets:
        for mod in mods:
            down, up = low_rank(gen, module_shape(weights, comp, mod), RANK)
            name = sgm_name(mod) if (sgm and comp == "unet") else mod
            k = kohya_key(prefix, name)
            sd[k + ".lora_down.weight"] = down
            sd[k + ".lora_up.weight"] = up
            sd[k + ".alpha"] = torch.tensor(alpha)
    return sd


def peft_file(weights, gen, comp_mods, style="lora_A"):
    sd = {}
    for comp, mods in comp_mods:
        for mod in mods:
            down, up = low_rank(gen, module_shape(weights, comp, mod), RANK)
            if style == "lora_A":
                sd[f"{comp}.{mod}.lora_A.weight"] = down
                sd[f"{comp}.{mod}.lora_B.weight"] = up
            else:
                sd[f"{comp}.{mod}.lora.down.weight"] = down
                sd[f"{comp}.{mod}.lora.up.weight"] = up
    return sd


# ---- goldens --------------------------------------------------------------

def fused_by_diffusers(model, adapters):
    """adapters: [(file, weight)]. Returns {comp: {name: tensor}} of the
    tensors diffusers changed, and the pipeline."""
    pipe = load_pipe(model)
    before = base_weights(pipe)
    names = []
    for i, (f, w) in enumerate(adapters):
        n = f"a{i}"
        pipe.load_lora_weights(os.path.join(OUT, f), adapter_name=n)
        names.append(n)
    pipe.set_adapters(names, adapter_weights=[w for _, w in adapters])
    pipe.fuse_lora(adapter_names=names, lora_scale=1.0)
    pipe.unload_lora_weights()
    changed = {}
    for comp, mod in components(pipe).items():
        for k, v in state(comp, mod).items():
            if k in before[comp] and not torch.equal(before[comp][k], v):
                changed.setdefault(comp, {})[k] = v.detach().clone()
    return changed, pipe


def write_golden(case, model, adapters, changed, source):
    tensors, chunks, off = [], [], 0
    for comp in sorted(changed):
        for name in sorted(changed[comp]):
            t = changed[comp][name].to(torch.float32).numpy()
            tensors.append({"component": comp, "name": name, "shape": list(t.shape), "offset": off})
            chunks.append(t.reshape(-1))
            off += t.size
    np.save(os.path.join(OUT, case + ".golden.npy"), np.concatenate(chunks).astype(np.float32))
    return {"model": model, "adapters": [{"file": f, "weight": w} for f, w in adapters],
            "source": source, "tensors": tensors}


def lycoris_golden(model, adapters_sd, weights):
    """adapters_sd: [(state_dict, weight)] with hada_/lokr_ keys (kohya
    names, diffusers-style). Evaluates W + sum(w * scale * delta) in float64."""
    changed = {}
    for sd, mult in adapters_sd:
        bases = sorted({k.split(".")[0] for k in sd})
        for b in bases:
            comp, mod = ("unet", b[len("lora_unet_"):]) if b.startswith("lora_unet_") else ("text_encoder", b[len("lora_te_"):])
            name = next(n for n in weights[comp] if n.endswith(".weight") and n[:-7].replace(".", "_") == mod)
            w = weights[comp][name].to(torch.float64)
            g = {k[len(b) + 1:]: v.to(torch.float64) for k, v in sd.items() if k.startswith(b + ".")}
            if "hada_w1_a" in g:
                rank = g["hada_w1_b"].shape[0]
                d = (g["hada_w1_a"] @ g["hada_w1_b"].reshape(rank, -1)) * (g["hada_w2_a"] @ g["hada_w2_b"].reshape(rank, -1))
            else:
                w1 = g["lokr_w1"] if "lokr_w1" in g else g["lokr_w1_a"] @ g["lokr_w1_b"]
                rank = g["lokr_w1_b"].shape[0] if "lokr_w1_b" in g else (g["lokr_w2_b"].shape[0] if "lokr_w2_b" in g else None)
                if "lokr_w2" in g:
                    w2 = g["lokr_w2"]
                else:
                    w2 = g["lokr_w2_a"] @ g["lokr_w2_b"].reshape(g["lokr_w2_b"].shape[0], -1)
                    if w.dim() == 4:
                        w2 = w2.reshape(w2.shape[0], -1, *w.shape[2:])
                if w2.dim() == 4:
                    w1 = w1[:, :, None, None]
                d = torch.kron(w1, w2)
            alpha = g["alpha"].item() if "alpha" in g else None
            scale = alpha / rank if (alpha is not None and rank) else 1.0
            prev = changed.get(comp, {}).get(name, w)
            changed.setdefault(comp, {})[name] = prev + mult * scale * d.reshape(w.shape)
    return {c: {n: t.to(torch.float32) for n, t in d.items()} for c, d in changed.items()}


def loha_file(weights, gen):
    sd = {}
    for comp, prefix, mod in [("unet", "lora_unet_", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"),
                              ("unet", "lora_unet_", "down_blocks.1.resnets.0.conv1"),
                              ("text_encoder", "lora_te_", "text_model.encoder.layers.0.self_attn.v_proj")]:
        shape = module_shape(weights, comp, mod)
        k = kohya_key(prefix, mod)
        fan_in = int(np.prod(shape[1:]))
        for s in ("1", "2"):
            sd[f"{k}.hada_w{s}_a"] = torch.randn((shape[0], RANK), generator=gen) * 0.3
            sd[f"{k}.hada_w{s}_b"] = torch.randn((RANK, fan_in), generator=gen) * 0.3
        sd[k + ".alpha"] = torch.tensor(3.0)
    return sd


def lokr_file(weights, gen):
    sd = {}
    # full w1 and decomposed w2, with alpha
    k = kohya_key("lora_unet_", "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj")  # [256, 32]
    sd[k + ".lokr_w1"] = torch.randn((8, 4), generator=gen) * 0.3
    sd[k + ".lokr_w2_a"] = torch.randn((32, 2), generator=gen) * 0.3
    sd[k + ".lokr_w2_b"] = torch.randn((2, 8), generator=gen) * 0.3
    sd[k + ".alpha"] = torch.tensor(1.0)
    # both full, no alpha: scale 1
    k = kohya_key("lora_te_", "text_model.encoder.layers.1.self_attn.q_proj")  # [32, 32]
    sd[k + ".lokr_w1"] = torch.randn((4, 4), generator=gen) * 0.3
    sd[k + ".lokr_w2"] = torch.randn((8, 8), generator=gen) * 0.3
    # conv: w1 decomposed, w2 full 4-D
    k = kohya_key("lora_unet_", "down_blocks.1.resnets.1.conv1")  # [64, 64, 3, 3]
    sd[k + ".lokr_w1_a"] = torch.randn((8, 2), generator=gen) * 0.3
    sd[k + ".lokr_w1_b"] = torch.randn((2, 4), generator=gen) * 0.3
    sd[k + ".lokr_w2"] = torch.randn((8, 16, 3, 3), generator=gen) * 0.3
    sd[k + ".alpha"] = torch.tensor(4.0)
    return sd


def save(name, sd, meta=None):
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(OUT, name), metadata=meta)


def te_output(pipe, ids):
    with torch.no_grad():
        return pipe.text_encoder(torch.tensor([ids]), output_hidden_states=False)[0].numpy().astype(np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    cases = {}
    w15 = base_weights(load_pipe("tiny-sd15"))
    wxl = base_weights(load_pipe("tiny-sdxl"))

    save("sd15_kohya.safetensors", kohya_file(w15, gen, UNET_SD15, [("text_encoder", "lora_te_", TE_LAYERS)]),
         {"ss_network_dim": str(RANK), "ss_network_alpha": "2.0", "ss_base_model_version": "sd_v1"})
    save("sd15_peft.safetensors", peft_file(w15, gen, [("unet", UNET_SD15[2:9]), ("text_encoder", TE_LAYERS[:4])]))
    save("sd15_locon.safetensors", kohya_file(w15, gen, CONV_SD15 + UNET_SD15[:2], [], alpha=1.0))
    save("sdxl_kohya.safetensors", kohya_file(wxl, gen, UNET_SDXL + CONV_SDXL,
                                              [("text_encoder", "lora_te1_", TE_LAYERS[:4]),
                                               ("text_encoder_2", "lora_te2_", TE_LAYERS[2:])], sgm=True, alpha=8.0))
    save("sdxl_peft.safetensors", peft_file(wxl, gen, [("unet", UNET_SDXL)], style="lora.down") |
         peft_file(wxl, gen, [("text_encoder", TE_LAYERS[3:]), ("text_encoder_2", TE_LAYERS[:2])]))
    loha = loha_file(w15, gen)
    lokr = lokr_file(w15, gen)
    save("sd15_loha.safetensors", loha)
    save("sd15_lokr.safetensors", lokr)

    diffusers_cases = [
        ("sd15_kohya", "tiny-sd15", [("sd15_kohya.safetensors", 1.0)]),
        ("sd15_peft", "tiny-sd15", [("sd15_peft.safetensors", 0.7)]),
        ("sd15_locon", "tiny-sd15", [("sd15_locon.safetensors", 1.0)]),
        ("sdxl_kohya", "tiny-sdxl", [("sdxl_kohya.safetensors", 0.9)]),
        ("sdxl_peft", "tiny-sdxl", [("sdxl_peft.safetensors", 1.0)]),
        ("sd15_two", "tiny-sd15", [("sd15_kohya.safetensors", 0.8), ("sd15_peft.safetensors", -0.5)]),
    ]
    for case, model, adapters in diffusers_cases:
        changed, pipe = fused_by_diffusers(model, adapters)
        cases[case] = write_golden(case, model, adapters, changed, "diffusers load_lora_weights + fuse_lora")
        print(case, sum(len(v) for v in changed.values()), "tensors")
        if case == "sd15_kohya":
            ids = pipe.tokenizer("a red fox in the snow", padding="max_length", max_length=77).input_ids
            np.save(os.path.join(OUT, "sd15_kohya.te_out.npy"), te_output(pipe, ids))
            cases[case]["te_prompt"] = "a red fox in the snow"

    for case, sd_list in [("sd15_loha", [(loha, 0.6)]), ("sd15_lokr", [(lokr, 1.0)]),
                          ("sd15_lyco_two", [(loha, 0.5), (lokr, -1.0)])]:
        files = {id(loha): "sd15_loha.safetensors", id(lokr): "sd15_lokr.safetensors"}
        changed = lycoris_golden("tiny-sd15", sd_list, w15)
        cases[case] = write_golden(case, "tiny-sd15", [(files[id(sd)], w) for sd, w in sd_list], changed,
                                   "LyCORIS formulas in float64 (diffusers cannot load LoHa/LoKr)")

    # Error cases: nothing here is a valid LoRA.
    save("empty.safetensors", {})
    with open(os.path.join(OUT, "garbage.safetensors"), "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    orphan = kohya_file(w15, gen, UNET_SD15[:1], [])
    orphan.pop(kohya_key("lora_unet_", UNET_SD15[0]) + ".lora_up.weight")
    save("orphan_down.safetensors", orphan)
    unknown = kohya_file(w15, gen, UNET_SD15[:1], [])
    unknown["lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight"] = torch.zeros((RANK, 32, 1, 1))
    unknown["lora_unet_down_blocks_7_attentions_0_proj_in.lora_up.weight"] = torch.zeros((32, RANK, 1, 1))
    unknown["something_else.weight"] = torch.zeros((2,))
    save("unknown_keys.safetensors", unknown)
    dora = kohya_file(w15, gen, UNET_SD15[:1], [])
    dora[kohya_key("lora_unet_", UNET_SD15[0]) + ".dora_scale"] = torch.ones((32, 1))
    save("dora.safetensors", dora)

    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"rank": RANK, "cases": cases}, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
