#!/usr/bin/env bash
# kvd built another way than the project's build does it (gcc -O2), then one of kvd_test.sh's
# cases run on that build: the DWARF that Molt reads differs with the compiler and the
# optimisation (clang's locations and layouts of statics, gcc -O0's unoptimised frames), and a
# real server is where that matters most.
# Usage: kvd_other_build.sh BUILD_DIR SOURCE_DIR COMPILER OPTIMISATION CASE
#   e.g. kvd_other_build.sh build . clang -O2 streak
# The versions are built by hand, as docs/guide.md shows (section 7), against BUILD_DIR's runtime;
# the transformers of v3 and v5 read the old version's types from `molt old-types`, as the
# project's build does. kvd_test.sh then runs on a tree that holds this kvd and BUILD_DIR's molt.
set -euo pipefail
if [ $# -ne 5 ]; then
    echo "usage: $0 BUILD_DIR SOURCE_DIR COMPILER OPTIMISATION CASE" >&2
    exit 2
fi
build=$(realpath "$1")
source=$(realpath "$2")
compiler=$3 optimisation=$4 case_name=$5
command -v "$compiler" > /dev/null || { echo "kvd_other_build: $compiler is not installed" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MOLT_CACHE_DIR=$work/cache
tree=$work/build   # what kvd_test.sh reads: bin/molt and kvd/
mkdir -p "$tree/bin" "$tree/kvd" "$work/generated"
ln -s "$build/bin/molt" "$tree/bin/molt"

kvd_sources=("$source"/examples/kvd/{main,resp,store,commands}.c)
flags=(-g "$optimisation" -Wall -I"$source/include" -I"$source/examples/kvd" -I"$work/generated")
libraries=(-pthread -L"$build/lib" -Wl,-rpath,"$build/lib" -lmolt)
version() {   # version N OUTPUT [EXTRA SOURCES AND FLAGS...]: kvd version N, an executable or (OUTPUT.so) an update
    local number=$1 output=$2
    shift 2
    local shared=()
    [[ $output == *.so ]] && shared=(-fPIC -shared -Wl,-Bsymbolic)
    "$compiler" "${flags[@]}" -DKVD_VERSION="$number" "${shared[@]}" "${kvd_sources[@]}" "$@" "${libraries[@]}" \
        -o "$tree/kvd/$output"
}
old_types() {   # old_types N: kvd_vN_types.h, from the build of version N
    "$build/bin/molt" old-types "$tree/kvd/kvd-v$1.so" -o "$work/generated/kvd_v$1_types.h"
}
version 1 kvd-v1
version 2 kvd-v2.so "$source/examples/kvd/transform_v2.c"
version 2 kvd-v2-faulty.so "$source/examples/kvd/transform_v2.c" -DKVD_FAULTY_TRANSFORMER
old_types 2
version 3 kvd-v3.so "$source/examples/kvd/transform_v3.c"
version 4 kvd-v4.so
old_types 4
version 5 kvd-v5.so "$source/examples/kvd/transform_v5.c"
version 5 kvd-v5-fix.so "$source/examples/kvd/transform_v5.c" -DKVD_CODE_FIX
# v5 without Molt (and so without its transformer), for what check says of it
"$compiler" "${flags[@]}" -DKVD_VERSION=5 -DMOLT_DISABLE "${kvd_sources[@]}" -pthread -o "$tree/kvd/kvd-v5-plain"
echo "kvd_other_build: kvd v1 to v5 built with $("$compiler" --version | head -1) $optimisation"
"$source/tests/e2e/kvd_test.sh" "$tree" "$case_name"
