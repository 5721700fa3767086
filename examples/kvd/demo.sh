#!/usr/bin/env bash
# make demo: kvd, a Redis-protocol key-value server, goes from v1 to v5 live while clients use
# it. 100,000 keys are loaded, a redis-cli connection is opened and kept open, redis-benchmark
# runs in the background; then v2, v3, v4 and v5 are applied one after the other. At the end:
# every key holds the value it had (checksum before and after), the connection opened under v1
# is served by v5, and redis-benchmark saw no error.
# Usage: examples/kvd/demo.sh BUILD_DIR [KEYS]
set -euo pipefail
build=$(realpath "$1")
keys=${2:-100000}
molt=$build/bin/molt
kvd=$build/kvd
work=$(mktemp -d)
export MOLT_CACHE_DIR=$work/cache
server="" benchmark="" cli_pid=""
cleanup() {
    for pid in $benchmark $cli_pid $server; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { printf '\033[31mDEMO FAILED: %s\033[0m\n' "$*"; exit 1; }
cli() { redis-cli -p "$port" "$@"; }
checksum() { cli < mget.txt | md5sum | cut -c1-16; }

# The connection that stays open: a redis-cli process we talk to through a pipe.
ask() {
    printf '%s\n' "$*" >&"${open_cli[1]}"
    local line
    IFS= read -r -t 10 line <&"${open_cli[0]}" || fail "the open connection did not answer '$*'"
    printf '%s' "$line"
}

bold "kvd v1 starts (4 worker threads, epoll), linked with the Molt runtime"
"$kvd/kvd-v1" --port 0 --port-file port 2> kvd.log &
server=$!
for _ in $(seq 100); do [ -s port ] && break; sleep 0.05; done
[ -s port ] || fail "kvd did not start: $(cat kvd.log)"
port=$(cat port)
echo "pid $server, port $port"

bold "Loading $keys keys with redis-cli --pipe: numbers, short strings, long strings"
awk -v n="$keys" 'BEGIN { for (i = 1; i <= n; i++) {
    if (i % 2 == 0) v = i * 7; else if (i % 10 == 1) v = sprintf("long-value-%d-%s", i, "abcdefghijklmnopqrstuvwxyz0123456789"); else v = "s" i;
    k = "k:" i
    printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v } }' > load.resp
cli --pipe < load.resp | tail -1
awk -v n="$keys" 'BEGIN { for (i = 1; i <= n; i += 1000) { line = "MGET"; for (j = i; j < i + 1000 && j <= n; j++) line = line " k:" j; print line } }' > mget.txt
before=$(checksum)
echo "DBSIZE $(cli DBSIZE); checksum of every value: $before"

bold "A redis-cli connection opens, and stays open through every update"
coproc open_cli { exec redis-cli -p "$port"; }
cli_pid=$open_cli_PID
echo "open connection: PING -> $(ask PING)"

bold "redis-benchmark starts in the background (20 clients, SET/GET/INCR on its own keys)"
redis-benchmark -p "$port" -c 20 -r 100000 -t set,get,incr -l -q > benchmark.log 2>&1 &
benchmark=$!
sleep 2
echo "$(tr '\r' '\n' < benchmark.log | grep rps= | tail -1 | sed 's/^ *//')"

declare -a summary
apply() {   # apply VERSION WHAT-IT-CHANGES
    local version=$1 what=$2
    bold "Update to v$version: $what"
    echo "\$ molt check kvd-v$((version - 1)).so kvd-v$version.so"
    "$molt" check "$kvd/kvd-v$((version - 1)).so" "$kvd/kvd-v$version.so" | sed 's/^/  /' | head -12 || true
    echo "\$ molt update $server kvd-v$version.so"
    "$molt" update "$server" "$kvd/kvd-v$version.so" | tee update.log | sed 's/^/  /' || fail "the update to v$version failed"
    local pause objects now
    pause=$(sed -n 's/^pause \([0-9.]*\) ms.*/\1/p' update.log)
    objects=$(sed -n 's/.*heap: \([0-9]*\) objects converted.*/\1/p' update.log)
    now=$(checksum)
    [ "$now" = "$before" ] || fail "the values changed in the update to v$version"
    summary+=("$(printf '| v%d -> v%d | %9s ms | %9s | %s |' $((version - 1)) "$version" "$pause" "$objects" "$now")")
}

apply 2 "entries count their hits and remember their last access"
echo "open connection: OBJECT FREQ k:1 -> $(ask OBJECT FREQ k:1)   (a v2 command, on a v1 key)"
apply 3 "each shard's fixed bucket array becomes a resizable table (a transformer moves the buckets)"
echo "DBSIZE $(cli DBSIZE): the tables now grow by incremental rehashing"
apply 4 "keys can expire; a new background thread sweeps them"
echo "open connection: SET session hello EX 2 -> $(ask SET session hello EX 2); TTL session -> $(ask TTL session)"
echo "TTL of an inherited key: $(ask TTL k:1) (no expiry)"
apply 5 "numbers are stored as 64-bit integers, short strings inline (a transformer converts every value)"
echo "open connection: INCRBY k:2 100 -> $(ask INCRBY k:2 100); DECRBY k:2 100 -> $(ask DECRBY k:2 100)"

bold "After the streak"
sleep 1
kill -0 "$benchmark" 2>/dev/null || fail "redis-benchmark stopped: $(tail -c 300 benchmark.log)"
kill "$benchmark"; wait "$benchmark" 2>/dev/null || true; benchmark=""
if grep -iqE 'error|reset|refused' <<< "$(tr '\r' '\n' < benchmark.log)"; then fail "redis-benchmark saw errors"; fi
echo "redis-benchmark ran through all four updates with no error: $(tr '\r' '\n' < benchmark.log | grep rps= | tail -1 | sed 's/^ *//')"
after=$(checksum)
[ "$after" = "$before" ] || fail "checksum $after, expected $before"
echo "checksum of the $keys keys: $after (before the streak: $before)"
echo "the connection opened under v1: PING -> $(ask PING); TTL session -> $(ask TTL session) (expired)"
printf 'INFO server\n' >&"${open_cli[1]}"
version=""
while IFS= read -r -t 2 line <&"${open_cli[0]}"; do
    case $line in kvd_version:*) version=${line#kvd_version:}; version=${version%$'\r'};; esac
    [ -n "$version" ] && break
done
[ "$version" = 5 ] || fail "the open connection is served by version '$version'"
echo "and INFO on it says kvd_version:$version"
echo
echo "| update   | pause        | objects   | checksum after   |"
echo "|----------|--------------|-----------|------------------|"
printf '%s\n' "${summary[@]}"
echo
echo "Molt's history, as kvd shows it (INFO molt):"
cli INFO molt | grep '^molt_update_' | sed 's/^/  /'
bold "Done: one process, four new versions, no restart, no lost key, no failed request."
