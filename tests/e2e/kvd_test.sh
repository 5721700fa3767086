#!/usr/bin/env bash
# End-to-end tests of kvd (examples/kvd) under Molt, driven by Debian's redis-cli and
# redis-benchmark: real processes, real sockets, real clients.
# (Checks grep a captured reply, never a pipe: under pipefail, grep -q leaving early would make
# the writer fail with SIGPIPE.)
# Usage: kvd_test.sh BUILD_DIR CASE, where CASE is one of
#   streak    v1 -> v2 -> v3 -> v4 -> v5 -> v5-fix (code only) live, with redis-benchmark running and a connection open
#             all along; after each update the data is checked by checksum and each version's
#             new behaviour through redis-cli
#   rollback  a v2 whose transformer fails half-way: the update rolls back and v1 keeps every key
#   faults    a fault injected at every named point of the transaction (MOLT_FAULT), each in a
#             fresh kvd with 5,000 keys, redis-benchmark running and a connection open: the update
#             fails naming the point, every key and the connection stay, no thread, fd or client
#             is lost, and the next update works
#   hammer    updates requested while 50 pipelining clients hammer the server
#   protocol  garbage, huge values, pipelining, many connections: answered, never a crash
set -euo pipefail
build=$(realpath "$1")
case_name=$2
molt=$build/bin/molt
kvd=$build/kvd
work=$(mktemp -d)
export MOLT_CACHE_DIR=$work/cache
server=""
benchmark=""
cleanup() {
    [ -n "$benchmark" ] && kill "$benchmark" 2>/dev/null
    [ -n "$server" ] && kill "$server" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

fail() { echo "FAIL: $*" >&2; [ -f kvd.log ] && tail -5 kvd.log >&2; exit 1; }
cli() { redis-cli -p "$port" "$@"; }
expect() {   # expect WHAT COMMAND...: the reply of redis-cli COMMAND must be WHAT
    local want=$1 got
    shift
    got=$(cli "$@") || fail "redis-cli $* failed"
    [ "$got" = "$want" ] || fail "redis-cli $*: expected '$want', got '$got'"
}

start_kvd() {   # start_kvd EXECUTABLE: runs it, sets $server and $port
    rm -f port
    # In a sanitizer build, KVD_ENVIRONMENT preloads libmolt ahead of the sanitizers (see
    # tests/CMakeLists.txt): its words are NAME=VALUE, split on purpose.
    # shellcheck disable=SC2086
    env ${KVD_ENVIRONMENT:-} "$1" --port 0 --port-file port --workers 4 2>kvd.log &
    server=$!
    for _ in $(seq 100); do [ -s port ] && break; sleep 0.05; done
    [ -s port ] || fail "kvd did not start"
    port=$(cat port)
}

# N keys k:1..k:N: even ones hold numbers, odd ones strings, every tenth a long string (v5 keeps
# those on the heap, the others inline or as numbers).
load_keys() {
    awk -v n="$1" 'BEGIN { for (i = 1; i <= n; i++) {
        if (i % 2 == 0) v = i * 7; else if (i % 10 == 1) v = sprintf("long-value-%d-%s", i, "abcdefghijklmnopqrstuvwxyz0123456789"); else v = "s" i;
        print "SET k:" i " " v } }' > load.txt
    [ "$(cli < load.txt | grep -c '^OK$')" = "$1" ] || fail "loading $1 keys"
    awk -v n="$1" 'BEGIN { for (i = 1; i <= n; i += 500) { line = "MGET"; for (j = i; j < i + 500 && j <= n; j++) line = line " k:" j; print line } }' > mget.txt
}
checksum() { cli < mget.txt | md5sum | cut -d' ' -f1; }

update() {   # update NEW.so: must succeed
    "$molt" update "$server" "$1" > update.log 2>&1 || { cat update.log >&2; fail "molt update $1"; }
    grep -E '^pause' update.log
}

# A connection that stays open across every update, spoken to in RESP by hand.
open_connection() { exec 3<>"/dev/tcp/127.0.0.1/$port"; }
ask() {   # ask COMMAND...: sends one inline command on the open connection, prints the reply line
    printf '%s\r\n' "$*" >&3
    local line
    IFS= read -r -t 5 line <&3 || fail "the open connection did not answer '$*'"
    line=${line%$'\r'}
    if [[ $line == \$* && $line != '$-1' ]]; then   # a bulk string: read its body
        local body
        IFS= read -r -t 5 -N $((${line#\$} + 2)) body <&3 || fail "short bulk reply to '$*'"
        line=${body%$'\r\n'}
    fi
    printf '%s\n' "$line"
}

start_benchmark() {   # redis-benchmark in a loop, on its own keys (key:..., counter:...)
    redis-benchmark -p "$port" -c "$1" -P "$2" -r 100000 -t set,get,incr -l -q > benchmark.log 2>&1 &
    benchmark=$!
    sleep 1
}
stop_benchmark() {
    kill -0 "$benchmark" 2>/dev/null || { cat benchmark.log >&2; fail "redis-benchmark stopped by itself"; }
    kill "$benchmark"
    wait "$benchmark" 2>/dev/null || true
    benchmark=""
    tr '\r' '\n' < benchmark.log | grep -iE 'error|reset|refused' && fail "redis-benchmark saw errors"
    local rates
    rates=$(tr '\r' '\n' < benchmark.log | grep -c 'rps=' || true)
    [ "$rates" -gt 5 ] || fail "redis-benchmark made no progress"
    echo "redis-benchmark: no errors"
}

case $case_name in
streak)
    start_kvd "$kvd/kvd-v1"
    load_keys 10000
    cli SET k:expire-me soon > /dev/null
    before=$(checksum)
    open_connection
    [ "$(ask PING)" = "+PONG" ] || fail "PING on the open connection"
    start_benchmark 20 1

    update "$kvd/kvd-v2.so"
    grep -q '^kvd_version:2' <<< "$(cli INFO server)" || fail "v2 is not running"
    # before anything reads the inherited keys (OBJECT does not count as an access): no hits yet,
    # and a last access dated to the update by transform_v2.c (zeroed, it would be 1970)
    expect 0 OBJECT FREQ k:1
    idle=$(cli OBJECT IDLETIME k:3)
    [ "$idle" -lt 60 ] || fail "OBJECT IDLETIME of an inherited key dates from before the update: $idle"
    cli GET k:1 > /dev/null
    expect 1 OBJECT FREQ k:1
    [ "$(checksum)" = "$before" ] || fail "data changed by v1 -> v2"

    # the workers count events through their thread argument, &workers[i]: after the update it
    # must lead into v2's array, which INFO reads
    events() { cli INFO stats | tr -d '\r' | sed -n 's/^worker_events://p'; }
    first=$(events)
    cli PING > /dev/null; cli PING > /dev/null
    [ "$(events)" -gt "$first" ] || fail "workers count into the old version's array (thread argument not redirected)"

    update "$kvd/kvd-v3.so"
    grep -q '^kvd_version:3' <<< "$(cli INFO server)" || fail "v3 is not running"
    [ "$(checksum)" = "$before" ] || fail "data changed by v2 -> v3"
    # the inherited buckets (64 shards of 1024) must grow by incremental rehashing: 80,000 more
    # keys fill every shard past its size; all of them read back, and the old ones too
    buckets=$(cli INFO stats | tr -d '\r' | sed -n 's/^hash_buckets://p')
    [ "$buckets" = 65536 ] || [ "$buckets" -gt 65536 ] || fail "v3 did not start from v2's buckets: $buckets"
    awk 'BEGIN { for (i = 1; i <= 80000; i++) { k = "grow:" i; printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%d\r\n", length(k), k, length(i ""), i } }' |
        cli --pipe > /dev/null
    awk 'BEGIN { for (i = 1; i <= 80000; i++) print "GET grow:" i }' | cli | awk '$0 != NR { bad = 1 } END { exit bad }' ||
        fail "keys added after v3 read back wrong"
    grown=$(cli INFO stats | tr -d '\r' | sed -n 's/^hash_buckets://p')
    [ "$grown" -gt 65536 ] || fail "the tables did not grow: $grown buckets"
    [ "$(checksum)" = "$before" ] || fail "data changed while v3 rehashed"

    update "$kvd/kvd-v4.so"
    grep -q '^kvd_version:4' <<< "$(cli INFO server)" || fail "v4 is not running"
    [ "$(checksum)" = "$before" ] || fail "data changed by v3 -> v4"
    expect -1 TTL k:5
    # EXPIRE's options, as Redis 7 takes them (k:6 has no expiry: GT never sets it, LT does)
    expect 0 EXPIRE k:6 100 XX
    expect 0 EXPIRE k:6 100 GT
    expect 1 EXPIRE k:6 100 NX
    expect 0 EXPIRE k:6 200 NX
    expect 0 EXPIRE k:6 50 GT
    expect 1 EXPIRE k:6 200 gt
    expect 0 EXPIRE k:6 300 LT
    expect 1 EXPIRE k:6 150 XX LT
    ttl=$(ask TTL k:6 | tr -d ':\r')
    [ "$ttl" -gt 100 ] && [ "$ttl" -le 150 ] || fail "EXPIRE ... XX LT left a TTL of $ttl, not 150"
    expect "ERR NX and XX, GT or LT options at the same time are not compatible" EXPIRE k:6 10 NX GT
    expect "ERR GT and LT options at the same time are not compatible" EXPIRE k:6 10 GT LT
    expect "ERR Unsupported option SOON" EXPIRE k:6 10 SOON
    expect 0 EXPIRE missing-key 10 NX
    expect 1 PERSIST k:6
    expect 1 EXPIRE k:expire-me 1
    expired_at=$(( $(date +%s%N) / 1000000 + 1000 ))   # ms
    expect OK SET fresh 1 PX 300
    expect "ERR syntax error" SET fresh 2 EX 10 PX 300   # one expiry, as Redis takes it
    # keys nobody reads again can only go through the expiry thread (new in v4)
    awk 'BEGIN { for (i = 1; i <= 1000; i++) print "SET soon:" i " x PX 200" }' | cli > /dev/null
    swept=0
    for _ in $(seq 50); do   # a whole sweep takes a second; allow five
        sleep 0.1
        swept=$(cli INFO stats | tr -d '\r' | sed -n 's/^expired_keys://p')
        [ "$swept" -ge 1000 ] && break
    done
    [ "$swept" -ge 1000 ] || fail "the expiry thread removed $swept keys, not the 1000 nobody read"
    grep -q 'expirer_main' <<< "$("$molt" status --json "$server")" || fail "molt status does not list the expiry thread"
    # the 1000 keys of 200 ms may be swept before k:expire-me's second is over: wait for it
    while [ $(( $(date +%s%N) / 1000000 )) -le "$expired_at" ]; do sleep 0.05; done
    expect 0 EXISTS k:expire-me
    expect 0 EXISTS fresh
    [ "$(ask TTL k:5)" = ":-1" ] || fail "the open connection is not served by v4"

    # v5 drops entry.value for entry.val; its transformer keeps the values: no warning of a loss,
    # which its build without transformers (plain) does get
    checked=$("$molt" check "$kvd/kvd-v4.so" "$kvd/kvd-v5.so")
    ! grep -q 'is removed' <<< "$checked" || fail "check warns of values v5's transformer keeps: $checked"
    checked=$("$molt" check "$kvd/kvd-v4.so" "$kvd/kvd-v5-plain")
    grep -q 'struct entry.value is removed' <<< "$checked" ||
        fail "check does not warn that v5 without its transformer drops the values: $checked"
    update "$kvd/kvd-v5.so"
    grep -q '^kvd_version:5' <<< "$(cli INFO server)" || fail "v5 is not running"
    [ "$(checksum)" = "$before" ] || fail "data changed by v4 -> v5"
    expect 15 INCRBY k:2 1      # 14 inherited as a number
    expect 14 DECR k:2
    expect "ERR value is not an integer or out of range" INCR k:3
    expect OK SET limit 9223372036854775807   # a number at the limit: no wrap, Redis's words
    expect "ERR increment or decrement would overflow" INCR limit
    expect 9223372036854775807 GET limit
    cli DEL limit > /dev/null
    [ "$(checksum)" = "$before" ] || fail "data changed after v5 arithmetic"

    grep -q 'kvd_version:5' <<< "$(ask INFO server)" || fail "the open connection is not served by v5"

    # a release that changes code only: nothing to convert, nothing traversed
    update "$kvd/kvd-v5-fix.so"
    grep -q 'heap: 0 objects converted' update.log || fail "a code-only update converted heap objects: $(cat update.log)"
    grep -q '^kvd_fix:1' <<< "$(cli INFO stats | tr -d '\r')" || fail "v5-fix is not running"
    grep -q 'kvd_fix:1' <<< "$(ask INFO stats)" || fail "the open connection is not served by v5-fix"
    [ "$(checksum)" = "$before" ] || fail "data changed by v5 -> v5-fix"
    stop_benchmark
    [ "$("$molt" status --json "$server" | grep -o '"ok": *true' | wc -l)" = 5 ] || fail "molt status does not show 5 updates"
    cli INFO molt | grep '^molt_update_'
    echo "streak v1 -> v5 -> v5-fix: passed"
    ;;

rollback)
    start_kvd "$kvd/kvd-v1"
    load_keys 10000
    before=$(checksum)
    open_connection
    if "$molt" update "$server" "$kvd/kvd-v2-faulty.so" > update.log 2>&1; then
        fail "the faulty v2 was applied"
    fi
    cat update.log
    grep -q 'transformer failed: faulty v2' update.log || fail "the failure does not name the transformer"
    grep -q 'old version keeps running' update.log || fail "the failure does not say v1 runs on"
    grep -q '^kvd_version:1' <<< "$(cli INFO server)" || fail "v1 is not running after the rollback"
    [ "$(checksum)" = "$before" ] || fail "data changed by the failed update"
    [ "$(ask GET k:2)" = "14" ] || fail "the open connection lost its answers"
    grep -q '^molt_update_1:rolled-back kvd-v2-faulty.so' <<< "$(cli INFO molt)" || fail "INFO does not show the failed attempt"
    update "$kvd/kvd-v2.so"
    [ "$(checksum)" = "$before" ] || fail "data changed by the correct update after the rollback"
    grep -q '^kvd_version:2' <<< "$(cli INFO server)" || fail "v2 is not running"
    echo "rollback: passed"
    ;;

hammer)
    start_kvd "$kvd/kvd-v1"
    load_keys 2000
    before=$(checksum)
    start_benchmark 50 16
    update "$kvd/kvd-v2.so"
    update "$kvd/kvd-v3.so"
    update "$kvd/kvd-v4.so"
    update "$kvd/kvd-v5.so"
    stop_benchmark
    [ "$(checksum)" = "$before" ] || fail "data changed under load"
    echo "hammer: passed"
    ;;

protocol)
    start_kvd "$kvd/kvd-v1"
    expect PONG PING
    expect "ERR unknown command 'NOSUCH'" NOSUCH
    expect "ERR wrong number of arguments for 'get' command" get   # as Redis says it, whatever the case sent
    expect "ERR wrong number of arguments for 'mset' command" MSET a
    expect "ERR wrong number of arguments for 'ping' command" PING a b
    expect OK SET limit -9223372036854775808
    expect "ERR increment or decrement would overflow" DECR limit
    expect "ERR syntax error" FLUSHALL now
    expect "ERR value is not an integer or out of range" SELECT x
    expect -9223372036854775808 GET limit
    # a value of 8 MiB (6 MiB in base64), both ways
    head -c $((6 * 1024 * 1024)) /dev/urandom | base64 -w0 > big
    cli -x SET big < big > /dev/null
    cmp -s <(cli GET big) <(cat big; echo) || fail "a big value came back different"
    # a client that sends four requests for it and closes its sending half at once (nc -N) gets
    # the four replies whole (32 MiB: more than the socket holds), then the server hangs up
    size=$(( $(wc -c < big) ))
    printf '*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n%.0s' 1 2 3 4 |
        timeout 30 nc -N 127.0.0.1 "$port" > half-closed || fail "a half-closed client was not hung up on after its replies"
    expected=$(( 4 * (size + ${#size} + 5) ))   # each reply: "$<size>\r\n<bytes>\r\n"
    [ "$(wc -c < half-closed)" -eq "$expected" ] ||
        fail "a half-closed client got $(wc -c < half-closed) bytes of its replies' $expected"
    # 2000 pipelined requests in one write
    awk 'BEGIN { for (i = 0; i < 2000; i++) printf "INCR pipelined\r\n" }' > pipeline
    exec 4<>"/dev/tcp/127.0.0.1/$port"
    cat pipeline >&4
    for _ in $(seq 2000); do IFS= read -r -t 5 last <&4 || fail "pipelined replies missing"; done
    [ "${last%$'\r'}" = ":2000" ] || fail "pipelined replies out of order: $last"
    exec 4>&-
    # malformed requests get an error and are hung up on; garbage never stops the server
    printf '*1\r\n$99999999999\r\n' > bad-length
    reply=$(timeout 5 bash -c "exec 5<>/dev/tcp/127.0.0.1/$port; cat bad-length >&5; head -c 100 <&5" || true)
    [[ $reply == -ERR\ Protocol\ error* ]] || fail "a bad bulk length got '$reply'"
    # inline requests with quoted arguments, as Redis reads them (an unclosed quote: an error)
    reply=$(printf '%s\r\n' 'SET "a b" "c\x41d"' 'GET "a b"' "SET 'it\\'s' v" "GET 'it\\'s'" 'GET "open' |
        timeout 5 nc -N 127.0.0.1 "$port" | tr -d '\r' | tr '\n' '|')
    [ "$reply" = '+OK|$3|cAd|+OK|$1|v|-ERR Protocol error: unbalanced quotes in request|' ] ||
        fail "quoted inline arguments got '$reply'"
    # a null array is skipped, as Redis does
    reply=$(printf '*-1\r\nPING\r\n' | timeout 5 nc -N 127.0.0.1 "$port" | tr -d '\r')
    [ "$reply" = "+PONG" ] || fail "a null array followed by PING got '$reply'"
    for _ in $(seq 20); do
        head -c 65536 /dev/urandom | timeout 5 bash -c "exec 5<>/dev/tcp/127.0.0.1/$port; cat >&5; exit 0" || true
    done
    expect PONG PING
    # many connections at once
    redis-benchmark -p "$port" -c 500 -n 20000 -t ping -q > many.log 2>&1 || fail "500 connections: $(cat many.log)"
    expect PONG PING
    kill -0 "$server" || fail "kvd died"
    echo "protocol: passed"
    ;;

faults)
    snapshot() { echo "threads $(awk '/^Threads/ { print $2 }' /proc/$server/status) fds $(ls /proc/$server/fd | wc -l)"; }
    for point in prepare.loaded quiesce.parked transform.heap_discovered transform.discovery_out_of_memory \
                 transform.out_of_memory transform.allocation:1000 transform.globals restart.stacks; do
        MOLT_FAULT=$point start_kvd "$kvd/kvd-v1"
        load_keys 5000
        before=$(checksum)
        open_connection
        start_benchmark 10 1
        resources=$(snapshot)
        if "$molt" update "$server" "$kvd/kvd-v2.so" > update.log 2>&1; then
            fail "$point: the update went through"
        fi
        grep -qE "fault injected at ${point%%:*}|out of memory|internal failure" update.log || fail "$point: $(cat update.log)"
        grep -q 'old version keeps running' update.log || fail "$point: the failure does not say v1 runs on"
        grep -q '^kvd_version:1' <<< "$(cli INFO server)" || fail "$point: v1 is not running"
        [ "$(checksum)" = "$before" ] || fail "$point: data changed by the failed update"
        [ "$(ask GET k:2)" = "14" ] || fail "$point: the open connection lost its answers"
        # A control connection's thread and socket last a moment after its answer: a leak stays.
        for _ in $(seq 40); do [ "$(snapshot)" = "$resources" ] && break; sleep 0.05; done
        [ "$(snapshot)" = "$resources" ] || fail "$point: $resources before the failed update, $(snapshot) after"
        update "$kvd/kvd-v2.so" > /dev/null
        [ "$(checksum)" = "$before" ] || fail "$point: data changed by the correct update after the failure"
        kill -0 "$benchmark" || fail "$point: redis-benchmark stopped"
        kill "$benchmark"
        wait "$benchmark" 2>/dev/null || true
        benchmark=""
        tr '\r' '\n' < benchmark.log | grep -iE 'error|reset|refused' && fail "$point: redis-benchmark saw errors"
        exec 3>&-
        kill "$server"
        wait "$server" 2>/dev/null || true
        server=""
        echo "faults: $point rolled back, nothing lost ($resources)"
    done
    echo "faults: passed"
    ;;
*)
    echo "kvd_test.sh: unknown case $case_name" >&2
    exit 2
    ;;
esac
