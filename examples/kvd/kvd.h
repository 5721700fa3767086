/* kvd: a Redis-protocol key-value server, written to be updated live by Molt.
 *
 * One source tree builds five versions: KVD_VERSION (1 to 5) selects the data layout and the
 * commands of each, so that `git grep KVD_VERSION` shows exactly what each version changed:
 *   v2  entries count their hits and remember their last access (OBJECT FREQ, OBJECT IDLETIME);
 *   v3  each shard's fixed chained table becomes a resizable one with incremental rehashing;
 *   v4  keys can expire (EXPIRE, TTL, PERSIST, SET ... EX/PX), with a background expiry thread;
 *   v5  values are stored as 64-bit numbers or inline small strings where they can be.
 * The transformers that carry data across the changes the defaults cannot infer live in
 * transform_v2.c, transform_v3.c and transform_v5.c. Built with -DMOLT_DISABLE, every version
 * is the same server without Molt (the baseline). */
#ifndef KVD_H
#define KVD_H

#include <molt/molt.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#ifndef KVD_VERSION
#error "build with -DKVD_VERSION=1..5"
#endif

enum {
    shard_count = 64,       /* the store is split into shards, each with its own lock */
    first_buckets = 1024,   /* buckets per shard: fixed in v1 and v2, the starting size after */
    max_workers = 64,
    max_fds = 65536,        /* connections are found by fd (see struct conn) */
};

/* The value of a key. v1 to v4: a heap string. v5: a number, a small inline string, or a heap
 * string, whichever fits (a transformer converts the old strings, transform_v5.c). */
#if KVD_VERSION >= 5
enum value_kind { value_heap, value_inline, value_number };
enum { inline_capacity = 22 };
struct value {
    unsigned char kind;          /* enum value_kind */
    unsigned char inline_length;
    union {
        char inline_bytes[inline_capacity];
        int64_t number;
        struct {
            char *bytes;
            size_t length;
        } heap;
    } as;
};
#endif

struct entry {
    struct entry *next;     /* the bucket's chain */
    uint64_t hash;
    char *key;
    size_t key_length;
#if KVD_VERSION >= 5
    struct value val;
#else
    char *value;
    size_t value_length;
#endif
#if KVD_VERSION >= 2
    uint64_t hits;            /* reads and writes of this key */
    int64_t last_access_ms;   /* wall clock */
#endif
#if KVD_VERSION >= 4
    int64_t expires_at_ms;    /* 0: never */
#endif
};

#if KVD_VERSION >= 3
/* A resizable chained table. While it grows, entries move bucket by bucket from buckets[0] to
 * buckets[1] (incremental rehashing, a few buckets per operation), so no request ever waits for
 * a whole table to be rehashed. */
struct table {
    struct entry **buckets[2];
    size_t size[2];          /* powers of two; size[1] is 0 unless rehashing */
    size_t rehash_next;      /* the next bucket of buckets[0] to move */
};
#else
struct table {
    struct entry *buckets[first_buckets];
};
#endif

struct shard {
    pthread_mutex_t lock;
    size_t count;
    struct table table;
#if KVD_VERSION >= 4
    size_t expire_cursor;    /* where the expiry thread resumes its sweep */
#endif
};

/* A growable byte buffer (input or output of a connection). */
struct buffer {
    char *data;
    size_t length;
    size_t capacity;
};

/* A client connection. Workers find it by fd in `connections` (epoll is given fds, never
 * pointers: the kernel holds what epoll is given, and Molt cannot update what it cannot see). */
struct conn {
    int fd;
    int worker;
    struct buffer in;
    size_t in_parsed;        /* bytes of `in` already executed */
    struct buffer out;
    size_t out_sent;
    int closing;             /* close once `out` is flushed (what it sends meanwhile is read, not run) */
    int input_ended;         /* the client sent all it will: input is no longer watched */
    int watching_output;     /* EPOLLOUT asked for: `out` did not fit in the socket */
    uint64_t commands;
};

struct worker {
    pthread_t thread;
    int index;
    int epoll_fd;
    uint64_t connections_served;
    uint64_t events_handled;   /* counted through the thread's argument, shown by INFO */
};

/* A parsed request: arguments point into the connection's input buffer. */
struct request {
    int argc;
    int capacity;
    const char **argv;
    size_t *lengths;
};

/* main.c */
extern struct conn *connections[max_fds];
extern struct worker workers[max_workers];
extern int worker_count;
int64_t now_ms(void);
void connection_close_later(struct conn *conn);

/* resp.c: the Redis protocol (RESP2). The request's arguments point into `data`, which an
 * inline request's quoted arguments are decoded in place of. */
enum parse_result { parse_incomplete = 0, parse_done = 1, parse_error = -1 };
enum parse_result resp_parse(char *data, size_t length, struct request *request, size_t *consumed,
                             const char **error);
void buffer_append(struct buffer *buffer, const void *bytes, size_t length);
void buffer_free(struct buffer *buffer);
void reply_simple(struct buffer *out, const char *text);
void reply_error(struct buffer *out, const char *format, ...) __attribute__((format(printf, 2, 3)));
void reply_integer(struct buffer *out, long long value);
void reply_bulk(struct buffer *out, const char *bytes, size_t length);
void reply_null(struct buffer *out);
void reply_array(struct buffer *out, long long count);

/* store.c: the sharded store. Every entry function runs with its shard locked. */
extern struct shard store[shard_count];
void store_init(void);
uint64_t store_hash(const char *key, size_t length);
struct shard *store_lock(uint64_t hash);
void store_unlock(struct shard *shard);
/* Without counting an access (OBJECT, TTL). */
struct entry *store_peek(struct shard *shard, uint64_t hash, const char *key, size_t length);
struct entry *store_find(struct shard *shard, uint64_t hash, const char *key, size_t length);
struct entry *store_find_or_add(struct shard *shard, uint64_t hash, const char *key, size_t length);
int store_delete(struct shard *shard, uint64_t hash, const char *key, size_t length);
size_t store_size(void);
void store_clear(void);
/* The value of `entry`: its bytes, in `scratch` when it has to be formatted (a v5 number). */
const char *entry_value(const struct entry *entry, char scratch[32], size_t *length);
void entry_set_value(struct entry *entry, const char *bytes, size_t length);
/* Adds `delta` to an integer value: 0, add_not_integer, or add_overflows (the value stays). */
enum { add_not_integer = -1, add_overflows = -2 };
int entry_add(struct entry *entry, int64_t delta, int64_t *result);
#if KVD_VERSION >= 5
/* The value for `bytes`: a number or inline string where it fits; a heap string otherwise, a
 * copy when `copy`, else `bytes` itself (a block from malloc that the value then owns). */
struct value value_of(const char *bytes, size_t length, int copy);
#endif
#if KVD_VERSION >= 3
size_t store_buckets(void);   /* buckets of every shard's tables: grows as they rehash */
#endif
#if KVD_VERSION >= 4
void expirer_start(void);
extern int expirer_running;
extern uint64_t expired_keys;   /* removed by expiry, lazily or by the expiry thread */
#endif

/* commands.c */
void execute(struct conn *conn, const struct request *request);

#endif
