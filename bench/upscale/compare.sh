#!/usr/bin/env bash
# bench/upscale/compare.sh - RealESRGAN-family upscale, sdrt's CPU backend
# against spandrel/PyTorch on the same model file, same image size and
# thread count, alternating in one run (docs/PERFORMANCE.md, "Upscalers").
#
#   bench/upscale/compare.sh MODEL [SIZE [ROUNDS [THREADS [TILE]]]]
#
#   MODEL    .pth or .safetensors both load (full-size random RealESRGAN_x4plus
#            weights: $PY tests/upscale/bench_upscale.py make MODEL.pth)
#   SIZE     input side in pixels (default 512)
#   ROUNDS   alternating rounds (default 1)
#   THREADS  threads for both (default 2; sdrt's CPU stream takes the online
#            cores, so THREADS must equal nproc for sdrt)
#   TILE     also time sdrt tiled with TILE px tiles and 16 px overlap
#            (default 192, sdrt's default tile; 0: skip)
#
# Needs build/bin/bench-upscale (SDRT_BUILD_DIR=build) and a Python with
# torch and spandrel ($PY, default /work/venv/bin/python); the Python side
# is tests/upscale/bench_upscale.py run. Each run is a fresh process timed
# around the network only, with its peak RSS; the load average is printed
# with every figure.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
model=${1:?usage: compare.sh MODEL [SIZE [ROUNDS [THREADS [TILE]]]]}
size=${2:-512} rounds=${3:-1} threads=${4:-2} tile=${5:-192}
py=${PY:-/work/venv/bin/python}
build=${SDRT_BUILD_DIR:-$root/build}
bench=$build/bin/bench-upscale
[ -x "$bench" ] || { echo "compare.sh: $bench not built" >&2; exit 2; }
[ "$threads" = "$(nproc)" ] || echo "warning: sdrt's bench uses $(nproc) threads (the online cores), PyTorch $threads" >&2
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "model: $model; ${size}x${size} input; threads $threads"
sdrt_run() { # $1: tile
  echo "sdrt    (load $(load)): $(SDRT_BUILD_DIR=$build "$bench" "$model" "$size" "$1" 16 2>&1 | tail -1)"
}
torch_run() {
  echo "spandrel (load $(load)): $("$py" "$root/tests/upscale/bench_upscale.py" run "$model" "$size" "$threads" 2>&1 | tail -1)"
}
for r in $(seq 1 "$rounds"); do
  echo "== round $r"
  if [ $((r % 2)) -eq 1 ]; then sdrt_run 0; torch_run; else torch_run; sdrt_run 0; fi
  [ "$tile" -gt 0 ] && sdrt_run "$tile"
done
