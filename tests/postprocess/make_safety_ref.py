#!/usr/bin/env python3
"""tests/postprocess/make_safety_ref.py - reference data for the safety checker
(tests/postprocess/test_safety.c, tests/inference/test_safety_run.c,
tests/protocol/transcripts/17-safety.txt),
into tests/postprocess/data/safety/:

  tiny-sd15-safety/      a diffusers pipeline folder: the tiny SD1.5 reference
                         model's components (symlinks into ../shared/reference)
                         plus safety_checker/ (a small random-weight
                         StableDiffusionSafetyChecker: CLIP ViT hidden 16,
                         2 layers, 4 heads, 224^2 images in 14^2 patches,
                         projection 16) and feature_extractor/
                         (preprocessor_config.json as SD1.5 ships it)
  new-layout/            safety_checker/ + feature_extractor/ only, the weights
                         named as transformers 5 writes them (the main
                         fixture has transformers 4's names, as SD1.x ships)
  bad-shapes/            the same with a safety_checker/config.json that
                         disagrees with the weights (hidden_size 48)
  images/*.png           small test images of several sizes and aspects
  ref.json               per image: diffusers' has_nsfw_concepts, the concept
                         and special-care scores (unrounded:
                         cos - threshold + adjustment, as float32), the image
                         embedding and statistics of the preprocessed pixels

The concept and special-care embeddings and thresholds are chosen from the
images' own embeddings so that some images trip the checker, one only
through the +0.01 special-care adjustment, and the others do not, each with
a margin of at least MARGIN from diffusers' flag boundary (score rounded to
3 decimals > 0). The image named in --trip (images/t2i.png: the txt2img
output of tests/inference/test_safety_run.c's request, 64x64, seed 1234,
written by sdrt; regenerate it first if that request's image changes) is
made to trip a concept of its own. When a random checker maps the images too
close together to separate them, the script draws again by itself.

Preprocessing is transformers' CLIPImageProcessorPil (PIL bicubic, as the
CLIPImageProcessor of transformers 4 and the SD pipelines did); the
checker's forward is diffusers' StableDiffusionSafetyChecker.forward.

Needs torch, diffusers, transformers, safetensors, pillow, numpy (PyPI).
Run: python3 tests/postprocess/make_safety_ref.py --trip images/t2i.png"""
import argparse, json, os, shutil, sys
import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import CLIPConfig
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--out", default=os.path.join(HERE, "data", "safety"))
ap.add_argument("--trip", default=None, help="image (relative to --out) that must trip a concept of its own")
ap.add_argument("--keep-images", action="store_true", help="reuse images/*.png instead of drawing new ones")
args = ap.parse_args()
out = args.out
MARGIN = 0.003


def retry(why):
    """Draws again (new weights, new images but --trip's) by running this
    script anew: some random checkers map the images too close together."""
    tries = int(os.environ.get("SAFETY_REF_TRIES", "0")) + 1
    print(f"{why}: drawing again (try {tries + 1})", flush=True)
    if tries >= 20:
        sys.exit("no separating checker in 20 draws")
    os.environ["SAFETY_REF_TRIES"] = str(tries)
    os.execv(sys.executable, [sys.executable] + sys.argv)
seed = int.from_bytes(os.urandom(4), "little")
torch.manual_seed(seed)
rng = np.random.default_rng(seed)

# ---- images -------------------------------------------------------------------
img_dir = os.path.join(out, "images")
os.makedirs(img_dir, exist_ok=True)
if not args.keep_images:
    for f in os.listdir(img_dir):
        if f.endswith(".png") and (not args.trip or f != os.path.basename(args.trip)):
            os.remove(os.path.join(img_dir, f))

    def grad(w, h):
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        c = rng.uniform(0, 1, (3, 3))
        img = np.stack([c[k, 0] * x / w + c[k, 1] * y / h + c[k, 2] * 0.3 for k in range(3)], -1)
        return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)

    def blocks(w, h, n):
        cols = rng.integers(0, 256, (n, n, 3), dtype=np.uint8)
        return np.array(Image.fromarray(cols).resize((w, h), Image.NEAREST))

    Image.fromarray(grad(48, 40)).save(os.path.join(img_dir, "grad_48x40.png"))
    Image.fromarray(blocks(224, 224, 4)).save(os.path.join(img_dir, "blocks_224.png"))
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(os.path.join(img_dir, "noise_30x20.png"))
    Image.fromarray(grad(20, 64)).save(os.path.join(img_dir, "tall_20x64.png"))
    Image.fromarray(blocks(250, 230, 3)).save(os.path.join(img_dir, "blocks_250x230.png"))
    Image.fromarray(grad(33, 33)[:, :, 0]).save(os.path.join(img_dir, "gray_33.png"))  # mode L
    Image.fromarray(grad(64, 64)).save(os.path.join(img_dir, "grad_64x64.png"))  # t2i.png's size
names = sorted(f for f in os.listdir(img_dir) if f.endswith(".png"))

# ---- model ----------------------------------------------------------------------
vision = dict(hidden_size=16, intermediate_size=32, num_attention_heads=4, num_hidden_layers=2, image_size=224,
              patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5, num_channels=3)
config = CLIPConfig(vision_config=vision, text_config=dict(hidden_size=32, intermediate_size=64,
                    num_attention_heads=4, num_hidden_layers=2, projection_dim=16), projection_dim=16)
N_CONCEPTS, N_SPECIAL = 17, 3  # diffusers hard-codes these counts (from_pretrained refuses others)
checker = StableDiffusionSafetyChecker(config).eval()
with torch.no_grad():
    # Default inits leave norms at 1/0 and biases at 0: draw everything, with
    # a scale that keeps activations O(1).
    for name, p in checker.named_parameters():
        if "layer_norm" in name or "layrnorm" in name:
            p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
        elif p.ndim >= 2:
            # The patch embedding drawn larger, so that the image (not the
            # class and position embeddings every image shares) dominates the
            # class token: embeddings of different images then differ enough
            # for concepts that separate them.
            fan_in = p[0].numel()
            p.copy_(torch.randn_like(p) * (4.0 if "patch_embedding" in name else 1.0) / np.sqrt(fan_in))
        else:
            p.copy_(0.5 * torch.randn_like(p))
    checker.concept_embeds = torch.nn.Parameter(torch.randn(N_CONCEPTS, 16), requires_grad=False)
    checker.special_care_embeds = torch.nn.Parameter(torch.randn(N_SPECIAL, 16), requires_grad=False)
    checker.concept_embeds_weights = torch.nn.Parameter(torch.ones(N_CONCEPTS), requires_grad=False)
    checker.special_care_embeds_weights = torch.nn.Parameter(torch.ones(N_SPECIAL), requires_grad=False)

fe = {"crop_size": 224, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True, "do_resize": True,
      "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
      "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224}
processor = CLIPImageProcessorPil(do_resize=True, size={"shortest_edge": fe["size"]}, resample=fe["resample"],
                                  do_center_crop=True, crop_size={"height": fe["crop_size"], "width": fe["crop_size"]},
                                  do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                                  image_mean=fe["image_mean"], image_std=fe["image_std"], do_convert_rgb=True)


def pixels(name):
    img = Image.open(os.path.join(img_dir, name)).convert("RGB")
    return processor(images=img, return_tensors="pt").pixel_values


with torch.no_grad():
    pv = {n: pixels(n) for n in names}
    emb = {n: checker.visual_projection(checker.vision_model(pv[n])[1])[0] for n in names}


def cos(a, b):
    return float(torch.nn.functional.normalize(a[None]) @ torch.nn.functional.normalize(b[None]).t())


print("cosine between the images' embeddings (min, max off-diagonal): %.3f %.3f" % (
    min(cos(emb[a], emb[b]) for a in names for b in names if a != b),
    max(cos(emb[a], emb[b]) for a in names for b in names if a != b)))

# ---- concepts: pick embeddings and thresholds -------------------------------------
# Plan (images in sorted order, excluding the --trip one):
#   special 0 fires for image A (so its concepts get +0.01);
#   (each designated concept is a direction orthogonal to every other
#   image's embedding, so the others score far below their thresholds)
#   concept 0 trips image B directly;
#   concept 1 trips image A only thanks to the +0.01 (raw -0.005);
#   concept 2 is the --trip image's own embedding (threshold halfway from
#   the closest other image to 1);
#   the other concepts and specials are random directions with thresholds
#   above every image's cosine.
others = [n for n in names if not (args.trip and n == os.path.basename(args.trip))]
A, B = others[0], others[1]
trip = os.path.basename(args.trip) if args.trip else None


def scores_of(n, ce, se, cw, sw):
    """Unrounded special and concept scores of image n, as diffusers computes them."""
    adj, special, concept = np.float32(0), [], []
    for k in range(N_SPECIAL):
        s_ = np.float32(cos(emb[n], se[k])) - sw[k] + adj
        special.append(float(s_))
        if round(s_, 3) > 0:
            adj = np.float32(0.01)
    for k in range(N_CONCEPTS):
        concept.append(float(np.float32(cos(emb[n], ce[k])) - cw[k] + adj))
    return special, concept


def wanted(n, special, concept):
    fires = lambda v: round(np.float32(v), 3) > 0
    if any(abs(v - 0.0005) <= MARGIN for v in special + concept):
        return False
    sp, cc = [fires(v) for v in special], [fires(v) for v in concept]
    if n == A:  # special 0 fires; concept 1 only through the +0.01
        return sp[0] and cc[1] and concept[1] < 0.01 + 0.0005
    if n == B:
        return cc[0] and not any(sp)
    if n == trip:
        return cc[2] and not any(sp)
    return not any(sp) and not any(cc)


def direction(target):
    """A concept direction with cosine 0 to every image's embedding but
    `target`'s (the minimum-norm solution of E v = e_target; the images are
    fewer than the 16 dimensions)."""
    E = np.stack([torch.nn.functional.normalize(emb[n][None])[0].numpy() for n in names]).astype(np.float64)
    t = np.array([1.0 if n == target else 0.0 for n in names])
    v = np.linalg.pinv(E) @ t
    return torch.from_numpy(v.astype(np.float32))


with torch.no_grad():
    ce = torch.randn(N_CONCEPTS, 16)
    se = torch.randn(N_SPECIAL, 16)
    se[0] = direction(A)
    ce[0] = direction(B)
    ce[1] = direction(A)
    if trip:
        ce[2] = direction(trip)
    cw = np.zeros(N_CONCEPTS, np.float32)
    sw = np.zeros(N_SPECIAL, np.float32)
    # A direction's cosine with its own image is c = 1/|v| (0 for the
    # others); a threshold at c - delta makes the image score +delta and the
    # others -(c - delta), A's with +0.01 added: delta must leave both clear
    # of the boundary.
    def delta(k_target, embeds):
        c = cos(emb[k_target], embeds)
        d = min(0.05, (c - 0.01) / 2)
        if d < 0.0045:
            retry(f"{k_target}: its direction's cosine {c:.4f} is too small to separate it")
        return c - d
    sw[0] = delta(A, se[0])                      # A: special score +delta
    cw[0] = delta(B, ce[0])                      # B: concept score +delta
    cw[1] = cos(emb[A], ce[1]) + 0.005           # A: raw -0.005, +0.01 -> +0.005
    if trip:
        cw[2] = delta(trip, ce[2])
    for k in range(N_CONCEPTS):
        if k not in (0, 1) and not (k == 2 and trip):
            cw[k] = max(cos(emb[n], ce[k]) for n in names) + 0.05
    for k in range(1, N_SPECIAL):
        sw[k] = max(cos(emb[n], se[k]) for n in names) + 0.05
    for n in names:
        assert wanted(n, *scores_of(n, ce, se, cw, sw)), (n, scores_of(n, ce, se, cw, sw))
    checker.concept_embeds.copy_(ce)
    checker.special_care_embeds.copy_(se)
    checker.concept_embeds_weights.copy_(torch.from_numpy(cw))
    checker.special_care_embeds_weights.copy_(torch.from_numpy(sw))
    cw, sw = checker.concept_embeds_weights, checker.special_care_embeds_weights
    ce, se = checker.concept_embeds, checker.special_care_embeds

# ---- reference run ----------------------------------------------------------------
ref = {"seed": seed, "margin": MARGIN, "concepts": N_CONCEPTS, "special": N_SPECIAL, "images": {}}
with torch.no_grad():
    for n in names:
        imgs = np.ones((1, 8, 8, 3), dtype=np.float32)
        out_imgs, nsfw = checker(clip_input=pv[n], images=imgs)
        image_embeds = emb[n][None]
        sc = torch.mm(torch.nn.functional.normalize(image_embeds), torch.nn.functional.normalize(se).t())[0].numpy()
        cc = torch.mm(torch.nn.functional.normalize(image_embeds), torch.nn.functional.normalize(ce).t())[0].numpy()
        adj, special, concept = np.float32(0), [], []
        for k in range(N_SPECIAL):
            s = sc[k] - sw[k].item() + adj
            special.append(float(s))
            if round(s, 3) > 0:
                adj = np.float32(0.01)
        for k in range(N_CONCEPTS):
            concept.append(float(cc[k] - cw[k].item() + adj))
        flagged = any(round(np.float32(c), 3) > 0 for c in concept)
        assert flagged == bool(nsfw[0]), (n, concept, nsfw)
        assert (not nsfw[0]) or float(np.abs(out_imgs[0]).max()) == 0.0
        # Every score stays clear of the rounding boundary, so float noise cannot flip a flag.
        for s in special + concept:
            assert abs(s - 0.0005) > MARGIN, (n, s)
        p = pv[n][0].numpy()
        ref["images"][n] = {
            "has_nsfw_concept": bool(nsfw[0]),
            "special_care": bool(adj > 0),
            "special_scores": special,
            "concept_scores": concept,
            "image_embeds": image_embeds[0].tolist(),
            "pixel_mean": p.reshape(3, -1).mean(1).tolist(),
            "pixel_samples": [[c, y, x, float(p[c, y, x])] for c, y, x in
                              [(0, 0, 0), (1, 17, 200), (2, 223, 223), (0, 111, 112), (1, 200, 5), (2, 60, 140)]],
        }
assert any(v["has_nsfw_concept"] for v in ref["images"].values())
assert any(not v["has_nsfw_concept"] for v in ref["images"].values())
assert ref["images"][A]["special_care"] and ref["images"][A]["has_nsfw_concept"]


# ---- folders ----------------------------------------------------------------------
def pipeline(folder, sc_config):
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    base = "../../../../../../shared/reference/tiny-sd15/diffusers"  # from tests/postprocess/data/safety/<folder>
    for comp in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        os.symlink(f"{base}/{comp}", os.path.join(folder, comp))
    with open(os.path.join(HERE, "..", "..", "..", "shared", "reference", "tiny-sd15", "diffusers",
                           "model_index.json")) as f:
        idx = json.load(f)
    idx["safety_checker"] = ["stable_diffusion", "StableDiffusionSafetyChecker"]
    idx["feature_extractor"] = ["transformers", "CLIPImageProcessor"]
    idx["requires_safety_checker"] = True
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(idx, f, indent=2)
    os.makedirs(os.path.join(folder, "safety_checker"))
    os.makedirs(os.path.join(folder, "feature_extractor"))
    with open(os.path.join(folder, "feature_extractor", "preprocessor_config.json"), "w") as f:
        json.dump(fe, f, indent=2)
    with open(os.path.join(folder, "safety_checker", "config.json"), "w") as f:
        json.dump(sc_config, f, indent=2)


good = os.path.join(out, "tiny-sd15-safety")
checker.save_pretrained(os.path.join(out, "tmp-save"), safe_serialization=True)
with open(os.path.join(out, "tmp-save", "config.json")) as f:
    sc_config = json.load(f)
pipeline(good, sc_config)
# The SD1.x repos' safety_checker/model.safetensors were written by
# transformers 4: CLIPVisionModel's tower under "vision_model.vision_model.";
# transformers 5 writes "vision_model." only. The main fixture has the old
# names (what users have), new-layout/ the new ones; both load in diffusers.
new_names = load_file(os.path.join(out, "tmp-save", "model.safetensors"))
old_names = {("vision_model." + k if k.startswith("vision_model.") else k): v for k, v in new_names.items()}
save_file(old_names, os.path.join(good, "safety_checker", "model.safetensors"), metadata={"format": "pt"})
newdir = os.path.join(out, "new-layout")
if os.path.isdir(newdir):
    shutil.rmtree(newdir)
os.makedirs(os.path.join(newdir, "safety_checker"))
os.makedirs(os.path.join(newdir, "feature_extractor"))
shutil.move(os.path.join(out, "tmp-save", "model.safetensors"), os.path.join(newdir, "safety_checker", "model.safetensors"))
shutil.copy(os.path.join(good, "safety_checker", "config.json"), os.path.join(newdir, "safety_checker", "config.json"))
shutil.copy(os.path.join(good, "feature_extractor", "preprocessor_config.json"),
            os.path.join(newdir, "feature_extractor", "preprocessor_config.json"))
shutil.rmtree(os.path.join(out, "tmp-save"))
with torch.no_grad():
    for folder in (good, newdir):
        again = StableDiffusionSafetyChecker.from_pretrained(os.path.join(folder, "safety_checker")).eval()
        for n in names:
            e2 = again.visual_projection(again.vision_model(pv[n])[1])[0]
            assert torch.allclose(e2, emb[n], atol=1e-6), (folder, n)
bad_config = json.loads(json.dumps(sc_config))
bad_config["vision_config"]["hidden_size"] = 48
bad = os.path.join(out, "bad-shapes")
pipeline(bad, bad_config)
os.symlink("../../tiny-sd15-safety/safety_checker/model.safetensors", os.path.join(bad, "safety_checker", "model.safetensors"))
with open(os.path.join(out, "ref.json"), "w") as f:
    json.dump(ref, f, indent=1)
for n, v in ref["images"].items():
    print(f"{n}: nsfw={v['has_nsfw_concept']} special={v['special_care']} "
          f"concept max {max(v['concept_scores']):+.4f}")
