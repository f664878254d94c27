#!/usr/bin/env bash
# tests/sdk/out_of_tree.sh BUILD_DIR SOURCE_DIR
#
# What a plugin author does: install the SDK into a fresh prefix, build
# sdk/examples/hello (and sdk/template) out of tree with find_package(sdrt),
# then check that the real host loads the result and answers its message.
set -euo pipefail

build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
sdrt="$build/bin/sdrt"
work="$build/tmp/sdk-out-of-tree.$$"
failures=0

fail() { echo "not ok: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
cleanup() { [ "$failures" -eq 0 ] && rm -rf "$work"; }
trap cleanup EXIT

[ -x "$sdrt" ] || { echo "missing $sdrt: build the tree first" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"

# Only the SDK's install rules: the rest of the tree need not be installed.
cmake --install "$build/sdk" --prefix "$work/prefix" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log" >&2; echo "cmake --install of the SDK failed" >&2; exit 1; }
[ -f "$work/prefix/include/sdrt/plugin.h" ] || fail "installed SDK lacks include/sdrt/plugin.h"

# configure_and_build NAME SOURCE: an out-of-tree build that sees only the
# installed prefix, never this source tree.
configure_and_build() {
    cmake -S "$2" -B "$work/$1" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release \
        >"$work/$1.configure.log" 2>&1 &&
        cmake --build "$work/$1" >"$work/$1.build.log" 2>&1
}

if configure_and_build hello "$src/sdk/examples/hello"; then
    ok "sdk/examples/hello builds against the installed SDK"
else
    cat "$work"/hello.*.log >&2
    fail "sdk/examples/hello does not build against the installed SDK"
    exit 1
fi
so="$work/hello/sdrt_hello.so"
[ -f "$so" ] && [ -f "$work/hello/sdrt_hello.json" ] || fail "expected $so with sdrt_hello.json beside it"

# The ABI promise: the one exported symbol is sdrt_plugin_entry.
if command -v nm >/dev/null; then
    exports=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | grep -v '^_' | sort | tr '\n' ' ')
    [ "$exports" = "sdrt_plugin_entry " ] && ok "exports only sdrt_plugin_entry" || fail "exports: '$exports'"
fi

cat >"$work/config.json" <<JSON
{"plugin_paths": ["$work/hello"],
 "plugins": {"hello": {"config": {"greeting": "Hello"}}},
 "log_level": "warn"}
JSON

out=$(printf '%s\n' \
    '{"type":"hello.greet","request_id":"g1","data":{"name":"Ada"}}' \
    '{"type":"hello.greet","request_id":"g2","data":{}}' \
    '{"type":"hello.greet","request_id":"g3","data":{"name":7}}' \
    '{"type":"host.plugins","request_id":"p"}' |
    timeout 20 "$sdrt" serve --config "$work/config.json" 2>"$work/serve.err") || fail "sdrt serve exited with $?"

line() { printf '%s\n' "$out" | grep "\"request_id\":\"$1\"" || true; }
# expect ID WHAT SUBSTRING...: the response to ID contains every substring.
expect() {
    local l id=$1 what=$2
    l=$(line "$id")
    shift 2
    for s in "$@"; do
        case $l in *"$s"*) ;; *) fail "$what: no '$s' in '$l'"; return ;; esac
    done
    ok "$what"
}
expect g1 "hello.greet answers the greeting" '"success":true' '"greeting":"Hello, Ada!"'
expect g2 "missing data.name is INVALID_ARGUMENT naming the field" '"error_code":"INVALID_ARGUMENT"' 'data.name: missing'
expect g3 "non-string data.name is INVALID_ARGUMENT" '"error_code":"INVALID_ARGUMENT"' 'data.name: expected a string'
expect p "host.plugins lists hello with its interface" '"id":"org.example.hello"' \
    '"provides":["org.example.hello/1"]' '"refused":[]'

if "$sdrt" validate-plugin "$so" >"$work/validate.out" 2>"$work/validate.err"; then
    ok "validate-plugin: hello conforms"
else
    cat "$work/validate.out" >&2
    fail "validate-plugin refused the hello example"
fi

# The copyable template must build and conform as shipped.
if configure_and_build template "$src/sdk/template" &&
    "$sdrt" validate-plugin "$work/template/sdrt_myplugin.so" >"$work/template.out" 2>&1; then
    ok "sdk/template builds and conforms"
else
    cat "$work"/template.*.log "$work/template.out" >&2 2>/dev/null || true
    fail "sdk/template does not build or conform"
fi

[ "$failures" -eq 0 ] || { echo "$failures failure(s); files kept in $work" >&2; exit 1; }
echo "all passed"
