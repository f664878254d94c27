#!/usr/bin/env bash
# bench/sdcpp/compare.sh - sdrt and stable-diffusion.cpp side by side on the
# same checkpoint, size, sampler (Euler), CFG 7, steps and thread count,
# alternating in one run, with the machine's f32 GEMM ceiling (OpenBLAS
# sgemm, same threads) measured in the same run (docs/PERFORMANCE.md,
# "Side by side with stable-diffusion.cpp").
#
#   bench/sdcpp/compare.sh --sdcpp PATH [options] MODEL
#
#   MODEL            checkpoint both load: a single-file .safetensors with the
#                    original (ldm) key names, or a GGUF file
#   --sdcpp PATH     sd.cpp's CLI (sd-cli), built beside the project, never in
#                    it (or $SDCPP)
#   --sdcpp-lib DIR  prepended to LD_LIBRARY_PATH for sd.cpp only: a directory
#                    with another build of its shared ggml libraries (the
#                    AVX2-only ggml-cpu for --isa avx2), or $SDCPP_LIB
#   --sdcpp-args A   extra arguments for sd.cpp, split on spaces (for example
#                    "--diffusion-fa" for its flash attention, "--mmap")
#   --sdrt PATH      sdrt binary (default $SDRT, else build/bin/sdrt)
#   --isa avx512|avx2|avxvnni  kernel path: avx2 (avxvnni) sets
#                    SDRT_CPU_KERNEL=avx2 (avxvnni: AVX2 plus AVX-VNNI, as on
#                    Alder Lake and Zen 5) for sdrt and OpenBLAS's Haswell/Zen
#                    kernels for the ceiling (avx512: SkylakeX/Cooperlake);
#                    sd.cpp's path is its build (--sdcpp / --sdcpp-lib).
#                    Default avx512.
#   --size N         square image size (default 512)
#   --precision P    sdrt's request field "precision" (f32, int8, bf16;
#                    default: absent, i.e. f32); sd.cpp runs its weights' own
#                    types either way (f16 for an f16 file)
#   --steps N        steps per run (default 2; the per-step figure is the mean
#                    of steps 2..N, so step 1's one-time work is left out)
#   --rounds N       alternating rounds (default 2)
#   --threads N      threads for both and for the ceiling (default 2)
#   --gflop X        GFLOP of one guided step (UNet batch 2), for the
#                    fraction of the ceiling; bench-unet prints it
#   --ceiling PATH   sgemm-ceiling binary (default build/bench/sgemm-ceiling;
#                    skipped when absent)
#   --label TEXT     name of the case in the summary
#   --out DIR        keep the logs there (default: a fresh /tmp directory)
#
# Per run it records the per-step time (sdrt: its progress events'
# `elapsed`; sd.cpp: its per-step "s/it" progress line, which is the time
# since the previous step), the VAE decode (sdrt: from the `decode` to the
# `postprocessing` event; sd.cpp: "decode_first_stage completed, taking"),
# the whole run and the peak RSS (/usr/bin/time -f %e/%M), each with the
# load average at its start. The summary (summarize.py) gives best and
# spread per tool and the ratios sdrt / sd.cpp of the bests. sd.cpp runs with
# -v, so its log shows the CPU features its ggml was built with (System Info).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sdrt=${SDRT:-$root/build/bin/sdrt}
sdcpp=${SDCPP:-}
sdcpp_lib=${SDCPP_LIB:-}
sdcpp_args=""
isa=avx512 size=512 precision="" steps=2 rounds=2 threads=2 gflop="" label="" out=""
ceiling=$root/build/bench/sgemm-ceiling
model=""
while [ $# -gt 0 ]; do
  case $1 in
    --sdcpp) sdcpp=$2; shift 2 ;;
    --sdcpp-lib) sdcpp_lib=$2; shift 2 ;;
    --sdcpp-args) sdcpp_args=$2; shift 2 ;;
    --sdrt) sdrt=$2; shift 2 ;;
    --isa) isa=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --precision) precision=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --gflop) gflop=$2; shift 2 ;;
    --ceiling) ceiling=$2; shift 2 ;;
    --label) label=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
    *) model=$1; shift ;;
  esac
done
[ -n "$model" ] && [ -f "$model" ] || { echo "compare.sh: MODEL (a checkpoint file) is required" >&2; exit 2; }
[ -n "$sdcpp" ] && [ -x "$sdcpp" ] || { echo "compare.sh: --sdcpp (sd.cpp's sd-cli, built beside the project) is required" >&2; exit 2; }
[ -x "$sdrt" ] || { echo "compare.sh: sdrt binary '$sdrt' not found (build it, or --sdrt)" >&2; exit 2; }
case $isa in avx512|avx2|avxvnni) ;; *) echo "compare.sh: --isa must be avx512, avx2 or avxvnni" >&2; exit 2 ;; esac
[ "$steps" -ge 2 ] || { echo "compare.sh: --steps must be at least 2 (step 1 is left out)" >&2; exit 2; }
model=$(realpath "$model")
out=${out:-$(mktemp -d /tmp/sdcpp-compare.XXXXXX)}
mkdir -p "$out/img"
label=${label:-$(basename "$model") ${size}² $isa}

# OpenBLAS kernels per path: Debian's DYNAMIC_ARCH build may pick an AVX2
# kernel on an AVX-512 CPU (0.3.21 picks Haswell on a Zen 5 EPYC), so the AVX-512
# ceiling is the best of the AVX-512 kernels, the AVX2 one of the AVX2 ones.
sdrt_env=() blas_cores=(SkylakeX Cooperlake)
if [ "$isa" != avx512 ]; then sdrt_env=(SDRT_CPU_KERNEL=$isa); blas_cores=(Haswell Zen); fi
prompt="a red fox in the snow" negative="blurry"

load() { cut -d' ' -f1-3 /proc/loadavg; }

{
  echo "case: $label"
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; ISA flags: $(grep -o -w -E 'avx2|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16|avx_vnni|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "path: $isa; sdrt $sdrt (${sdrt_env[*]:-default kernel}, precision ${precision:-f32}); sd.cpp $sdcpp${sdcpp_args:+ $sdcpp_args}${sdcpp_lib:+ with LD_LIBRARY_PATH=$sdcpp_lib}"
  echo "model: $model; ${size}x${size}, $steps steps, Euler, CFG 7, seed 1, $threads threads"
} | tee "$out/header.txt"

run_ceiling() { # $1: tag
  [ -x "$ceiling" ] || return 0
  local l core f
  for core in "${blas_cores[@]}"; do
    l=$(load) f=$out/ceiling-$1-$core.txt
    OPENBLAS_CORETYPE=$core "$ceiling" --threads "$threads" > "$f" 2>&1 || true
    echo "load $l" >> "$f"
    echo "ceiling ($1, load $l): $(grep -E '^OpenBLAS core|^ceiling' "$f" | tr '\n' ' ')"
  done
}

run_sdrt() { # $1: round
  local tag=r$1-sdrt req
  req=$(printf '{"type":"inference.run","request_id":"bench","data":{"model_id":"%s","prompt":"%s","negative_prompt":"%s","width":%d,"height":%d,"num_inference_steps":%d,"guidance_scale":7,"scheduler":"Euler","seed":1%s,"output":{"dir":"%s","prefix":"%s"}}}' \
    "$model" "$prompt" "$negative" "$size" "$size" "$steps" "${precision:+,\"precision\":\"$precision\"}" "$out/img" "$tag")
  echo "load $(load)" > "$out/$tag.time"
  printf '%s\n' "$req" | env "${sdrt_env[@]}" /usr/bin/time -a -o "$out/$tag.time" -f 'wall %e rss_kb %M' \
    "$sdrt" serve --set threads="$threads" --set allow_any_path=true --set log_level=warn --set shutdown_grace_s=7200 \
    --output-root "$out/img" > "$out/$tag.jsonl" 2> "$out/$tag.err" || true
}

run_sdcpp() { # $1: round
  local tag=r$1-sdcpp
  echo "load $(load)" > "$out/$tag.time"
  LD_LIBRARY_PATH=${sdcpp_lib:+$sdcpp_lib:}${LD_LIBRARY_PATH:-} /usr/bin/time -a -o "$out/$tag.time" -f 'wall %e rss_kb %M' \
    "$sdcpp" -m "$model" -p "$prompt" -n "$negative" -W "$size" -H "$size" --steps "$steps" --cfg-scale 7 \
    --sampling-method euler -t "$threads" -s 1 -v $sdcpp_args -o "$out/img/$tag.png" > "$out/$tag.log" 2>&1 || true
}

run_ceiling start
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then run_sdrt "$r"; run_sdcpp "$r"; else run_sdcpp "$r"; run_sdrt "$r"; fi
  python3 "$here/summarize.py" --round "$r" "$out"
done
run_ceiling end
python3 "$here/summarize.py" ${gflop:+--gflop "$gflop"} --label "$label" "$out" | tee "$out/summary.txt"
echo "logs: $out"
