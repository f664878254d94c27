#!/usr/bin/env bash
# bench/hires/hires.sh - what the hires fix costs against A1111's description
# (first pass + upscale + second pass), on one checkpoint (docs/PERFORMANCE.md,
# "Hires fix").
#
#   bench/hires/hires.sh MODEL [SIZE [STEPS [HIRES_STEPS [UPSCALER]]]]
#
# Runs, each as its own `sdrt serve` process (2 threads, Euler, CFG 7, seed 1),
# with the load average printed before each:
#   1. txt2img at SIZE with STEPS steps            (the first pass alone)
#   2. txt2img at 2*SIZE with HIRES_STEPS steps    (a second pass's steps alone)
#   3. txt2img at SIZE, hires x2 with UPSCALER (default latent), HIRES_STEPS
#      second-pass steps, denoising_strength 0.5
# and prints each run's progress timeline (elapsed seconds of every step, the
# decode and the image writing) and the whole run (/usr/bin/time).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
model=$(realpath "${1:?usage: hires.sh MODEL [SIZE [STEPS [HIRES_STEPS [UPSCALER]]]]}")
size=${2:-256} steps=${3:-4} hsteps=${4:-2} up=${5:-latent}
sdrt=${SDRT:-$root/build/bin/sdrt}
out=$(mktemp -d /tmp/sdrt-hires.XXXXXX)
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; $(date -u '+%Y-%m-%d %H:%M UTC'); model $model"
run() { # $1 tag, $2 extra data fields
  local req
  req=$(printf '{"type":"inference.run","request_id":"%s","data":{"model_id":"%s","prompt":"a red fox in the snow","negative_prompt":"blurry","num_inference_steps":%s,"guidance_scale":7,"scheduler":"Euler","seed":1,"output":{"dir":"%s","prefix":"%s"},%s}}' \
    "$1" "$model" "${3:-$steps}" "$out" "$1" "$2")
  echo "== $1 (load $(cut -d' ' -f1-3 /proc/loadavg))"
  printf '%s\n' "$req" | /usr/bin/time -o "$out/$1.time" -f 'whole run %e s, peak RSS %M KB' "$sdrt" serve \
    --set threads=2 --set allow_any_path=true --set log_level=warn --set shutdown_grace_s=7200 \
    --output-root "$out" > "$out/$1.jsonl" 2> "$out/$1.err" || true
  python3 - "$out/$1.jsonl" <<'PY'
import json, sys
prev = 0.0
for line in open(sys.argv[1]):
    o = json.loads(line)
    d = o.get("data") or {}
    if o.get("type") == "event" and o.get("event_name") == "progress" and "elapsed" in d:
        what = d.get("stage", "?") + (" %d/%d" % (d["step"], d["steps"]) if "step" in d else "")
        print("  %8.2f s  (+%6.2f)  %s" % (d["elapsed"], d["elapsed"] - prev, what))
        prev = d["elapsed"]
    elif o.get("type") == "response":
        print("  response: success %s %s" % (o.get("success"), o.get("error") or ""))
PY
  cat "$out/$1.time"
}
run plain-$size "\"width\":$size,\"height\":$size"
run plain-$((2 * size)) "\"width\":$((2 * size)),\"height\":$((2 * size))" "$hsteps"
run hires-$up "\"width\":$size,\"height\":$size,\"hires\":{\"scale\":2,\"upscaler\":\"$up\",\"steps\":$hsteps,\"denoising_strength\":0.5}"
echo "logs: $out"
