#!/usr/bin/env bash
# Update pause against heap size (issue 4): a linked list of N nodes, updated (a) to a version
# whose types did not change, (b) to a version whose node type gained a member (every node is
# converted). Prints the pause, and for (b) objects and megabytes converted per second, and the
# memory the update took beyond what the process held before (its peak resident size, reset just
# before the update, less its resident size then) against the bytes of the converted objects.
# Targets on this machine: (a) under 1 ms whatever the heap size, (b) 5 million objects/s, and
# memory during the update at most the converted objects plus the address map.
# Usage: bench/heap_bench.sh BUILD_DIR [SIZES...]
set -euo pipefail
build=$(realpath "$1"); shift
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000 1000000 4000000)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
flags="-g -O2 -I$here/../include -L$build/lib -Wl,-rpath,$build/lib"
gcc $flags "$here/heap_program.c" -lmolt -o "$work/v1"
gcc $flags -fPIC -shared -Wl,-Bsymbolic "$here/heap_program.c" -lmolt -o "$work/same.so"
gcc $flags -DCHANGED -fPIC -shared -Wl,-Bsymbolic "$here/heap_program.c" -lmolt -o "$work/changed.so"
export MOLT_CACHE_DIR=$work/cache

start() {
  rm -f "$work/ready"
  "$work/v1" "$1" "$work/ready" &
  pid=$!
  for _ in $(seq 600); do [ -s "$work/ready" ] && return; sleep 0.05; done
  echo "heap_bench: the program did not start" >&2; exit 1
}
field() { grep -o "\"$1\": [0-9.e+-]*" | head -1 | awk '{print $2}'; }

for n in "${sizes[@]}"; do
  start "$n"
  same=$("$build/bin/molt" update --json --timeout 60 "$pid" "$work/same.so")
  kill $pid; wait $pid 2>/dev/null || true
  start "$n"
  before_kb=$(awk '/VmRSS/ { print $2 }' /proc/$pid/status)
  echo 5 > /proc/$pid/clear_refs   # the peak resident size starts again from now
  changed=$("$build/bin/molt" update --json --timeout 60 "$pid" "$work/changed.so")
  peak_kb=$(awk '/VmHWM/ { print $2 }' /proc/$pid/status)
  kill $pid; wait $pid 2>/dev/null || true
  pid=""
  same_pause=$(echo "$same" | field pause_ms)
  pause=$(echo "$changed" | field pause_ms)
  transform=$(echo "$changed" | field transform_ms)
  objects=$(echo "$changed" | field heap_objects_converted)
  bytes=$(echo "$changed" | field heap_bytes_converted)
  awk -v n="$n" -v same="$same_pause" -v pause="$pause" -v transform="$transform" -v objects="$objects" -v bytes="$bytes" \
      -v extra=$((peak_kb - before_kb)) 'BEGIN {
    printf "heap %8d nodes: (a) no type changed: pause %.3f ms | (b) node changed: pause %.1f ms, %d objects converted in %.1f ms = %.2f M objects/s, %.1f MB/s; memory during the update +%.1f MB for %.1f MB of converted objects\n",
      n, same, pause, objects, transform, objects / transform / 1000, bytes / transform / 1000, extra / 1024, bytes / 1048576 }'
done
