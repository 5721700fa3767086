#!/usr/bin/env bash
# Runs the libFuzzer build of the reader (make fuzz) on a corpus of fixture binaries.
#   run-libfuzzer.sh BUILD_DIR SECONDS
set -euo pipefail
build=$1 seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
corpus=$build/fuzz-corpus
mkdir -p "$corpus"
for cc in gcc clang; do
  for dwarf in -gdwarf-4 -gdwarf-5; do
    $cc -g $dwarf -O1 "$here/../fixtures/schema/types.c" -o "$corpus/types-$cc$dwarf"
    $cc -g $dwarf -O2 "$here/../fixtures/schema/state_main.c" "$here/../fixtures/schema/state_other.c" -o "$corpus/state-$cc$dwarf"
  done
done
"$build/bin/fuzz_schema_reader" -max_total_time="$seconds" -max_len=200000 -timeout=10 "$corpus"
