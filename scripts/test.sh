#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test:
#   1. Release build + ctest (unit, parity against ../shared/reference,
#      protocol transcripts against build/bin/sdrt, fuzz corpora)
#   2. AddressSanitizer + UndefinedBehaviorSanitizer build + ctest, with
#      LeakSanitizer (third-party suppressions only: tests/lsan.supp)
#   3. libFuzzer targets (clang) for a bounded time each (SDRT_FUZZ_SECONDS,
#      default 20), each from its seed corpus and held to a coverage floor
#   4. Windows cross-compile of the host and SDK (mingw-w64)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/setup.sh
jobs=$(nproc)

echo "== release build and tests" >&2
bash scripts/build.sh
(cd build && ctest --output-on-failure -j"$jobs")

# tests/lsan.supp may only name third-party shared objects (its header says
# why); anything else would let an sdrt leak through.
check_lsan_supp() {
  local allowed='^leak:(libvulkan(_[a-z0-9]+)?|libLLVM(-[0-9.]+)?|libcuda|libnvidia-[a-z0-9-]+)[.]so([.][0-9]+)*$'
  local bad
  bad=$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' tests/lsan.supp | grep -Ev "$allowed" || true)
  if [ -n "$bad" ]; then
    printf 'tests/lsan.supp: entries other than leak:<third-party library>.so (see the file):\n%s\n' "$bad" >&2
    return 1
  fi
}

echo "== ASan + UBSan build and tests" >&2
check_lsan_supp
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSDRT_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LSAN_OPTIONS=suppressions="$root/tests/lsan.supp":print_suppressions=1 \
  SDRT_FUZZ_ITERS=500 ctest --output-on-failure -j"$jobs" -LE slow)

# Each libFuzzer target starts from its seeds (tests/fuzz/corpus/<name>,
# copied: the committed corpus never grows) and must end with libFuzzer's
# `cov:` at or above its floor in tests/fuzz/cov_floors.txt. A target
# without seeds or floor fails, so a new parser cannot join blind.
fuzz_target() {
  local name=$1 bin=$2 floors=tests/fuzz/cov_floors.txt log=build-fuzz/fuzz-logs/$1.log
  local floor cov corpus rc=0
  floor=$(awk -v n="$name" '$1 == n { print $2 }' "$floors")
  if [ -z "$(ls -A "tests/fuzz/corpus/$name" 2>/dev/null)" ]; then
    echo "   $name: FAILED: no seeds in tests/fuzz/corpus/$name" >&2; return 1
  fi
  case $floor in
    '' | *[!0-9]*) echo "   $name: FAILED: no numeric coverage floor for it in $floors" >&2; return 1 ;;
  esac
  corpus=$(mktemp -d)
  cp tests/fuzz/corpus/"$name"/* "$corpus"/
  "$bin" -max_total_time="$fuzz_s" -max_len=65536 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    "$corpus" >"$log" 2>&1 || rc=$?
  rm -rf "$corpus"
  if [ "$rc" -ne 0 ]; then
    echo "   $name: FAILED: the fuzzer exited with status $rc (log: $log)" >&2
    tail -n 40 "$log" >&2
    return 1
  fi
  cov=$(sed -n 's/.*DONE *cov: \([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
  if [ -z "$cov" ]; then
    echo "   $name: FAILED: no final cov: figure in $log" >&2; return 1
  fi
  echo "   $name: cov $cov (floor $floor), $(sed -n 's/^stat::number_of_executed_units: *//p' "$log") runs" >&2
  if [ "$cov" -lt "$floor" ]; then
    echo "   $name: FAILED: coverage $cov is below the floor $floor: the fuzzer does not reach the parser" \
      "(library not instrumented? seeds refused early?)" >&2
    return 1
  fi
}

fuzz_s=${SDRT_FUZZ_SECONDS:-20}
echo "== libFuzzer ($fuzz_s s per target)" >&2
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSDRT_SANITIZE=ON -DSDRT_FUZZ=ON >/dev/null
fuzz_targets=$(cd build-fuzz && cmake --build . --target help | grep -o 'fuzz-[a-z0-9_]*-lf' | sort -u | tr '\n' ' ')
cmake --build build-fuzz -j"$jobs" --target $fuzz_targets
mkdir -p build-fuzz/fuzz-logs
# tokenizer and prompt encode with the reference CLIP vocabulary, like ctest
export SDRT_REFERENCE=${SDRT_REFERENCE:-$(sed -n 's/^SDRT_REFERENCE_DIR:[A-Z]*=//p' build-fuzz/CMakeCache.txt)}
fuzz_failed=0
for t in $fuzz_targets; do
  name=${t#fuzz-}; name=${name%-lf}
  fuzz_target "$name" build-fuzz/fuzz/"$t" || fuzz_failed=1
done
[ "$fuzz_failed" -eq 0 ] || { echo "libFuzzer stage failed" >&2; exit 1; }

if command -v x86_64-w64-mingw32-gcc >/dev/null; then
  echo "== Windows cross-compile of the host and SDK (mingw-w64)" >&2
  bash scripts/cross-windows.sh
fi
echo "all test stages passed" >&2
