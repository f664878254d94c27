#!/usr/bin/env bash
# Cross-compiles the Windows path with Debian's mingw-w64: every public SDK
# header, the static helpers, every host source (the OS-specific parts sit
# behind host/os.h, os_win32.c here), the scheduler plugin's sources, and a
# plugin DLL exporting sdrt_plugin_entry with __declspec(dllexport) loaded by
# a small loader .exe. Debian has no mingw build of cJSON, so sdrt.exe is
# linked only when CJSON_WIN32_DIR names one (include/cjson/cJSON.h and
# lib/libcjson.a or libcjson.dll.a); otherwise the link is tried anyway and
# must fail on cJSON symbols only. See docs/architecture.md ("Windows").
set -euo pipefail
cd "$(dirname "$0")/.."
CC=x86_64-w64-mingw32-gcc
out=build-windows
mkdir -p "$out"
CFLAGS="-std=c11 -D__USE_MINGW_ANSI_STDIO=1 -O2 -Wall -Wextra -Wno-unused-parameter -Werror=implicit-function-declaration -Isdk/include -Isdk/helpers/include"

# Every public header (the ABI's and the helper library's) compiles alone on
# Windows.
for h in sdk/include/sdrt/*.h sdk/helpers/include/sdrt/*.h; do
  printf '#include "sdrt/%s"\nint sdrt_header_check_%s;\n' "$(basename "$h")" "$(basename "$h" .h)" > "$out/hdr.c"
  $CC $CFLAGS -c "$out/hdr.c" -o "$out/hdr.o"
done
# Static helpers that have no POSIX dependency (weight_store.c: pthreads, winpthreads on Windows).
for f in sdk/helpers/rng.c sdk/helpers/npy.c sdk/helpers/nn.c sdk/helpers/nn_blocks.c sdk/helpers/weight_store.c sdk/helpers/file.c sdk/helpers/resample.c sdk/helpers/canny.c; do
  [ -f "$f" ] && $CC $CFLAGS -c "$f" -o "$out/$(basename "$f" .c).o"
done
# cJSON's header is plain C: the system one serves unless a mingw cJSON is given.
# Only that one header is exposed (a symlink), never the rest of /usr/include.
cjson_dir=${CJSON_WIN32_DIR:-}
mkdir -p "$out/include/cjson"
if [ -n "$cjson_dir" ]; then
  ln -sf "$(cd "$cjson_dir" && pwd)/include/cjson/cJSON.h" "$out/include/cjson/cJSON.h"
else
  ln -sf /usr/include/cjson/cJSON.h "$out/include/cjson/cJSON.h"
fi
[ -f "$out/include/cjson/cJSON.h" ] || { echo "cross-windows: no cJSON header (install libcjson-dev)" >&2; exit 1; }
HOST_CFLAGS="$CFLAGS -I$out/include -Ihost"

# Every host source (os_posix.c compiles to nothing here: it is #ifndef _WIN32)
# but the Redis pool (redis_*.c): it needs hiredis, which has no mingw build
# here, and sdrt.exe is built without it (sdrt worker says so).
mkdir -p "$out/host"
host_srcs=$(ls host/*.c | grep -v '^host/redis_')
for f in $host_srcs; do
  $CC $HOST_CFLAGS -c "$f" -o "$out/host/$(basename "$f" .c).o"
done
n_host=$(echo "$host_srcs" | wc -l)
host_objs=$(ls "$out"/host/*.o | grep -v '/os_posix\.o$')
HOST_LIBS="-lpsapi -lpthread"
if [ -n "$cjson_dir" ]; then
  # shellcheck disable=SC2086
  $CC -o "$out/sdrt.exe" $host_objs -L"$cjson_dir/lib" -lcjson $HOST_LIBS
  link_note="linked sdrt.exe against $cjson_dir"
else
  # The link must fail on cJSON alone: everything else (winpthreads, psapi,
  # kernel32) resolves. That is as far as an honest check goes without cJSON.
  # shellcheck disable=SC2086
  link_log=$($CC -o "$out/sdrt.exe" $host_objs $HOST_LIBS 2>&1 || true)
  other=$(printf '%s\n' "$link_log" | grep -v -e "undefined reference to \`cJSON_" -e "more undefined references to \`cJSON_" \
    -e ": in function \`" -e "collect2: error: ld returned" | grep -v '^$' || true)
  [ -z "$other" ] || { echo "cross-windows: linking sdrt.exe failed beyond the missing cJSON:" >&2; echo "$other" >&2; exit 1; }
  link_note="link skipped: no mingw cJSON (set CJSON_WIN32_DIR); only cJSON symbols were unresolved"
fi
echo "cross-windows: compiled all $n_host host sources; $link_note" >&2

# The scheduler plugin, compile-only (its DLL needs cJSON too). M_PI comes
# from <math.h> with _USE_MATH_DEFINES on Windows, as with _GNU_SOURCE on glibc.
mkdir -p "$out/scheduler"
for f in plugins/scheduler/*.c; do
  $CC $CFLAGS -D_USE_MATH_DEFINES -I"$out/include" -Iplugins/scheduler -c "$f" -o "$out/scheduler/$(basename "$f" .c).o"
done

# The loader's dynamic-library layer (also compiled above with the host).
$CC $CFLAGS -Ihost -c host/dynlib.c -o "$out/dynlib.o"
# A plugin DLL: only sdrt_plugin_entry is exported.
$CC $CFLAGS -shared -o "$out/sdrt_min.dll" tests/windows/minimal_plugin.c
dll=$(ls "$out"/sdrt_*.dll | head -n1)
exports=$(x86_64-w64-mingw32-objdump -p "$dll" | sed -n '/Ordinal\/Name Pointer/,/^$/p' | grep -c sdrt_plugin_entry || true)
[ "$exports" -ge 1 ] || { echo "cross-windows: $dll does not export sdrt_plugin_entry" >&2; exit 1; }
# A loader program that loads that DLL through dynlib (built, not run: no Windows here).
cat > "$out/load.c" <<'C'
#include <stdio.h>
#include "dynlib.h"
#include "sdrt/plugin.h"
int main(int argc, char **argv) {
    char err[512];
    void *lib = dynlib_open(argc > 1 ? argv[1] : "sdrt_min.dll", err, sizeof err);
    if (!lib) { fprintf(stderr, "%s\n", err); return 1; }
    sdrt_plugin_entry_fn entry = (sdrt_plugin_entry_fn)dynlib_sym(lib, SDRT_PLUGIN_ENTRY_SYMBOL);
    const sdrt_plugin_desc *d = entry ? entry() : NULL;
    printf("%s %s\n", d ? d->id : "(none)", d ? d->version : "");
    dynlib_close(lib);
    return d ? 0 : 1;
}
C
$CC $CFLAGS -Ihost "$out/load.c" "$out/dynlib.o" -o "$out/sdrt-load-plugin.exe"
echo "cross-windows: OK (host compiled, scheduler compiled, $(basename "$dll"), sdrt-load-plugin.exe)" >&2
