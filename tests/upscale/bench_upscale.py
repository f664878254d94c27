#!/usr/bin/env python3
"""tests/upscale/bench_upscale.py - the PyTorch side of the upscaler numbers
in docs/PERFORMANCE.md. `make OUT.pth` writes full-size random weights in
RealESRGAN_x4plus's layout (RRDBNet 64nf 23nb, params_ema, Real-ESRGAN key
names); `make-compact OUT.pth` in realesr-general-x4v3's (SRVGGNetCompact
64nf 32 convs, PReLU, x4, params); `run MODEL SIZE [THREADS]` times spandrel's
model on a random SIZE^2 image on the CPU (torch.set_num_threads(THREADS),
default os.cpu_count()) and prints peak RSS (bench/upscale/compare.sh runs it
beside sdrt)."""
import os, resource, sys, time
import torch
import spandrel

if sys.argv[1] == "make":
    from spandrel.architectures.ESRGAN import ESRGAN
    m = ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4)
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    # old -> Real-ESRGAN names (as make_upscale_ref.old_to_new, 23 blocks, 2 upconvs)
    import re
    new = {}
    for k, v in sd.items():
        r = re.match(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$", k)
        kind = k.split(".")[-1]
        if r: new[f"body.{r[1]}.rdb{r[2]}.conv{r[3]}.{r[4]}"] = v
        elif k.startswith("model.1.sub.23."): new[f"conv_body.{kind}"] = v
        elif k.startswith("model.0."): new[f"conv_first.{kind}"] = v
        else:
            i = int(k.split(".")[1])
            new[{3: "conv_up1", 6: "conv_up2", 8: "conv_hr", 10: "conv_last"}[i] + "." + kind] = v
    torch.save({"params_ema": new}, sys.argv[2])
    print("wrote", sys.argv[2])
elif sys.argv[1] == "make-compact":
    from spandrel.architectures.Compact import Compact
    m = Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4, act_type="prelu")
    torch.save({"params": {k: v.contiguous() for k, v in m.state_dict().items()}}, sys.argv[2])
    print("wrote", sys.argv[2])
else:
    path, size = sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else os.cpu_count())
    desc = spandrel.ModelLoader().load_from_file(path)
    model = desc.model.eval()
    torch.manual_seed(1)
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        t0 = time.perf_counter()
        y = model(x)
        dt = time.perf_counter() - t0
    print(f"spandrel {desc.architecture.id} x{desc.scale} torch {torch.__version__} threads {torch.get_num_threads()}: "
          f"{size}x{size} -> {y.shape[3]}x{y.shape[2]}: {dt:.2f} s, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
