#!/usr/bin/env bash
# The pause of a code-only update (no changed types) of the multi-threaded fixture: main and five
# workers blocked in accept, read, epoll_wait, nanosleep and pthread_cond_wait. Updates 50 times
# between two builds of the same source and prints the pause (quiesce to commit) as the runtime
# measured it. Target (issue 3): under 1 ms.   Usage: bench/pause_bench.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
flags="-g -O2 -I$here/include -L$build/lib -Wl,-rpath,$build/lib"
gcc $flags -DV=2 "$here/tests/fixtures/runtime/threads.c" -lmolt -o "$work/threads"
gcc $flags -DV=2 -fPIC -shared -Wl,-Bsymbolic "$here/tests/fixtures/runtime/threads.c" -lmolt -o "$work/a.so"
gcc $flags -DV=2 -DREBUILD=1 -fPIC -shared -Wl,-Bsymbolic "$here/tests/fixtures/runtime/threads.c" -lmolt -o "$work/b.so"
export MOLT_CACHE_DIR=$work/cache
"$work/threads" "$work/log" "$work/ready" &
pid=$!
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.05; done
"$build/bin/molt" update "$pid" "$work/a.so" > /dev/null   # warm: schemas cached
for i in $(seq 50); do
  target=$([ $((i % 2)) -eq 0 ] && echo a || echo b)
  "$build/bin/molt" update --json "$pid" "$work/$target.so" | grep -o '"pause_ms": [0-9.e-]*' | cut -d' ' -f2
done | sort -g > "$work/pauses"
count=$(wc -l < "$work/pauses")
median=$(sed -n "$(( (count + 1) / 2 ))p" "$work/pauses")
p90=$(sed -n "$(( count * 9 / 10 ))p" "$work/pauses")
best=$(head -1 "$work/pauses")
printf 'update pause, 6 threads, code-only: median %.3f ms, 90th percentile %.3f ms, best %.3f ms over %d updates (target < 1 ms)\n' \
  "$median" "$p90" "$best" "$count"
