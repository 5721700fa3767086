/* commands.c: the Redis commands kvd answers, each a small function over the store. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kvd.h"

typedef void command_function(struct conn *conn, const struct request *request);

struct command {
    const char *name;
    int arity;   /* as in Redis: n arguments exactly (the name included), or -n for n or more */
    command_function *run;
};

#define ARG(i) request->argv[i], request->lengths[i]

/* As Redis says it: the command's name in lower case, whichever case the client sent. */
static void reply_arity_error(struct conn *conn, const char *name)
{
    char lower[32];
    size_t i = 0;
    for (; name[i] && i < sizeof lower - 1; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    lower[i] = '\0';
    reply_error(&conn->out, "ERR wrong number of arguments for '%s' command", lower);
}

static int equals(const struct request *request, int i, const char *word)
{
    return request->lengths[i] == strlen(word) && strncasecmp(request->argv[i], word, request->lengths[i]) == 0;
}

/* An integer argument, or -1 after replying with the error Redis gives. */
static int integer_argument(struct conn *conn, const struct request *request, int i, long long *value)
{
    char text[32];
    size_t length = request->lengths[i];
    char *end;
    if (length == 0 || length >= sizeof text)
        goto bad;
    memcpy(text, request->argv[i], length);
    text[length] = '\0';
    errno = 0;
    *value = strtoll(text, &end, 10);
    if (end == text + length && errno == 0)   /* the whole argument (no NUL inside), in range */
        return 0;
bad:
    reply_error(&conn->out, "ERR value is not an integer or out of range");
    return -1;
}

static void reply_value(struct conn *conn, const struct entry *entry)
{
    char scratch[32];
    size_t length;
    const char *bytes = entry_value(entry, scratch, &length);
    reply_bulk(&conn->out, bytes, length);
}

static void ping(struct conn *conn, const struct request *request)
{
    if (request->argc > 2)
        reply_arity_error(conn, "PING");
    else if (request->argc == 2)
        reply_bulk(&conn->out, ARG(1));
    else
        reply_simple(&conn->out, "PONG");
}

static void echo(struct conn *conn, const struct request *request) { reply_bulk(&conn->out, ARG(1)); }

static void get(struct conn *conn, const struct request *request)
{
    uint64_t hash = store_hash(ARG(1));
    struct shard *shard = store_lock(hash);
    struct entry *entry = store_find(shard, hash, ARG(1));
    if (entry)
        reply_value(conn, entry);
    else
        reply_null(&conn->out);
    store_unlock(shard);
}

#if KVD_VERSION >= 4
/* The wall-clock time `amount` units of `unit_ms` from now; -1 when it does not fit. */
static int deadline(long long amount, int64_t unit_ms, int64_t *at)
{
    int64_t span;
    if (__builtin_mul_overflow(amount, unit_ms, &span) || __builtin_add_overflow(now_ms(), span, at))
        return -1;
    return 0;
}
#endif

/* SET key value, and from v4 on: [EX seconds | PX milliseconds]. */
static void set(struct conn *conn, const struct request *request)
{
#if KVD_VERSION >= 4
    int64_t expires_at = 0;
    for (int i = 3; i < request->argc; i += 2) {
        long long amount;
        /* one expiry, as Redis takes it: a second EX or PX is a syntax error */
        if (i + 1 >= request->argc || !(equals(request, i, "EX") || equals(request, i, "PX")) || expires_at) {
            reply_error(&conn->out, "ERR syntax error");
            return;
        }
        if (integer_argument(conn, request, i + 1, &amount) != 0)
            return;
        if (amount <= 0 || deadline(amount, equals(request, i, "EX") ? 1000 : 1, &expires_at) != 0) {
            reply_error(&conn->out, "ERR invalid expire time in 'set' command");
            return;
        }
    }
#else
    if (request->argc != 3) {
        reply_error(&conn->out, "ERR syntax error");
        return;
    }
#endif
    uint64_t hash = store_hash(ARG(1));
    struct shard *shard = store_lock(hash);
    struct entry *entry = store_find_or_add(shard, hash, ARG(1));
    if (entry) {
        entry_set_value(entry, ARG(2));
#if KVD_VERSION >= 4
        entry->expires_at_ms = expires_at;   /* a plain SET also removes an old expiry */
#endif
    }
    store_unlock(shard);
    if (entry)
        reply_simple(&conn->out, "OK");
    else
        reply_error(&conn->out, "OOM command not allowed when used memory > 'maxmemory'");
}

static void del(struct conn *conn, const struct request *request)
{
    long long deleted = 0;
    for (int i = 1; i < request->argc; i++) {
        uint64_t hash = store_hash(ARG(i));
        struct shard *shard = store_lock(hash);
        deleted += store_delete(shard, hash, ARG(i));
        store_unlock(shard);
    }
    reply_integer(&conn->out, deleted);
}

static void exists(struct conn *conn, const struct request *request)
{
    long long found = 0;
    for (int i = 1; i < request->argc; i++) {
        uint64_t hash = store_hash(ARG(i));
        struct shard *shard = store_lock(hash);
        found += store_peek(shard, hash, ARG(i)) != NULL;
        store_unlock(shard);
    }
    reply_integer(&conn->out, found);
}

static void add_to(struct conn *conn, const struct request *request, long long delta)
{
    uint64_t hash = store_hash(ARG(1));
    struct shard *shard = store_lock(hash);
    struct entry *entry = store_find_or_add(shard, hash, ARG(1));
    int64_t result = 0;
    int status = entry ? entry_add(entry, delta, &result) : add_not_integer;
    store_unlock(shard);
    if (status == 0)
        reply_integer(&conn->out, result);
    else if (status == add_overflows)
        reply_error(&conn->out, "ERR increment or decrement would overflow");   /* Redis's words */
    else
        reply_error(&conn->out, "ERR value is not an integer or out of range");
}

static void incr(struct conn *conn, const struct request *request) { add_to(conn, request, 1); }
static void decr(struct conn *conn, const struct request *request) { add_to(conn, request, -1); }

static void incrby(struct conn *conn, const struct request *request)
{
    long long delta;
    if (integer_argument(conn, request, 2, &delta) == 0)
        add_to(conn, request, delta);
}

static void decrby(struct conn *conn, const struct request *request)
{
    long long delta;
    if (integer_argument(conn, request, 2, &delta) == 0) {
        if (delta == LLONG_MIN)
            reply_error(&conn->out, "ERR decrement would overflow");
        else
            add_to(conn, request, -delta);
    }
}

static void mset(struct conn *conn, const struct request *request)
{
    if (request->argc % 2 == 0) {
        reply_arity_error(conn, "MSET");
        return;
    }
    for (int i = 1; i < request->argc; i += 2) {
        uint64_t hash = store_hash(ARG(i));
        struct shard *shard = store_lock(hash);
        struct entry *entry = store_find_or_add(shard, hash, ARG(i));
        if (entry) {
            entry_set_value(entry, ARG(i + 1));
#if KVD_VERSION >= 4
            entry->expires_at_ms = 0;
#endif
        }
        store_unlock(shard);
    }
    reply_simple(&conn->out, "OK");
}

static void mget(struct conn *conn, const struct request *request)
{
    reply_array(&conn->out, request->argc - 1);
    for (int i = 1; i < request->argc; i++) {
        uint64_t hash = store_hash(ARG(i));
        struct shard *shard = store_lock(hash);
        struct entry *entry = store_find(shard, hash, ARG(i));
        if (entry)
            reply_value(conn, entry);
        else
            reply_null(&conn->out);
        store_unlock(shard);
    }
}

static void dbsize(struct conn *conn, const struct request *request)
{
    (void)request;
    reply_integer(&conn->out, (long long)store_size());
}

static void flushall(struct conn *conn, const struct request *request)
{
    if (request->argc > 2 || (request->argc == 2 && !equals(request, 1, "SYNC") && !equals(request, 1, "ASYNC"))) {
        reply_error(&conn->out, "ERR syntax error");
        return;
    }
    store_clear();
    reply_simple(&conn->out, "OK");
}

static void select_db(struct conn *conn, const struct request *request)
{
    long long index;
    if (integer_argument(conn, request, 1, &index) != 0)
        return;   /* Redis's words for a number that is none */
    if (index == 0)
        reply_simple(&conn->out, "OK");
    else
        reply_error(&conn->out, "ERR DB index is out of range");
}

static void quit(struct conn *conn, const struct request *request)
{
    (void)request;
    reply_simple(&conn->out, "OK");
    connection_close_later(conn);
}

/* Enough of COMMAND and CONFIG GET for redis-cli and redis-benchmark, which ask at start. */
static void command(struct conn *conn, const struct request *request)
{
    if (request->argc >= 2 && equals(request, 1, "COUNT"))
        reply_integer(&conn->out, 0);
    else
        reply_array(&conn->out, 0);
}

static void config(struct conn *conn, const struct request *request)
{
    if (request->argc != 3 || !equals(request, 1, "GET")) {
        reply_error(&conn->out, "ERR CONFIG: only CONFIG GET parameter is supported");
        return;
    }
    if (equals(request, 2, "save") || equals(request, 2, "appendonly")) {
        reply_array(&conn->out, 2);
        reply_bulk(&conn->out, ARG(2));
        reply_bulk(&conn->out, equals(request, 2, "save") ? "" : "no", equals(request, 2, "save") ? 0 : 2);
    } else {
        reply_array(&conn->out, 0);
    }
}

extern uint64_t connected_clients, commands_processed;
extern int listen_port;

static void info(struct conn *conn, const struct request *request)
{
    (void)request;
    unsigned long long events = 0;
    for (int i = 0; i < worker_count; i++)
        events += __atomic_load_n(&workers[i].events_handled, __ATOMIC_RELAXED);
    char stats[128] = "";   /* what later versions add to the Stats section */
    size_t used = 0;
#if KVD_VERSION >= 3
    used += (size_t)snprintf(stats + used, sizeof stats - used, "hash_buckets:%zu\r\n", store_buckets());
#endif
#if KVD_VERSION >= 4
    used += (size_t)snprintf(stats + used, sizeof stats - used, "expired_keys:%llu\r\n",
                             (unsigned long long)__atomic_load_n(&expired_keys, __ATOMIC_RELAXED));
#endif
#ifdef KVD_CODE_FIX   /* kvd-v5-fix.so: a release that changes code only (no type changes) */
    used += (size_t)snprintf(stats + used, sizeof stats - used, "kvd_fix:1\r\n");
#endif
    (void)used;
    char text[8192];
    int length = snprintf(text, sizeof text,
                          "# Server\r\nredis_version:7.0.15\r\nkvd_version:%d\r\nmolt:%s\r\nprocess_id:%ld\r\n"
                          "tcp_port:%d\r\n\r\n# Clients\r\nconnected_clients:%llu\r\n\r\n# Stats\r\n"
                          "total_commands_processed:%llu\r\nworker_events:%llu\r\n%s\r\n# Keyspace\r\ndb0:keys=%zu,expires=0,avg_ttl=0\r\n",
                          KVD_VERSION,
#ifdef MOLT_DISABLE
                          "disabled",
#else
                          "enabled",
#endif
                          (long)getpid(), listen_port,
                          (unsigned long long)__atomic_load_n(&connected_clients, __ATOMIC_RELAXED),
                          (unsigned long long)__atomic_load_n(&commands_processed, __ATOMIC_RELAXED), events, stats,
                          store_size());
#ifndef MOLT_DISABLE
    /* Molt's record of the updates this process went through, one line each. */
    char history[4096];
    molt_update_history(history, sizeof history);
    int updates = 0;
    length += snprintf(text + length, sizeof text - (size_t)length, "\r\n# Molt\r\n");
    char *rest = NULL;
    for (char *line = strtok_r(history, "\n", &rest); line && length < (int)sizeof text - 256;
         line = strtok_r(NULL, "\n", &rest))
        length += snprintf(text + length, sizeof text - (size_t)length, "molt_update_%d:%s\r\n", ++updates, line);
    length += snprintf(text + length, sizeof text - (size_t)length, "molt_updates:%d\r\n", updates);
#endif
    reply_bulk(&conn->out, text, (size_t)length < sizeof text ? (size_t)length : sizeof text - 1);
}

#if KVD_VERSION >= 2
/* OBJECT FREQ key (accesses) and OBJECT IDLETIME key (seconds since the last one). */
static void object(struct conn *conn, const struct request *request)
{
    int freq = equals(request, 1, "FREQ");
    if (!freq && !equals(request, 1, "IDLETIME")) {
        reply_error(&conn->out, "ERR unknown subcommand. Try OBJECT FREQ key or OBJECT IDLETIME key.");
        return;
    }
    uint64_t hash = store_hash(ARG(2));
    struct shard *shard = store_lock(hash);
    struct entry *entry = store_peek(shard, hash, ARG(2));
    long long answer = 0;
    if (entry)
        answer = freq ? (long long)entry->hits : (long long)((now_ms() - entry->last_access_ms) / 1000);
    store_unlock(shard);
    if (entry)
        reply_integer(&conn->out, answer);
    else
        reply_null(&conn->out);
}
#endif

#if KVD_VERSION >= 4
/* EXPIRE key seconds [NX|XX|GT|LT]: 1 when set (a time already past deletes the key), 0 when
 * the key is missing or the option says no. NX: only a key without an expiry; XX: only one with;
 * GT, LT: only a later, an earlier expiry (a key without one expires never: GT never sets it, LT
 * always). PERSIST key: 1 when an expiry was removed. */
static void expire(struct conn *conn, const struct request *request)
{
    long long seconds;
    if (integer_argument(conn, request, 2, &seconds) != 0)
        return;
    int nx = 0, xx = 0, gt = 0, lt = 0;
    for (int i = 3; i < request->argc; i++) {
        if (equals(request, i, "NX"))
            nx = 1;
        else if (equals(request, i, "XX"))
            xx = 1;
        else if (equals(request, i, "GT"))
            gt = 1;
        else if (equals(request, i, "LT"))
            lt = 1;
        else {
            reply_error(&conn->out, "ERR Unsupported option %.*s", (int)(request->lengths[i] > 64 ? 64 : request->lengths[i]),
                        request->argv[i]);
            return;
        }
    }
    if (nx && (xx || gt || lt)) {
        reply_error(&conn->out, "ERR NX and XX, GT or LT options at the same time are not compatible");
        return;
    }
    if (gt && lt) {
        reply_error(&conn->out, "ERR GT and LT options at the same time are not compatible");
        return;
    }
    int64_t when;   /* the new expiry, in the past when seconds <= 0 */
    if (deadline(seconds, 1000, &when) != 0) {
        reply_error(&conn->out, "ERR invalid expire time in 'expire' command");
        return;
    }
    uint64_t hash = store_hash(ARG(1));
    struct shard *shard = store_lock(hash);
    struct entry *entry = store_peek(shard, hash, ARG(1));
    int set = 0;
    if (entry) {
        int64_t current = entry->expires_at_ms;   /* 0: none */
        set = !(nx && current) && !(xx && !current) && !(gt && (!current || when <= current)) &&
              !(lt && current && when >= current);
    }
    if (set && seconds <= 0)
        store_delete(shard, hash, ARG(1));
    else if (set)
        entry->expires_at_ms = when;
    store_unlock(shard);
    reply_integer(&conn->out, set);
}

static void persist(struct conn *conn, const struct request *request)
{
    uint64_t hash = store_hash(ARG(1));
    struct shard *shard = store_lock(hash);
    struct entry *entry = store_peek(shard, hash, ARG(1));
    int removed = entry && entry->expires_at_ms != 0;
    if (entry)
        entry->expires_at_ms = 0;
    store_unlock(shard);
    reply_integer(&conn->out, removed);
}

/* TTL key: seconds left, -1 without expiry, -2 without the key. PTTL: milliseconds. */
static void ttl_in(struct conn *conn, const struct request *request, int64_t unit_ms)
{
    uint64_t hash = store_hash(ARG(1));
    struct shard *shard = store_lock(hash);
    struct entry *entry = store_peek(shard, hash, ARG(1));
    long long answer = -2;
    if (entry)
        answer = entry->expires_at_ms ? (entry->expires_at_ms - now_ms() + unit_ms - 1) / unit_ms : -1;
    store_unlock(shard);
    reply_integer(&conn->out, answer);
}

static void ttl(struct conn *conn, const struct request *request) { ttl_in(conn, request, 1000); }
static void pttl(struct conn *conn, const struct request *request) { ttl_in(conn, request, 1); }
#endif

static const struct command commands[] = {
    {"PING", -1, ping},       {"ECHO", 2, echo},         {"GET", 2, get},         {"SET", -3, set},
    {"DEL", -2, del},         {"EXISTS", -2, exists},    {"INCR", 2, incr},       {"DECR", 2, decr},
    {"INCRBY", 3, incrby},    {"DECRBY", 3, decrby},     {"MSET", -3, mset},      {"MGET", -2, mget},
    {"DBSIZE", 1, dbsize},    {"FLUSHALL", -1, flushall}, {"FLUSHDB", -1, flushall}, {"SELECT", 2, select_db},
    {"INFO", -1, info},       {"COMMAND", -1, command},  {"CONFIG", -2, config},  {"QUIT", -1, quit},
#if KVD_VERSION >= 2
    {"OBJECT", 3, object},
#endif
#if KVD_VERSION >= 4
    {"EXPIRE", -3, expire},   {"PERSIST", 2, persist},   {"TTL", 2, ttl},         {"PTTL", 2, pttl},
#endif
};

void execute(struct conn *conn, const struct request *request)
{
    if (request->argc == 0)
        return;   /* an empty inline line: Redis ignores it too */
    __atomic_add_fetch(&commands_processed, 1, __ATOMIC_RELAXED);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const struct command *command = &commands[i];
        if (!equals(request, 0, command->name))
            continue;
        if ((command->arity > 0 && request->argc != command->arity) ||
            (command->arity < 0 && request->argc < -command->arity)) {
            reply_arity_error(conn, command->name);
            return;
        }
        command->run(conn, request);
        return;
    }
    reply_error(&conn->out, "ERR unknown command '%.*s'", (int)(request->lengths[0] > 64 ? 64 : request->lengths[0]),
                request->argv[0]);
}
