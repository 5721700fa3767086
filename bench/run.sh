#!/usr/bin/env bash
# make bench: generates a large C program, builds it with gcc -g, and measures schema build
# time cold and from the cache. Usage: bench/run.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
work=$build/bench-program
rm -rf "$work" && mkdir -p "$work"
"$build/bin/generate_program" "$work"
echo "bench: compiling the generated program (gcc -g -O0, $(ls "$work"/*.c | wc -l) files)..."
(cd "$work" && gcc -g -O0 -fPIE -pie ./*.c -o large)
dies=$(eu-readelf --debug-dump=info "$work/large" | grep -c '^ *\[ *[0-9a-f]*\]')
echo "bench: $work/large has $dies DIEs ($(du -k "$work/large" | cut -f1) KiB); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$build/bin/schema_bench" "$work/large" 5
