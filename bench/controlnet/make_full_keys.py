"""Key lists and configs of a full-size UNet and the ControlNet diffusers
builds from it (ControlNetModel.from_unet), for random-weight timing runs
(docs/PERFORMANCE.md, "ControlNet and Canny").

    /work/venv/bin/python bench/controlnet/make_full_keys.py sd15|sdxl OUT_DIR
    build/bin/sdrt-mkckpt OUT_DIR/unet/keys.txt OUT_DIR/unet/diffusion_pytorch_model.safetensors --dtype f16
    build/bin/sdrt-mkckpt OUT_DIR/controlnet/keys.txt OUT_DIR/controlnet/diffusion_pytorch_model.safetensors --dtype f16
    SDRT_CN_FULL=OUT_DIR (sd15) or SDRT_CN_FULL_XL=OUT_DIR (sdxl) build/tests/test-controlnet timing

Writes OUT_DIR/{unet,controlnet}/{config.json,keys.txt}; the models are
built on the meta device, so nothing is allocated. Needs torch and
diffusers (the reference venv), not the project."""
import os
import sys

import torch
from diffusers import ControlNetModel, UNet2DConditionModel

CONFIGS = {
    # stable-diffusion-v1-5 unet/config.json
    "sd15": dict(sample_size=64, in_channels=4, out_channels=4,
                 down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
                 block_out_channels=[320, 640, 1280, 1280], layers_per_block=2,
                 cross_attention_dim=768, attention_head_dim=8),
    # stable-diffusion-xl-base-1.0 unet/config.json
    "sdxl": dict(sample_size=128, in_channels=4, out_channels=4,
                 down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                 up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                 block_out_channels=[320, 640, 1280], layers_per_block=2,
                 transformer_layers_per_block=[1, 2, 10], cross_attention_dim=2048,
                 attention_head_dim=[5, 10, 20], use_linear_projection=True,
                 addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816),
}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in CONFIGS:
        sys.exit(__doc__)
    out = sys.argv[2]
    with torch.device("meta"):
        u = UNet2DConditionModel(**CONFIGS[sys.argv[1]])
        c = ControlNetModel.from_unet(u, load_weights_from_unet=False)
    for m, d in ((u, "unet"), (c, "controlnet")):
        os.makedirs(os.path.join(out, d), exist_ok=True)
        with open(os.path.join(out, d, "keys.txt"), "w") as f:
            for n, p in m.state_dict().items():
                f.write(f"{n}\tF32\t[{', '.join(str(s) for s in p.shape)}]\n")
        m.save_config(os.path.join(out, d))
        print(d, sum(p.numel() for p in m.state_dict().values()), "parameters")


if __name__ == "__main__":
    main()
