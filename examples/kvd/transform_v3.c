/* transform_v3.c: v2 -> v3. Each shard's fixed array of 1024 buckets becomes a resizable table.
 * Molt cannot guess how an array becomes a pointer and a size, so this transformer says it: the
 * new table starts with a copy of the old buckets (same hash, same bucket count, so the chains
 * stay valid as they are) and grows from there by incremental rehashing. It reads the old table
 * through kvd_v2_types.h, which `molt old-types kvd-v2.so` writes at build time. The old table is
 * only read: if the update fails, v2 carries on with it untouched. */
#include <stdlib.h>
#include <string.h>

#include "kvd.h"
#include "kvd_v2_types.h"

static const char *table_from_fixed_buckets(void *to, const void *from)
{
    struct table *table = to;
    const struct molt_old_table *old = from;
    _Static_assert(sizeof old->buckets == first_buckets * sizeof(struct entry *), "v2 had 1024 buckets");
    table->buckets[0] = malloc(sizeof old->buckets);
    if (!table->buckets[0])
        return "out of memory for a shard's bucket array";
    memcpy(table->buckets[0], old->buckets, sizeof old->buckets);
    table->size[0] = first_buckets;
    return NULL;
}
MOLT_TYPE_TRANSFORMER("struct table", table_from_fixed_buckets);
