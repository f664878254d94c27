#!/usr/bin/env python3
"""Summary of a bench/sdcpp/compare.sh run (standard library only).

    summarize.py [--round R] [--gflop X] [--label TEXT] OUT_DIR

Reads OUT_DIR/r<R>-sdrt.{jsonl,time} (sdrt serve's response and progress
events) and OUT_DIR/r<R>-sdcpp.{log,time} (sd.cpp's log), and prints per
run: per-step time (mean of steps 2..N), VAE decode, whole run, peak RSS and
the load average at its start; then, over all rounds, best and spread of
each figure per tool and the ratio sdrt / sd.cpp of the bests. With
--gflop, each tool's best step as a fraction of the OpenBLAS ceiling
measured in the same run (ceiling-*.txt). --round R prints only round R.
"""
import glob
import json
import os
import re
import sys


def read_time(path):
    """load average at the start, wall seconds, peak RSS in KiB."""
    load, wall, rss = None, None, None
    with open(path) as f:
        for line in f:
            if line.startswith("load "):
                load = line[5:].strip()
            m = re.search(r"wall ([\d.]+) rss_kb (\d+)", line)
            if m:
                wall, rss = float(m.group(1)), int(m.group(2))
    return load, wall, rss


def sdrt_run(base):
    """Step times, VAE decode and an error from sdrt serve's output lines."""
    steps, decode, post, error = {}, None, None, None
    with open(base + ".jsonl") as f:
        for line in f:
            try:
                o = json.loads(line)
            except ValueError:
                continue
            d = o.get("data") or {}
            if o.get("type") == "event" and o.get("event_name") == "progress":
                st = d.get("stage")
                if st == "inference" and "step" in d:
                    steps[d["step"]] = d["elapsed"]
                elif st == "decode":
                    decode = d["elapsed"]
                elif st == "postprocessing":
                    post = d["elapsed"]
            elif o.get("type") == "response" and not o.get("success"):
                error = "%s: %s" % (o.get("error_code"), o.get("error"))
    per = [steps[k] - steps[k - 1] for k in sorted(steps) if k - 1 in steps]
    vae = post - decode if decode is not None and post is not None else None
    if not steps and error is None:
        error = "no progress events (see %s.err)" % base
    return per, vae, error


def sdcpp_run(base):
    """Step times, VAE decode and an error from sd.cpp's log."""
    with open(base + ".log", errors="replace") as f:
        text = f.read()
    per = {}
    # "|=====| 2/2 - 12.34s/it" (or "1.50it/s"): the time since the last step
    for m in re.finditer(r"(\d+)/(\d+) - ([\d.]+)(s/it|it/s)", text):
        v = float(m.group(3))
        per[int(m.group(1))] = v if m.group(4) == "s/it" else 1.0 / v
    per_steps = [per[k] for k in sorted(per) if k >= 2]
    m = re.search(r"decode_first_stage completed, taking ([\d.]+)s", text)
    vae = float(m.group(1)) if m else None
    error = None
    if not per or vae is None:
        tail = [l for l in text.splitlines() if l.strip()][-3:]
        error = "no step/decode timing in %s.log: %s" % (base, " | ".join(tail))
    return per_steps, vae, error


def run(out, r, tool):
    base = os.path.join(out, "r%d-%s" % (r, tool))
    if not os.path.exists(base + ".time"):
        return None
    load, wall, rss = read_time(base + ".time")
    per, vae, error = (sdrt_run if tool == "sdrt" else sdcpp_run)(base)
    step = sum(per) / len(per) if per else None
    return {"step": step, "vae": vae, "wall": wall, "rss": rss, "load": load, "error": error}


def fmt(v, unit="s"):
    if v is None:
        return "-"
    return "%.2f GiB" % (v / 2**20) if unit == "kb" else "%.2f s" % v


def print_run(r, tool, x):
    if x["error"]:
        print("round %d %-5s FAILED: %s (load %s)" % (r, tool, x["error"], x["load"]))
    print("round %d %-5s step %s  vae %s  whole %s  peak RSS %s  (load %s)" % (
        r, tool, fmt(x["step"]), fmt(x["vae"]), fmt(x["wall"]), fmt(x["rss"], "kb"), x["load"]))


def ceiling(out):
    best, lines = None, []
    for p in sorted(glob.glob(os.path.join(out, "ceiling-*.txt"))):
        with open(p) as f:
            t = f.read()
        m = re.search(r"^ceiling ([\d.]+)", t, re.M)
        core = re.search(r"^OpenBLAS core ([^,\s]+)", t, re.M)
        load = re.search(r"^load (.*)$", t, re.M)
        if m:
            v = float(m.group(1))
            lines.append("%s %.1f GFLOP/s (core %s, load %s)" % (
                os.path.basename(p)[8:-4], v, core.group(1) if core else "?", load.group(1) if load else "?"))
            best = v if best is None or v > best else best
    return best, lines


def main(argv):
    args, out, rnd, gflop, label = list(argv), None, None, None, None
    while args:
        a = args.pop(0)
        if a == "--round":
            rnd = int(args.pop(0))
        elif a == "--gflop":
            gflop = float(args.pop(0))
        elif a == "--label":
            label = args.pop(0)
        else:
            out = a
    if not out:
        print(__doc__, file=sys.stderr)
        return 2
    rounds = sorted({int(m.group(1)) for p in os.listdir(out) for m in [re.match(r"r(\d+)-", p)] if m})
    if rnd is not None:
        for tool in ("sdrt", "sdcpp"):
            x = run(out, rnd, tool)
            if x:
                print_run(rnd, tool, x)
        return 0
    runs = {t: [x for r in rounds for x in [run(out, r, t)] if x and not x["error"]] for t in ("sdrt", "sdcpp")}
    print("== %s: %d round(s)" % (label or out, len(rounds)))
    for r in rounds:
        for tool in ("sdrt", "sdcpp"):
            x = run(out, r, tool)
            if x:
                print_run(r, tool, x)
    print("%-16s %-28s %-28s %s" % ("figure", "sdrt best (spread)", "sd.cpp best (spread)", "sdrt / sd.cpp"))
    best = {}
    for key, name, unit in (("step", "per step", "s"), ("vae", "VAE decode", "s"), ("wall", "whole run", "s"),
                            ("rss", "peak RSS", "kb")):
        cells = []
        for tool in ("sdrt", "sdcpp"):
            v = [x[key] for x in runs[tool] if x[key] is not None]
            best[tool, key] = min(v) if v else None
            cells.append("%s (%s)" % (fmt(min(v), unit), "–".join([fmt(min(v), unit), fmt(max(v), unit)]))
                         if v else "-")
        a, b = best["sdrt", key], best["sdcpp", key]
        print("%-16s %-28s %-28s %s" % (name, cells[0], cells[1], "%.2f" % (a / b) if a and b else "-"))
    for r in rounds:  # the ISA sd.cpp's ggml was built for, from its -v log
        p = os.path.join(out, "r%d-sdcpp.log" % r)
        if os.path.exists(p):
            with open(p, errors="replace") as f:
                feats = re.findall(r"(AVX2|AVX512|AVX512_VNNI|AVX512_BF16|AVX_VNNI|FMA|F16C|LLAMAFILE) = (\d)", f.read())
            if feats:
                print("sd.cpp ggml CPU features: " + ", ".join("%s %s" % kv for kv in dict(feats).items()))
                break
    c, lines = ceiling(out)
    for l in lines:
        print("OpenBLAS sgemm ceiling, " + l)
    if c and gflop:
        t = gflop / c
        print("a step at the ceiling: %.2f s (%.0f GFLOP at %.1f GFLOP/s)" % (t, gflop, c))
        for tool in ("sdrt", "sdcpp"):
            s = best[tool, "step"]
            if s:
                print("%-6s best step %.2f s = %.0f GFLOP/s = %.0f%% of the ceiling" % (tool, s, gflop / s,
                                                                                        100 * t / s))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
