#!/usr/bin/env bash
# `make install` gives a working tree: the tool runs, molt.pc and find_package(Molt) find the
# header. Usage: install_test.sh BUILD_DIR. Breaks when an installed piece is missing or wrong.
set -euo pipefail
build=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null

grep -q "molt 0.2.0" <<< "$("$prefix/bin/molt" --version)"
test -f "$prefix/include/molt/molt.h"

# pkg-config
cat > "$work/use.c" <<'C'
#include <molt/molt.h>
#if !MOLT_VERSION_AT_LEAST(0, 2)
#error "wrong molt.h"
#endif
int main(void)
{
    molt_update_point("start");
    return molt_is_updating();
}
C
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig"
cc $(pkg-config --cflags molt) "$work/use.c" $(pkg-config --libs molt) -o "$work/use-pc"
"$work/use-pc"   # runs with the installed runtime
"$prefix/bin/molt" run --help > /dev/null
test -x "$prefix/bin/molt-driver"

# find_package(Molt)
mkdir -p "$work/consumer"
cat > "$work/consumer/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(consumer C)
find_package(Molt 0.2 REQUIRED)
add_executable(use ../use.c)
target_link_libraries(use PRIVATE Molt::runtime)
molt_add_version(server SOURCES ../use.c)
if(NOT EXISTS "${MOLT_EXECUTABLE}")
  message(FATAL_ERROR "MOLT_EXECUTABLE does not exist: ${MOLT_EXECUTABLE}")
endif()
CMAKE
cmake -S "$work/consumer" -B "$work/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/consumer/build" >/dev/null
"$work/consumer/build/server"
test -f "$work/consumer/build/server_update.so"
echo "install_test: passed"
