#!/usr/bin/env bash
# Cross-compiles the Windows path with Debian's mingw-w64: every public SDK
# header, the static helpers, the host's shared-object loader (LoadLibraryExW)
# and a plugin DLL exporting sdrt_plugin_entry with __declspec(dllexport).
# The full host is POSIX-only for now (poll, fork, /proc); see docs/architecture.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CC=x86_64-w64-mingw32-gcc
out=build-windows
mkdir -p "$out"
CFLAGS="-std=c11 -D__USE_MINGW_ANSI_STDIO=1 -O2 -Wall -Wextra -Wno-unused-parameter -Werror=implicit-function-declaration -Isdk/include"

# Every public header compiles alone on Windows.
for h in sdk/include/sdrt/*.h; do
  printf '#include "sdrt/%s"\nint sdrt_header_check_%s;\n' "$(basename "$h")" "$(basename "$h" .h)" > "$out/hdr.c"
  $CC $CFLAGS -c "$out/hdr.c" -o "$out/hdr.o"
done
# Static helpers that have no POSIX dependency.
for f in sdk/helpers/rng.c sdk/helpers/npy.c sdk/helpers/nn.c; do
  [ -f "$f" ] && $CC $CFLAGS -c "$f" -o "$out/$(basename "$f" .c).o"
done
# The loader's dynamic-library layer.
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
echo "cross-windows: OK ($(basename "$dll"), sdrt-load-plugin.exe)" >&2
