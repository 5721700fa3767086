/* transform_v2.c: v1 -> v2. Entries gained `hits` and `last_access_ms`; Molt's defaults copy the
 * old members and set the new ones to zero. Zero hits is right, but a last access in 1970 is not:
 * this transformer dates every inherited entry to the update, so OBJECT IDLETIME starts there. */
#include "kvd.h"

#ifdef KVD_FAULTY_TRANSFORMER
/* A deliberately broken build for the rollback test: refuses every entry after the 1000th, so the
 * update fails half-way through the conversion and kvd v1 must carry on with all of its keys. */
static unsigned long entries_seen;
#endif

/* The time of the update, read once when the update loads this version (its constructors run
 * then, just before the pause), not once per entry: a million reads of the clock take 20 ms. */
static int64_t update_ms;
__attribute__((constructor)) static void read_update_time(void) { update_ms = now_ms(); }

static const char *entry_gets_access_time(void *to, const void *from)
{
    (void)from;
    struct entry *entry = to;
#ifdef KVD_FAULTY_TRANSFORMER
    if (++entries_seen > 1000)
        return "faulty v2: refusing entries after the 1000th (a test of rollback)";
#endif
    entry->last_access_ms = update_ms;
    return NULL;
}
#ifdef KVD_FAULTY_TRANSFORMER
MOLT_TYPE_TRANSFORMER("struct entry", entry_gets_access_time);   /* it counts: one thread at a time */
#else
MOLT_TYPE_TRANSFORMER_PARALLEL("struct entry", entry_gets_access_time);   /* no state of its own */
#endif
