/* store.c: the sharded in-memory store. A key's hash picks its shard (its low bits) and its
 * bucket in that shard's table (the bits above). Each shard has its own lock, so workers serving
 * different keys rarely wait for each other. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvd.h"

struct shard store[shard_count];

void store_init(void)
{
    for (int i = 0; i < shard_count; i++) {
        pthread_mutex_init(&store[i].lock, NULL);
#if KVD_VERSION >= 3
        store[i].table.buckets[0] = calloc(first_buckets, sizeof(struct entry *));
        store[i].table.size[0] = first_buckets;
        if (!store[i].table.buckets[0])
            abort();
#endif
    }
}

/* FNV-1a with a final mix. Every version must hash alike: an update keeps the buckets. */
uint64_t store_hash(const char *key, size_t length)
{
    uint64_t hash = 0xcbf29ce484222325u;
    for (size_t i = 0; i < length; i++)
        hash = (hash ^ (unsigned char)key[i]) * 0x100000001b3u;
    hash ^= hash >> 33;
    hash *= 0xff51afd7ed558ccdu;
    return hash ^ (hash >> 33);
}

static size_t bucket_of(uint64_t hash, size_t size) { return (size_t)(hash >> 6) & (size - 1); }

struct shard *store_lock(uint64_t hash)
{
    struct shard *shard = &store[hash % shard_count];
    pthread_mutex_lock(&shard->lock);
    return shard;
}

void store_unlock(struct shard *shard) { pthread_mutex_unlock(&shard->lock); }

static void entry_free(struct entry *entry)
{
    free(entry->key);
#if KVD_VERSION >= 5
    if (entry->val.kind == value_heap)
        free(entry->val.as.heap.bytes);
#else
    free(entry->value);
#endif
    free(entry);
}

#if KVD_VERSION >= 3
static int rehashing(const struct table *table) { return table->size[1] != 0; }

/* Moves up to `steps` non-empty buckets of the old table to the new one; when the old table is
 * empty, the new one takes its place. */
static void rehash_step(struct table *table, int steps)
{
    int empty_visits = steps * 10;
    while (steps > 0 && rehashing(table)) {
        if (table->rehash_next == table->size[0]) {
            free(table->buckets[0]);
            table->buckets[0] = table->buckets[1];
            table->size[0] = table->size[1];
            table->buckets[1] = NULL;
            table->size[1] = 0;
            table->rehash_next = 0;
            return;
        }
        struct entry *entry = table->buckets[0][table->rehash_next];
        table->buckets[0][table->rehash_next++] = NULL;
        if (!entry && --empty_visits > 0)
            continue;
        while (entry) {
            struct entry *next = entry->next;
            struct entry **bucket = &table->buckets[1][bucket_of(entry->hash, table->size[1])];
            entry->next = *bucket;
            *bucket = entry;
            entry = next;
        }
        steps--;
    }
}

static void grow_if_full(struct shard *shard)
{
    struct table *table = &shard->table;
    if (rehashing(table) || shard->count < table->size[0])
        return;
    struct entry **bigger = calloc(table->size[0] * 2, sizeof *bigger);
    if (!bigger)
        return;   /* stays at this size: longer chains, still correct */
    table->buckets[1] = bigger;
    table->size[1] = table->size[0] * 2;
    table->rehash_next = 0;
}

/* The link that points at `key`'s entry (or at the NULL that ends its chain) in table `which`. */
static struct entry **chain_link(struct table *table, int which, uint64_t hash, const char *key, size_t length)
{
    struct entry **link = &table->buckets[which][bucket_of(hash, table->size[which])];
    while (*link && !((*link)->hash == hash && (*link)->key_length == length && memcmp((*link)->key, key, length) == 0))
        link = &(*link)->next;
    return link;
}

static struct entry **find_link(struct shard *shard, uint64_t hash, const char *key, size_t length)
{
    struct table *table = &shard->table;
    rehash_step(table, 1);
    struct entry **link = chain_link(table, 0, hash, key, length);
    if (!*link && rehashing(table))
        link = chain_link(table, 1, hash, key, length);
    return link;
}

static struct entry **insert_link(struct shard *shard, uint64_t hash)
{
    grow_if_full(shard);
    struct table *table = &shard->table;
    int which = rehashing(table) ? 1 : 0;
    return &table->buckets[which][bucket_of(hash, table->size[which])];
}
#else
static struct entry **find_link(struct shard *shard, uint64_t hash, const char *key, size_t length)
{
    struct entry **link = &shard->table.buckets[bucket_of(hash, first_buckets)];
    while (*link && !((*link)->hash == hash && (*link)->key_length == length && memcmp((*link)->key, key, length) == 0))
        link = &(*link)->next;
    return link;
}

static struct entry **insert_link(struct shard *shard, uint64_t hash)
{
    return &shard->table.buckets[bucket_of(hash, first_buckets)];
}
#endif

static void unlink_entry(struct shard *shard, struct entry **link)
{
    struct entry *entry = *link;
    *link = entry->next;
    shard->count--;
    entry_free(entry);
}

#if KVD_VERSION >= 4
static int expired(const struct entry *entry, int64_t now)
{
    return entry->expires_at_ms != 0 && entry->expires_at_ms <= now;
}
#endif

struct entry *store_peek(struct shard *shard, uint64_t hash, const char *key, size_t length)
{
    struct entry **link = find_link(shard, hash, key, length);
#if KVD_VERSION >= 4
    if (*link && expired(*link, now_ms())) {   /* expired keys go on first sight */
        unlink_entry(shard, link);
        __atomic_add_fetch(&expired_keys, 1, __ATOMIC_RELAXED);
        return NULL;
    }
#endif
    return *link;
}

struct entry *store_find(struct shard *shard, uint64_t hash, const char *key, size_t length)
{
    struct entry *entry = store_peek(shard, hash, key, length);
#if KVD_VERSION >= 2
    if (entry) {
        entry->hits++;
        entry->last_access_ms = now_ms();
    }
#endif
    return entry;
}

struct entry *store_find_or_add(struct shard *shard, uint64_t hash, const char *key, size_t length)
{
    struct entry *entry = store_find(shard, hash, key, length);
    if (entry)
        return entry;
    entry = calloc(1, sizeof *entry);
    char *copy = malloc(length + 1);
    if (!entry || !copy) {
        free(entry);
        free(copy);
        return NULL;
    }
    memcpy(copy, key, length);
    copy[length] = '\0';
    entry->hash = hash;
    entry->key = copy;
    entry->key_length = length;
#if KVD_VERSION >= 2
    entry->hits = 1;
    entry->last_access_ms = now_ms();
#endif
    struct entry **link = insert_link(shard, hash);
    entry->next = *link;
    *link = entry;
    shard->count++;
    return entry;
}

int store_delete(struct shard *shard, uint64_t hash, const char *key, size_t length)
{
    if (!store_peek(shard, hash, key, length))
        return 0;
    unlink_entry(shard, find_link(shard, hash, key, length));
    return 1;
}

#if KVD_VERSION >= 3
size_t store_buckets(void)
{
    size_t total = 0;
    for (int i = 0; i < shard_count; i++) {
        pthread_mutex_lock(&store[i].lock);
        total += store[i].table.size[0] + store[i].table.size[1];
        pthread_mutex_unlock(&store[i].lock);
    }
    return total;
}
#endif

size_t store_size(void)
{
    size_t total = 0;
    for (int i = 0; i < shard_count; i++)
        total += __atomic_load_n(&store[i].count, __ATOMIC_RELAXED);
    return total;
}

static void free_chains(struct entry **buckets, size_t size)
{
    for (size_t i = 0; i < size; i++)
        for (struct entry *entry = buckets[i], *next; entry; entry = next) {
            next = entry->next;
            entry_free(entry);
        }
    memset(buckets, 0, size * sizeof *buckets);
}

void store_clear(void)
{
    for (int i = 0; i < shard_count; i++) {
        struct shard *shard = &store[i];
        pthread_mutex_lock(&shard->lock);
#if KVD_VERSION >= 3
        for (int which = 0; which < 2; which++)
            if (shard->table.size[which])
                free_chains(shard->table.buckets[which], shard->table.size[which]);
#else
        free_chains(shard->table.buckets, first_buckets);
#endif
        shard->count = 0;
        pthread_mutex_unlock(&shard->lock);
    }
}

/* Integers as Redis reads them: optional '-', digits, no leading zero, within int64_t. */
static int parse_int64(const char *bytes, size_t length, int64_t *result)
{
    if (length == 0 || length > 20 || (bytes[0] == '0' && length > 1) || (bytes[0] == '-' && length == 1))
        return -1;
    if (bytes[0] == '-' && bytes[1] == '0')
        return -1;
    char text[24];
    memcpy(text, bytes, length);
    text[length] = '\0';
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno || end != text + length || !(text[0] == '-' || (text[0] >= '0' && text[0] <= '9')))
        return -1;
    *result = value;
    return 0;
}

static int add_checked(int64_t value, int64_t delta, int64_t *result)
{
    return __builtin_add_overflow(value, delta, result) ? add_overflows : 0;
}

#if KVD_VERSION >= 5
const char *entry_value(const struct entry *entry, char scratch[32], size_t *length)
{
    switch (entry->val.kind) {
    case value_number:
        *length = (size_t)snprintf(scratch, 32, "%" PRId64, entry->val.as.number);
        return scratch;
    case value_inline:
        *length = entry->val.inline_length;
        return entry->val.as.inline_bytes;
    default:
        *length = entry->val.as.heap.length;
        return entry->val.as.heap.bytes ? entry->val.as.heap.bytes : "";
    }
}

struct value value_of(const char *bytes, size_t length, int copy)
{
    struct value value = {0};
    int64_t number;
    if (parse_int64(bytes, length, &number) == 0) {
        value.kind = value_number;
        value.as.number = number;
    } else if (length <= inline_capacity) {
        value.kind = value_inline;
        value.inline_length = (unsigned char)length;
        memcpy(value.as.inline_bytes, bytes, length);
    } else {
        value.kind = value_heap;
        value.as.heap.bytes = (char *)bytes;
        value.as.heap.length = length;
        if (copy) {
            value.as.heap.bytes = malloc(length + 1);
            if (!value.as.heap.bytes)
                abort();
            memcpy(value.as.heap.bytes, bytes, length);
            value.as.heap.bytes[length] = '\0';
        }
    }
    return value;
}

void entry_set_value(struct entry *entry, const char *bytes, size_t length)
{
    struct value value = value_of(bytes, length, 1);
    if (entry->val.kind == value_heap)
        free(entry->val.as.heap.bytes);
    entry->val = value;
}

int entry_add(struct entry *entry, int64_t delta, int64_t *result)
{
    int64_t value = 0;
    if (entry->val.kind == value_number)
        value = entry->val.as.number;
    else if (entry->val.kind == value_inline || entry->val.as.heap.bytes) {
        char scratch[32];
        size_t length;
        const char *bytes = entry_value(entry, scratch, &length);
        if (parse_int64(bytes, length, &value) != 0)
            return add_not_integer;
    }
    if (add_checked(value, delta, result) != 0)
        return add_overflows;
    if (entry->val.kind == value_heap)
        free(entry->val.as.heap.bytes);
    entry->val = (struct value){.kind = value_number, .as.number = *result};
    return 0;
}
#else
const char *entry_value(const struct entry *entry, char scratch[32], size_t *length)
{
    (void)scratch;
    *length = entry->value_length;
    return entry->value ? entry->value : "";
}

void entry_set_value(struct entry *entry, const char *bytes, size_t length)
{
    char *copy = malloc(length + 1);
    if (!copy)
        abort();
    memcpy(copy, bytes, length);
    copy[length] = '\0';
    free(entry->value);
    entry->value = copy;
    entry->value_length = length;
}

int entry_add(struct entry *entry, int64_t delta, int64_t *result)
{
    int64_t value = 0;
    if (entry->value && parse_int64(entry->value, entry->value_length, &value) != 0)
        return add_not_integer;
    if (add_checked(value, delta, result) != 0)
        return add_overflows;
    char text[32];
    int length = snprintf(text, sizeof text, "%" PRId64, *result);
    entry_set_value(entry, text, (size_t)length);
    return 0;
}
#endif

#if KVD_VERSION >= 4
int expirer_running;
uint64_t expired_keys;
static pthread_t expirer_thread;

/* Removes expired entries from an eighth of a shard's buckets, from where it stopped: every key
 * is looked at within a second, whatever the table's size. */
static void sweep_shard(struct shard *shard, int64_t now)
{
    pthread_mutex_lock(&shard->lock);
    struct table *table = &shard->table;
    size_t buckets_to_visit = table->size[0] / 8 + 1;
    for (size_t visited = 0; visited < buckets_to_visit; visited++) {
        for (int which = 0; which < 2; which++) {
            if (!table->size[which])
                continue;
            struct entry **link = &table->buckets[which][shard->expire_cursor & (table->size[which] - 1)];
            while (*link) {
                if (expired(*link, now)) {
                    unlink_entry(shard, link);
                    __atomic_add_fetch(&expired_keys, 1, __ATOMIC_RELAXED);
                } else
                    link = &(*link)->next;
            }
        }
        shard->expire_cursor++;
    }
    pthread_mutex_unlock(&shard->lock);
}

/* The expiry thread (new in v4): ten times a second, sweeps an eighth of every shard. */
static void *expirer_main(void *argument)
{
    (void)argument;
    for (;;) {
        molt_update_point("expirer");
        struct timespec pause = {0, 100 * 1000 * 1000};
        if (nanosleep(&pause, NULL) != 0)
            continue;   /* EINTR: an update woke us, straight to the update point */
        int64_t now = now_ms();
        for (int i = 0; i < shard_count; i++) {
            /* a sweep of a big store takes milliseconds: an update waits for one shard at most
             * (the new version starts its sweep over, which is harmless) */
            molt_update_point("expirer");
            sweep_shard(&store[i], now);
        }
    }
    return NULL;
}

void expirer_start(void)
{
    if (pthread_create(&expirer_thread, NULL, expirer_main, NULL) == 0)
        expirer_running = 1;
}
#endif
