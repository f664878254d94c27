#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build, write a
# tiny random-weight SDXL-architecture model (no downloads), then drive the
# stdio host with real requests and print its answers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
rm -rf demo-model && build/bin/sdrt-mkdemo demo-model >&2
mkdir -p outputs
printf '%s\n' \
  '{"type":"host.info","request_id":"info"}' \
  '{"type":"device.list","request_id":"devices"}' \
  '{"type":"model.load","request_id":"load","data":{"model_id":"demo-model"}}' \
  '{"type":"inference.run","request_id":"txt2img","data":{"model_id":"demo-model","prompt":"a red fox in the snow","negative_prompt":"blurry","width":128,"height":128,"num_inference_steps":8,"guidance_scale":7.5,"scheduler":"DPM++ 2M Karras","seed":42,"output":{"dir":"demo"}}}' \
  | build/bin/sdrt serve --model-root . --output-root outputs
