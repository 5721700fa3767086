#!/usr/bin/env bash
# guide_test.sh BUILD_DIR SOURCE_DIR: runs docs/guide.md, so that the guide cannot rot.
#
# The guide's fenced blocks follow one convention (the guide states it at the top):
#   ```sh        a bash command a reader runs. Every such block is run, in the guide's order, as
#                one script under `set -Eeuo pipefail` (a command that fails fails the test), in a
#                temporary directory. No `$ ` prompts: commands are written as they are typed.
#   ```sh build  commands that build versions by hand (they compile kvd, a second or two): run in
#                their place among the sh blocks, after which the test checks that they made
#                kvd-v1 and kvd-v2.so and that `molt check` passes them; with GUIDE_TEST_BUILD=0,
#                only syntax-checked with `bash -n`.
#   ```c         an excerpt of examples/kvd: every line of it (leading and trailing blanks ignored;
#                empty lines and `...` elisions skipped) must be a line of examples/kvd/*.[ch].
#   anything else (```text output, ```c sketch, ```cmake) is prose, not checked.
#
# What the test relies on in the guide:
#   - the first sh block assigns SRC= (the Molt clone) and BUILD= (its build tree) on lines of their
#     own; the test replaces those two lines with SOURCE_DIR and BUILD_DIR (everything else, such as
#     MOLT=$BUILD/bin/molt and KVD=$BUILD/kvd, is derived from them by the guide);
#   - the blocks leave the updated server's pid in PID and its port in PORT (and, when the guide
#     starts the second server of its rollback section, PID2 and PORT2);
#   - the last sh block stops the servers (it contains `kill`).
# Before that last block the test checks the outcome of the guide's updates: the server answers
# INFO with kvd_version:5, its Molt history shows the committed update to kvd-v5.so and the
# refused one back to kvd-v2.so, `molt status` says it runs kvd-v5.so, and the data survived; the
# second server still runs v1 with its 2000 keys after the rolled-back kvd-v2-faulty.so. After
# the last block, every server the guide started must have exited.
#
# TMPDIR (the guide's `cd "$(mktemp -d)"`) and MOLT_CACHE_DIR point into the test's temporary
# directory, removed at the end; whatever the guide started is killed at the end, pass or fail
# (the guide runs in a process group of its own). GUIDE_TEST_TIMEOUT (seconds, default 300)
# bounds the whole run; GUIDE_TEST_PRINT=1 prints the script made of the blocks instead of running it.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SOURCE_DIR" >&2
    exit 2
fi
build_dir=$(cd "$1" && pwd)
source_dir=$(cd "$2" && pwd)
guide=$source_dir/docs/guide.md

fail() {
    echo "guide_test: FAIL: $*" >&2
    exit 1
}

[ -f "$guide" ] || fail "$guide: no such file"
[ -x "$build_dir/bin/molt" ] || fail "$build_dir/bin/molt: not built"
for version in 1 2 3 4 5; do
    [ -x "$build_dir/kvd/kvd-v$version" ] || fail "$build_dir/kvd/kvd-v$version: not built"
done
command -v redis-cli >/dev/null || fail "redis-cli is not installed (Debian: redis-tools)"
command -v setsid >/dev/null || fail "setsid is not installed (util-linux)"

work=$(mktemp -d "${TMPDIR:-/tmp}/molt-guide-test.XXXXXX")
runner=
cleanup() {
    if [ -n "$runner" ]; then
        kill -TERM -- "-$runner" 2>/dev/null || true   # the guide's process group: its servers too
        sleep 0.2
        kill -KILL -- "-$runner" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the blocks: $work/blocks/NNN.KIND, and an index "NNN KIND LINE" -------------------------
mkdir -p "$work/blocks" "$work/tmp" "$work/cache"
awk -v dir="$work/blocks" '
    !inside && /^```/ {
        info = substr($0, 4)
        gsub(/^[ \t]+|[ \t]+$/, "", info)
        kind = info == "sh" ? "sh" : info == "sh build" ? "build" : info == "c" ? "c" : "other"
        n++
        file = sprintf("%s/%03d.%s", dir, n, kind)
        printf "%03d %s %d\n", n, kind, NR + 1 > (dir "/index")
        printf "" > file
        inside = 1
        next
    }
    inside && /^```[ \t]*$/ { inside = 0; close(file); next }
    inside { print > file }
    END {
        if (inside) { print "guide_test: unterminated code block" > "/dev/stderr"; exit 1 }
    }
' "$guide"
[ -s "$work/blocks/index" ] || fail "no code blocks in $guide"

sh_blocks=()
while read -r number kind line; do
    [ "$kind" = sh ] && sh_blocks+=("$number:$line")
done <"$work/blocks/index"
[ ${#sh_blocks[@]} -ge 2 ] || fail "fewer than two sh blocks in $guide"

# ---- excerpts: every line of a c block is a line of examples/kvd ----------------------------
sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$source_dir"/examples/kvd/*.c "$source_dir"/examples/kvd/*.h \
    >"$work/kvd-lines"
excerpt_errors=0
while read -r number kind line; do
    [ "$kind" = c ] || continue
    offset=0
    while IFS= read -r text || [ -n "$text" ]; do
        offset=$((offset + 1))
        trimmed=$(sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' <<<"$text")
        [ -z "$trimmed" ] || [ "$trimmed" = "..." ] && continue
        if ! grep -qFx -- "$trimmed" "$work/kvd-lines"; then
            echo "guide_test: guide.md line $((line + offset - 1)): not a line of examples/kvd: $trimmed" >&2
            excerpt_errors=$((excerpt_errors + 1))
        fi
    done <"$work/blocks/$number.c"
done <"$work/blocks/index"
[ "$excerpt_errors" -eq 0 ] || fail "$excerpt_errors excerpt line(s) of the guide no longer match examples/kvd"

# ---- sh blocks: no prompts; build blocks: valid bash ------------------------------------------
while read -r number kind line; do
    case $kind in
    sh)
        if grep -n '^\$ ' "$work/blocks/$number.sh" >&2; then
            fail "the sh block at guide.md line $line has \`\$ \` prompts (write commands as typed)"
        fi ;;
    build)
        bash -n "$work/blocks/$number.build" || fail "the sh build block at guide.md line $line is not valid bash" ;;
    esac
done <"$work/blocks/index"
last_sh=${sh_blocks[-1]%%:*}
grep -q '\<kill\>' "$work/blocks/$last_sh.sh" || fail "the guide's last sh block must stop the servers (kill)"

# ---- the script: preamble, the blocks in order, the checks before the last one ----------------
script=$work/guide.sh
{
    cat <<'PREAMBLE'
set -Eeuo pipefail
trap 'echo "guide_test: FAIL: exit $? in the block at guide.md line $guide_line: $BASH_COMMAND" >&2' ERR
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

guide_fail() {
    echo "guide_test: FAIL: $*" >&2
    exit 1
}

guide_info() { redis-cli -p "$1" INFO | tr -d '\r'; }

guide_checks() {
    guide_line=checks
    [ -n "${PID:-}" ] && [ -n "${PORT:-}" ] || guide_fail "the guide's blocks must set PID and PORT"
    local info status
    info=$(guide_info "$PORT")
    grep -qx 'kvd_version:5' <<<"$info" || guide_fail "INFO should report kvd_version:5 after the guide's updates; it says:
$info"
    grep -q '^molt_update_[0-9]*:committed kvd-v5\.so ' <<<"$info" ||
        guide_fail "INFO's Molt history has no committed update to kvd-v5.so:
$info"
    grep -q '^molt_update_[0-9]*:rolled-back kvd-v2\.so phase=prepare ' <<<"$info" ||
        guide_fail "INFO's Molt history has no refused update back to kvd-v2.so:
$info"
    status=$("$MOLT" status "$PID")
    grep -q "^process $PID runs .*/kvd-v5\.so " <<<"$status" || guide_fail "molt status should show kvd-v5.so:
$status"
    [ "$(redis-cli -p "$PORT" GET greeting)" = hello ] || guide_fail "the key greeting did not survive the updates"
    [ "$(redis-cli -p "$PORT" GET key:1999)" = 1999 ] || guide_fail "the key key:1999 did not survive the updates"
    if [ -n "${PORT2:-}" ]; then
        info=$(guide_info "$PORT2")
        grep -qx 'kvd_version:1' <<<"$info" || guide_fail "the second server should still run v1:
$info"
        grep -q '^molt_update_1:rolled-back kvd-v2-faulty\.so ' <<<"$info" ||
            guide_fail "the second server's history has no rolled-back kvd-v2-faulty.so:
$info"
        [ "$(redis-cli -p "$PORT2" DBSIZE)" = 2000 ] || guide_fail "the second server lost keys in the rollback"
    fi
    echo "guide_test: checks passed: kvd_version:5 after the guide's updates, history and data as expected" >&2
}

# After the last block: every server the guide started has exited (reaped here).
guide_stopped() {
    guide_line=stopped
    local pid state tries
    for pid in "${PID:-}" "${PID2:-}"; do
        [ -n "$pid" ] || continue
        for tries in $(seq 100); do
            state=gone
            [ -r "/proc/$pid/stat" ] && read -r _ _ state _ <"/proc/$pid/stat" 2>/dev/null
            [ "$state" = gone ] || [ "$state" = Z ] && break
            sleep 0.05
        done
        [ "$state" = gone ] || [ "$state" = Z ] || guide_fail "process $pid still runs after the guide's last block"
        wait "$pid" 2>/dev/null || true
    done
}
PREAMBLE
    first=1
    while read -r number kind line; do
        case $kind in
        sh) ;;
        build) [ "${GUIDE_TEST_BUILD:-1}" = 1 ] || continue ;;
        *) continue ;;
        esac
        printf '\n# ---- guide.md line %s (%s)\n' "$line" "$kind"
        printf 'guide_line=%s\n' "$line"
        printf 'echo "guide_test: guide.md line %s" >&2\n' "$line"
        if [ "$number" = "$last_sh" ]; then
            echo guide_checks
        fi
        if [ "$kind" = sh ] && [ "$first" = 1 ]; then
            first=0
            if ! grep -q '^SRC=' "$work/blocks/$number.sh" || ! grep -q '^BUILD=' "$work/blocks/$number.sh"; then
                fail "the guide's first sh block must assign SRC= and BUILD= on lines of their own"
            fi
            awk -v src="$source_dir" -v build="$build_dir" '
                /^SRC=/ { print "SRC='\''" src "'\''"; next }
                /^BUILD=/ { print "BUILD='\''" build "'\''"; next }
                { print }
            ' "$work/blocks/$number.sh"
        else
            cat "$work/blocks/$number.$kind"
        fi
        if [ "$kind" = build ]; then   # what it built is a pair of versions Molt accepts
            echo 'for built in kvd-v1 kvd-v2.so; do [ -f "$built" ] || guide_fail "the build block made no $built"; done'
            echo '"$MOLT" check kvd-v1 kvd-v2.so > /dev/null || guide_fail "molt check refuses the hand-built kvd-v1 -> kvd-v2.so"'
        fi
        if [ "$number" = "$last_sh" ]; then
            echo guide_stopped
        fi
    done <"$work/blocks/index"
    printf '\necho "guide_test: every block of the guide ran" >&2\n'
} >"$script"

# ---- run it (GUIDE_TEST_PRINT=1: only print the script) -----------------------------------------
if [ "${GUIDE_TEST_PRINT:-0}" = 1 ]; then
    cat "$script"
    exit 0
fi
echo "guide_test: running ${#sh_blocks[@]} sh blocks of $guide in $work" >&2
cd "$work"
TMPDIR=$work/tmp MOLT_CACHE_DIR=$work/cache \
    setsid timeout "${GUIDE_TEST_TIMEOUT:-300}" bash "$script" </dev/null &
runner=$!
if wait "$runner"; then
    echo "guide_test: PASS" >&2
else
    status=$?
    [ "$status" -ne 124 ] || echo "guide_test: the guide did not finish within ${GUIDE_TEST_TIMEOUT:-300} s" >&2
    fail "the guide's commands failed (exit $status)"
fi
