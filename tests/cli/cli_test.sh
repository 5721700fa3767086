#!/usr/bin/env bash
# Command-line behaviour of `molt`: exit codes, error lines, --help, each subcommand on real
# fixture builds. Usage: cli_test.sh MOLT_BINARY SOURCE_DIR
# Breaks when an exit code, an error format or a documented option stops doing what --help says.
set -u
molt=$(realpath "$1")
fixtures=$(realpath "$2")/tests/fixtures
include=$(realpath "$2")/include
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MOLT_CACHE_DIR=$work/cache
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect STATUS COMMAND...: runs COMMAND, keeps stdout/stderr in $out/$err, checks the status.
expect() {
  local want=$1; shift
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  out=$(cat "$work/out"); err=$(cat "$work/err")
  [ "$got" -eq "$want" ] || fail "exit $got (wanted $want): $* | stderr: $err"
}
contains() { case "$1" in *"$2"*) ;; *) fail "missing '$2' in: $(echo "$1" | head -5)";; esac; }

cd "$work"
gcc -g -O0 -DCASE_scalar_to_pointer -DV=1 "$fixtures/diff/cases.c" -o v1
gcc -g -O0 -DCASE_scalar_to_pointer -DV=2 "$fixtures/diff/cases.c" -o v2
gcc -g -O0 -DCASE_member_added -DV=1 "$fixtures/diff/cases.c" -o a1
clang -g -O2 -DCASE_member_added -DV=2 "$fixtures/diff/cases.c" -o a2
gcc -O0 "$fixtures/diff/cases.c" -DCASE_identical -o nodebug
gcc -g -O2 "$fixtures/schema/types.c" -o types

# --help tells every command and the exit codes; each subcommand has its own help.
expect 0 "$molt" --help
for word in schema diff check old-types "Exit codes"; do contains "$out" "$word"; done
for command in schema diff check old-types; do
  expect 0 "$molt" "$command" --help
  contains "$out" "--no-cache"
done
expect 0 "$molt" --version
contains "$out" "molt 0.2.0"

# Usage errors: exit 2 and a line that says what is wrong.
expect 2 "$molt"
contains "$err" "molt: error:"
expect 2 "$molt" frobnicate
contains "$err" "molt: error: unknown command 'frobnicate'"
expect 2 "$molt" diff v1
contains "$err" "molt: error:"
expect 2 "$molt" schema v1 --bogus
contains "$err" "molt: error:"
# update --json: an error before the process answers is JSON too, on stdout
expect 2 "$molt" update --json 1 does-not-exist.so
contains "$out" '"ok": false'
contains "$out" '"error": "does-not-exist.so: No such file or directory"'
[ -z "$err" ] || fail "update --json wrote to stderr: $err"
# old-types never writes over the file it reads
cp types types-copy
expect 2 "$molt" old-types types-copy -o types-copy
contains "$err" "is FILE itself"
cmp -s types types-copy || fail "old-types -o FILE overwrote FILE"
# old-types refuses a version with C++ units (its header would not compile); schema warns of them
gcc -g -O0 "$fixtures/schema/state_main.c" "$fixtures/schema/state_other.c" "$fixtures/schema/engine.cpp" -o mixed
expect 2 "$molt" old-types mixed
contains "$err" "molt: error: mixed: old-types writes C, and engine.cpp (C++) is in another language"
[ -z "$out" ] || fail "old-types wrote a header for a C++ unit"
for command in schema "check mixed" "diff mixed"; do  # check and diff tell it before their verdict
  expect 0 "$molt" $command mixed
  contains "$err" "molt: warning: mixed: 1 compile unit is not C (engine.cpp (C++))"
done
# --timeout: a number of seconds in range (a NaN compares false both ways: it once got through)
for timeout in nan abc inf 0 -1 3601; do
  expect 2 "$molt" update 1 v1 --timeout "$timeout"
  contains "$err" "is not a number of seconds from 0.001 to 3600"
done
# schema --stable is for the text: JSON numbers its types differently in each build
expect 2 "$molt" schema --stable --json types
contains "$err" "excludes --stable"
# A PID is digits only (strtol alone took " 1" and "+1")
for pid in " 1" "+1" "1x" "" "0" "99999999999"; do
  for command in status cancel; do
    expect 2 "$molt" "$command" "$pid"
    contains "$err" "PID must be a process id"
  done
done
# cancel: a process that does not exist is an error, nothing to cancel
expect 2 "$molt" cancel 999999999
contains "$err" "molt: error:"

# Bad input: exit 2, one line `molt: error: FILE: reason`.
expect 2 "$molt" schema does-not-exist
[ "$err" = "molt: error: does-not-exist: No such file or directory" ] || fail "missing-file message: $err"
expect 2 "$molt" schema nodebug
[ "$err" = "molt: error: nodebug: no DWARF in the file: build with -g" ] || fail "no-DWARF message: $err"
printf 'not elf' > text.bin
expect 2 "$molt" diff text.bin v1
[ "$err" = "molt: error: text.bin: not an ELF file" ] || fail "not-ELF message: $err"
expect 2 "$molt" check v1 nodebug
contains "$err" "nodebug: no DWARF"

# schema: stable output has no addresses and is the same from the cache as from DWARF.
expect 0 "$molt" schema --stable --no-cache v1
stable=$out
case "$stable" in *address=*) fail "--stable printed addresses";; esac
contains "$stable" "variable head: struct entry * size=8"
expect 0 "$molt" schema --stable v1
expect 0 "$molt" schema --stable v1
[ "$out" = "$stable" ] || fail "cached schema differs from the DWARF one"
ls "$MOLT_CACHE_DIR"/*.schema >/dev/null 2>&1 || fail "no cache entry written"
expect 0 "$molt" schema v1
contains "$out" "address=0x"
expect 0 "$molt" schema --json v1
contains "$out" '"variables"'
contains "$out" '"build_id"'

# diff: grouped report and verdict; JSON.
expect 0 "$molt" diff a1 a2
contains "$out" "variables:"
contains "$out" "+ member hits: unsigned long, offset 16: convertible (new member: zeroed)"
contains "$out" "verdict: convertible"
expect 0 "$molt" diff --json v1 v2
contains "$out" '"verdict": "needs a transformer"'

# check: exit 0 when default rules suffice, 1 with an actionable line otherwise.
expect 0 "$molt" check a1 a2
contains "$out" "ok: a1 -> a2"
expect 1 "$molt" check v1 v2
contains "$out" "struct entry.value: int -> char *: needs a transformer (a scalar became a pointer)"
contains "$out" "1 change needs a transformer"
# another program altogether: every variable removed is "convertible", but check says what it looks like
gcc -g -O0 -DCASE_identical -DV=1 "$fixtures/diff/cases.c" -o other1
gcc -g -O0 -DCASE_flexible_elements_changed -DV=1 "$fixtures/diff/cases.c" -o other2
expect 0 "$molt" check other1 other2
contains "$out" "warning: the new version keeps none of the old one's 2 variables: is it a version of the same program?"
expect 0 "$molt" check a1 a2
case "$out" in *"same program"*) fail "check took a version for another program: $out";; esac

# old-types: to stdout or a file, prefix checked, header compiles.
expect 0 "$molt" old-types types -o types_old.h
[ -z "$out" ] || fail "old-types -o also wrote to stdout"
printf '#include "types_old.h"\nint main(void) { return 0; }\n' > use.c
gcc -std=c11 -c use.c -o /dev/null || fail "old-types header does not compile"
# a mistaken declaration in the new version: diff's verdict is not "convertible", and it says why
gcc -g -O0 -I"$include" -DV=1 "$fixtures/diff/declarations.c" -o d1
gcc -g -O0 -I"$include" -DV=2 -DMISTAKE=1 "$fixtures/diff/declarations.c" -o d2
expect 0 "$molt" diff d1 d2
contains "$out" "verdict: needs a transformer"
contains "$out" "  annotation: MOLT_TYPE_TRANSFORMER(struct itme): the new version has no type struct itme"
expect 0 "$molt" diff --json d1 d2
contains "$out" '"annotation_problems": ['
# a type copied as bytes whose members moved: diff warns as check does, and its JSON does not call
# the members converted by name
gcc -g -O0 -I"$include" -DCASE_opaque -DV=1 "$fixtures/diff/cases.c" -o opaque1
gcc -g -O0 -I"$include" -DCASE_opaque -DV=2 "$fixtures/diff/cases.c" -o opaque2
expect 0 "$molt" diff opaque1 opaque2
contains "$out" '~ struct state: copied as bytes (MOLT_OPAQUE)'
contains "$out" '~ state: struct state: convertible (copied as bytes: MOLT_OPAQUE)'
contains "$out" 'warning: MOLT_OPAQUE("struct state") copies each object'"'"'s bytes as they lie, but members kept their names and moved'
expect 0 "$molt" diff --json opaque1 opaque2
contains "$out" '"reason": "copied as bytes (MOLT_OPAQUE)"'
contains "$out" '"warnings": ['
case "$out" in *'"moved: copied to its new offset"'*) fail "diff --json converts an opaque type's members by name";; esac
# a new version whose transformer reads old objects through the header: diff does not list the
# header's types as new types of the new version
expect 0 "$molt" old-types a1 -o a1_old.h
printf '#include "a1_old.h"\nstruct molt_old_entry *last_seen;\n' > reader.c
gcc -g -O0 -DCASE_member_added -DV=2 "$fixtures/diff/cases.c" reader.c -o a2_reader
expect 0 "$molt" diff a1 a2_reader
case "$out" in *"+ struct molt_old_"*) fail "diff lists the old-types header's types: $out";; esac
contains "$out" "+ member hits: unsigned long, offset 16"
expect 0 "$molt" old-types --prefix v1_ types
contains "$out" "struct v1_everything {"
expect 2 "$molt" old-types --prefix '1bad' types
contains "$err" "--prefix must start a C identifier"
expect 2 "$molt" old-types types -o /proc/cannot/write.h
contains "$err" "molt: error: /proc/cannot/write.h: cannot write"

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "cli_test: all passed"
