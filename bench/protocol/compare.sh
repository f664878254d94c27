#!/bin/sh
# bench/protocol/compare.sh - sdrt serve against the trivial C responder
# (bench/protocol/trivial-responder.c), measured alternately in the same run
# on the same machine, with bench-protocol driving both the same way.
# usage: bench/protocol/compare.sh BUILD_DIR [ROUNDS] [OLD_SDRT]
#   BUILD_DIR: a Release build with the bench-protocol and trivial-responder
#   targets and bin/sdrt; OLD_SDRT: another sdrt binary to run alongside.
# sdrt runs with no plugins (plugin_paths=[]), or with the plugins in the
# folder $SDRT_BENCH_PLUGINS when set; its crash containment is on
# (it always is in serve mode). "responder" answers each line with one write
# as it reads it; "batched" (--batch) answers a whole read with one write, the
# ceiling. Prints each run, then per binary the median pipelined msg/s and
# median round trip, and sdrt's ratios to the responder.
set -eu
build=${1:?usage: compare.sh BUILD_DIR [ROUNDS] [OLD_SDRT]}
rounds=${2:-5}
old=${3:-}
bench="$build/bench/bench-protocol"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { # name binary args...
  name=$1; shift
  "$bench" "$@" > "$tmp/out"
  tput=$(sed -n 's/.*= \([0-9]*\) msg\/s/\1/p' "$tmp/out")
  rt=$(sed -n 's/health_roundtrip_us median \([0-9.]*\) .*/\1/p' "$tmp/out")
  echo "$name $tput $rt" >> "$tmp/all"
  echo "$name: $tput msg/s, round trip median $rt us"
}
plugins="[\"${SDRT_BENCH_PLUGINS:-}\"]"
[ -n "${SDRT_BENCH_PLUGINS:-}" ] || plugins='[]'
i=0
while [ "$i" -lt "$rounds" ]; do
  run responder "$build/bench/trivial-responder"
  run batched "$build/bench/trivial-responder" --batch
  run sdrt "$build/bin/sdrt" --set "plugin_paths=$plugins" --set log_level=warn
  if [ -n "$old" ]; then run old "$old" --set "plugin_paths=$plugins" --set log_level=warn; fi
  i=$((i + 1))
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "--- medians of $rounds runs"
for name in responder batched sdrt old; do
  grep -q "^$name " "$tmp/all" || continue
  t=$(grep "^$name " "$tmp/all" | awk '{print $2}' | median)
  r=$(grep "^$name " "$tmp/all" | awk '{print $3}' | median)
  echo "$name: $t msg/s, round trip $r us"
  eval "${name}_t=$t; ${name}_r=$r"
done
awk -v st="$sdrt_t" -v rt="$responder_t" -v sr="$sdrt_r" -v rr="$responder_r" \
  'BEGIN {printf "sdrt / responder: throughput %.2fx, round trip %.2fx\n", st / rt, sr / rr}'
