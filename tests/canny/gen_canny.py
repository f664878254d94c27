#!/usr/bin/env python3
"""Goldens for tests/canny: cv2.Canny (opencv-python-headless from PyPI,
apertureSize 3, L2gradient False) on synthetic images.

Writes data/<case>.in (raw [h, w, c] uint8) and data/<case>.out (raw [h, w]
uint8, 0/255), and data/cases.txt: "<case> <w> <h> <c> <low> <high>" per line.

Usage: python tests/canny/gen_canny.py
"""
import os

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(5)


def scene(w, h, c):
    y, x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    img = np.zeros((h, w, 3))
    for k in range(3):
        img[..., k] = 128 + 90 * np.sin(0.05 * (k + 1) * x + 0.03 * y) * np.cos(0.04 * y - k)
    for _ in range(12):  # rectangles and discs with hard edges
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(3, max(4, min(w, h) // 4))
        col = rng.integers(0, 256, 3)
        if rng.random() < 0.5:
            img[max(0, cy - r):cy + r, max(0, cx - r):cx + r] = col
        else:
            img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = col
    img += rng.normal(0, 6, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img if c == 3 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None]


cases = [("rgb97x61", 97, 61, 3, 100, 200), ("rgb256", 256, 256, 3, 50, 150), ("swapped", 120, 90, 3, 200, 100),
         ("gray", 128, 96, 1, 80, 160), ("frac", 64, 64, 3, 99.7, 180.2), ("tiny", 3, 2, 3, 10, 20)]
with open(os.path.join(OUT, "cases.txt"), "w") as f:
    for name, w, h, c, lo, hi in cases:
        img = scene(w, h, c)
        edges = cv2.Canny(img if c == 3 else img[..., 0], lo, hi)
        img.tofile(os.path.join(OUT, name + ".in"))
        edges.astype(np.uint8).tofile(os.path.join(OUT, name + ".out"))
        f.write(f"{name} {w} {h} {c} {lo} {hi}\n")
        print(name, int((edges > 0).sum()), "edge pixels")
print("cv2", cv2.__version__)

# The canny control map of tests/inference's ctrl_a.png as diffusers' ControlNet
# example makes it (cv2.Canny(100, 200) on the RGB image, on 3 channels):
# tests/inference/test_controlnet.c checks "preprocess": "canny" against it.
from PIL import Image  # noqa: E402

src = os.path.join(HERE, "..", "inference", "data", "controlnet", "ctrl_a.png")
rgb = np.array(Image.open(src).convert("RGB"))
e = cv2.Canny(rgb, 100, 200)[..., None]
Image.fromarray(np.concatenate([e, e, e], axis=2)).save(os.path.join(OUT, "ctrl_a_canny.png"))
