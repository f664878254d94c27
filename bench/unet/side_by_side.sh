#!/bin/sh
# bench/unet/side_by_side.sh - UNet step of two builds side by side, as
# separate processes alternating, 2 rounds per size: BASE eager, NEW eager,
# NEW graph (docs/PERFORMANCE.md, "nn graphs, one arena").
#
#   bench/unet/side_by_side.sh BASE_BUILD_DIR NEW_BUILD_DIR CKPT.safetensors [SIZES...]
#
# A build dir holds bench/bench-unet and lib/sdrt/backends (its own CPU
# backend). BASE may predate graph mode: only its eager mode is run.
set -e
base=$1 new=$2 ckpt=$3
shift 3 || { echo "usage: $0 BASE_BUILD NEW_BUILD CKPT [SIZES...]" >&2; exit 2; }
sizes=${*:-256x256 512x512}
for size in $sizes; do
  for round in 1 2; do
    SDRT_BUILD_DIR=$base "$base/bench/bench-unet" "$ckpt" --size "$size" --iters 2 --threads 2 --mode eager |
      grep best | sed "s/^/base /"
    SDRT_BUILD_DIR=$new "$new/bench/bench-unet" "$ckpt" --size "$size" --iters 2 --threads 2 --mode eager |
      grep best | sed "s/^/new /"
    SDRT_BUILD_DIR=$new "$new/bench/bench-unet" "$ckpt" --size "$size" --iters 2 --threads 2 --mode graph |
      grep -E "best|iter 1" | sed "s/^/new /"
  done
done
