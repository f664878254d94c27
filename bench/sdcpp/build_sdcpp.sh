#!/usr/bin/env bash
# bench/sdcpp/build_sdcpp.sh - builds stable-diffusion.cpp's CPU CLI beside
# the project (never into it) for bench/sdcpp/compare.sh: its fastest CPU
# build (GGML_LLAMAFILE=ON, -march=native), ggml as shared libraries, and a
# second ggml CPU library limited to AVX2 for the AVX2 rows.
#
#   bench/sdcpp/build_sdcpp.sh SRC BUILD [AVX2_BUILD]
#
#   SRC         a stable-diffusion.cpp checkout with its ggml submodule
#   BUILD       gets bin/sd-cli and bin/libggml*.so (native ISA: AVX-512 here)
#   AVX2_BUILD  gets bin/libggml-cpu.so (and libggml*.so) compiled with
#               GGML_NATIVE=OFF and only SSE4.2/AVX/AVX2/FMA/F16C/BMI2 on
#               (GGML_AVX512*, GGML_AVX_VNNI, GGML_AMX* off); run the same
#               sd-cli with LD_LIBRARY_PATH=AVX2_BUILD/bin (compare.sh
#               --sdcpp-lib) to use it. The same top-level configure is used
#               so GGML_MAX_NAME (sd.cpp sets 160) and every other option
#               match the CLI's build.
set -euo pipefail
src=${1:?SRC} build=${2:?BUILD} avx2=${3:-}
common=(-DCMAKE_BUILD_TYPE=Release -DGGML_LLAMAFILE=ON -DSD_WEBP=OFF -DSD_WEBM=OFF
        -DSD_BUILD_SHARED_GGML_LIB=ON -DBUILD_SHARED_LIBS=ON)
cmake -S "$src" -B "$build" "${common[@]}" -DGGML_NATIVE=ON
nice cmake --build "$build" -j2 --target sd-cli
if [ -n "$avx2" ]; then
  cmake -S "$src" -B "$avx2" "${common[@]}" -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON \
    -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF \
    -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
  nice cmake --build "$avx2" -j2 --target ggml-cpu ggml
fi
readelf -d "$build/bin/sd-cli" | grep -E 'RPATH|RUNPATH' || true
