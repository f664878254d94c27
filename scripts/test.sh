#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test:
#   1. Release build + ctest (unit, parity against ../shared/reference,
#      protocol transcripts against build/bin/sdrt, fuzz corpora)
#   2. AddressSanitizer + UndefinedBehaviorSanitizer build + ctest
#   3. libFuzzer targets (clang) for a bounded time each
#   4. Windows cross-compile of the host and SDK (mingw-w64)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)

echo "== release build and tests" >&2
bash scripts/build.sh
(cd build && ctest --output-on-failure -j"$jobs")

echo "== ASan + UBSan build and tests" >&2
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSDRT_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  SDRT_FUZZ_ITERS=500 ctest --output-on-failure -j"$jobs" -LE slow)

echo "== libFuzzer (${SDRT_FUZZ_SECONDS:-20} s per target)" >&2
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSDRT_SANITIZE=ON -DSDRT_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$jobs" --target $(cd build-fuzz && cmake --build . --target help | grep -o 'fuzz-[a-z_]*-lf' | sort -u | tr '\n' ' ')
for f in build-fuzz/fuzz/fuzz-*-lf; do
  name=$(basename "$f" -lf); name=${name#fuzz-}
  corpus=$(mktemp -d)
  cp tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
  echo "   $name" >&2
  "$f" -max_total_time="${SDRT_FUZZ_SECONDS:-20}" -max_len=65536 -timeout=10 -rss_limit_mb=4096 "$corpus" 2>&1 | tail -n 2 >&2
  rm -rf "$corpus"
done

if command -v x86_64-w64-mingw32-gcc >/dev/null; then
  echo "== Windows cross-compile of the host and SDK (mingw-w64)" >&2
  bash scripts/cross-windows.sh
fi
echo "all test stages passed" >&2
