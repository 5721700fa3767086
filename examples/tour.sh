#!/usr/bin/env bash
# make tour: builds three versions of a small C program (examples/tally) and shows what Molt
# learns from their DWARF: the schema, what an update changes (molt diff), whether it can be
# done by default rules (molt check), and the old types for a transformer (molt old-types).
# Then updates a running server (examples/greeter) live, with a client connected across it.
# Usage: examples/tour.sh PATH/TO/molt PATH/TO/libmolt-directory
set -euo pipefail
molt=$(realpath "$1")
libdir=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MOLT_CACHE_DIR=$work/cache
cd "$work"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "Three versions of tally, a word counter: v1 and v3 with gcc, v2 with clang, as a shared object"
show gcc   -g -O2 -fPIE -pie "$here/tally/v1.c" -o tally-v1
show clang -g -O2 -fPIC -shared -Wl,-Bsymbolic "$here/tally/v2.c" -o tally-v2.so
show gcc   -g -O2 -fPIE -pie "$here/tally/v3.c" -o tally-v3
printf 'add apple\nadd pear\nadd apple\nget apple\nstats\n' | ./tally-v1
printf 'add fig\ndrop fig\nstats\n' | ./tally-v3

step "What Molt reads from v1's DWARF (state-holding variables, functions, types)"
echo "\$ $molt schema --stable tally-v1   (variables, functions, and two of its types)"
"$molt" schema --stable tally-v1 | awk '/^type /{keep = /^type (struct entry|enum mode) /} /^(variable|function)/{keep = 1} keep'

step "What an update from v1 to v2 changes"
show "$molt" diff tally-v1 tally-v2.so

step "Can v1 -> v2 be done without a transformer?"
show "$molt" check tally-v1 tally-v2.so && echo "(exit status 0)"

step "And v2 -> v3?"
set +e
"$molt" check tally-v2.so tally-v3; status=$?
set -e
echo "(exit status $status: a programmer writes a transformer for these, reading old objects through...)"

step "...v2's types as C, renamed so that they sit beside v3's own (molt old-types)"
show "$molt" old-types tally-v2.so -o tally_v2_types.h
sed -n '/^struct molt_old_entry {/,/^};/p' tally_v2_types.h
grep 'molt_old_entry' tally_v2_types.h | grep _Static_assert
printf '#include "tally_v2_types.h"\nint main(void) { return 0; }\n' > check_header.c
show gcc -std=c11 -Wall -c check_header.c -o /dev/null && echo "(the header compiles; its layout checks hold)"

step "Live: greeter v1 runs; a client connects and stays connected"
runtime="-I$here/../include -L$libdir -Wl,-rpath,$libdir"
show gcc -g -O2 -DVERSION=1 $runtime "$here/greeter/greeter.c" -lmolt -o greeter
show gcc -g -O2 -DVERSION=2 -fPIC -shared -Wl,-Bsymbolic $runtime "$here/greeter/greeter.c" -lmolt -o greeter2.so
./greeter port &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s port ] && break; sleep 0.05; done
exec 3<>/dev/tcp/127.0.0.1/"$(cat port)"
for word in one two three; do echo "$word" >&3; read -r reply <&3; echo "client <- $reply"; done
"$molt" check greeter greeter2.so

step "Update the running server to v2, live"
show "$molt" update "$server" greeter2.so

step "The same connection, now served by v2 (the visitor count carried over)"
for word in four five; do echo "$word" >&3; read -r reply <&3; echo "client <- $reply"; done
exec 3>&-
show "$molt" status "$server"

step "Done. Schema build times, update-point cost and pause: make bench"
