#!/usr/bin/env bash
# bench/gpu/gpu_checks.sh - every check that needs an NVIDIA GPU, in one
# device call (prepare with bench/gpu/prepare_carry.sh on the development
# machine; run with carry [".gpu-carry"] and timeout_s 600):
#   1. unpack the carried Debian packages into a private prefix
#   2. bench/gpu/cuda_checks.sh with the Vulkan family built too: build,
#      cuda-device, conformance (every family, so vulkan:0 on NVIDIA's
#      Vulkan driver as well), CUDA TFLOP/s, tiny SD1.5 pipelines on cuda:0
#   3. the Vulkan family on the GPU: its device test, the tiny SD1.5
#      pipelines on vulkan:0, and bench-vulkan's kernel figures
# Results in $OUT (or bench/gpu/results): summary.txt and one log a step.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RES=${OUT:-$ROOT/bench/gpu/results}
mkdir -p "$RES"
C=$ROOT/.gpu-carry
[ -d "$C/debs" ] || { echo "no .gpu-carry/debs: run bench/gpu/prepare_carry.sh here and carry .gpu-carry" | tee "$RES/summary.txt"; exit 2; }
P=/opt/sdrt-deps
mkdir -p "$P"
for f in "$C"/debs/*.deb; do dpkg -x "$f" "$P"; done
ML=$P/usr/lib/x86_64-linux-gnu
# the -dev packages' .so links are relative to their own prefix: fine in $P
export PATH=$P/usr/bin:$PATH
export LD_LIBRARY_PATH=$ML${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export CMAKE_PREFIX_PATH=$P/usr CMAKE_INCLUDE_PATH=$P/usr/include CMAKE_LIBRARY_PATH=$ML
export PKG_CONFIG_PATH=$ML/pkgconfig
# NVIDIA's Vulkan ICD where the image keeps it (device README)
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$icd" ] && { export VK_DRIVER_FILES=$icd; break; }
done
export SDRT_REFERENCE=$C/reference
export SDRT_GPU_CMAKE_ARGS="-DSDRT_VULKAN=ON -DSDRT_REFERENCE_DIR=$SDRT_REFERENCE"
export SDRT_GPU_PIPELINE_CASES="sd15_euler sd15_dpmpp_2m_karras sd15_ddim"
BUILD=${SDRT_GPU_BUILD_DIR:-$ROOT/build-gpu}
export SDRT_GPU_BUILD_DIR=$BUILD

bash "$ROOT/bench/gpu/cuda_checks.sh"
cuda_rc=$?
SUMMARY="$RES/summary.txt"
say() { echo "$*" | tee -a "$SUMMARY"; }
say "--- Vulkan on this machine (VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset})"
[ -f "$BUILD/lib/sdrt/backends/sdrt_backend_vulkan.so" ] || { say "no Vulkan module built (see build.log)"; exit 1; }
vfail=0
vstep() { # name, log, command...
  local name=$1 log=$2; shift 2
  local t0=$(date +%s)
  if (cd "$BUILD" && "$@") > "$RES/$log" 2>&1; then say "PASS  $name ($(( $(date +%s) - t0 ))s)"
  else say "FAIL  $name ($(( $(date +%s) - t0 ))s)"; vfail=1; fi
}
vstep "vulkan device test + upscale on vulkan:0" vk-device.log timeout 300 ctest -R '^(vulkan|vulkan_tiled|upscale-vulkan)$' -V
grep -m3 -iE "device|vulkan:0 .*(NVIDIA|H100|H200)" "$RES/vk-device.log" >> "$SUMMARY"
# precision f32: the diffusers parity bar (1e-3) is f32's; Vulkan's default is f16 weights
vstep "tiny SD1.5 pipelines on vulkan:0" vk-pipelines.log env SDRT_TEST_DEVICE_CONFIG='{"device":"vulkan:0"}' \
  SDRT_TEST_PRECISION=f32 SDRT_BUILD_DIR="$BUILD" SDRT_SOURCE_DIR="$ROOT" timeout 300 ./tests/test-inference $SDRT_GPU_PIPELINE_CASES
vstep "bench-vulkan kernel figures" vk-bench.log env SDRT_BUILD_DIR="$BUILD" timeout 200 ./bench/bench-vulkan 3
tail -40 "$RES/vk-bench.log" >> "$SUMMARY"
say "done: cuda checks exit $cuda_rc, vulkan $([ $vfail = 0 ] && echo passed || echo FAILURES) -> $RES"
[ $cuda_rc = 0 ] && [ $vfail = 0 ]
