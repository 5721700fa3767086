#!/usr/bin/env bash
# make bench: every benchmark, each printing its figures. Usage: bench/run.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "bench: machine: $machine"

# Schema build time on a generated large program.
work=$build/bench-program
rm -rf "$work" && mkdir -p "$work"
"$build/bin/generate_program" "$work"
echo "bench: compiling the generated program (gcc -g -O0, $(ls "$work"/*.c | wc -l) files)..."
(cd "$work" && gcc -g -O0 -fPIE -pie ./*.c -o large)
dies=$(eu-readelf --debug-dump=info "$work/large" | grep -c '^ *\[ *[0-9a-f]*\]')
echo "bench: $work/large has $dies DIEs ($(du -k "$work/large" | cut -f1) KiB)"
"$build/bin/schema_bench" "$work/large" 5

# Heap conversion: pause against heap size.
"$here/heap_bench.sh" "$build" 10000 100000 1000000 4000000

# The runtime: heap tracking against glibc, cost of an update point, pause of an update.
# One after the other: run together they would share the two cores.
"$build/bin/malloc_bench_glibc" > "$build/malloc-glibc.txt"
"$build/bin/malloc_bench_molt" > "$build/malloc-molt.txt"
paste "$build/malloc-glibc.txt" "$build/malloc-molt.txt" |
  awk '{ printf "malloc/free %s %s: glibc %s ns, molt %s ns, difference %+.2f ns (target within 10 ns)\n", $2, $3, $4, $9, $9 - $4 }'
"$build/bin/update_point_bench"
"$here/pause_bench.sh" "$build"

# kvd under Molt with redis-benchmark: overhead, pause against keys, latency, 100 updates.
"$here/kvd_bench.sh" "$build" 10000 100000 1000000
