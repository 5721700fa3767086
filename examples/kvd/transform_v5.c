/* transform_v5.c: v4 -> v5. An entry's value was a heap string; now it is a number, an inline
 * small string or a heap string (struct value). Molt copies the members that kept their name and
 * type (key, hits, expiry...); this transformer builds `val` from the old `value`. A long string
 * keeps its old block (strings did not change type), so nothing large is copied; the old entry
 * is only read, so a failed update leaves v4 as it was. */
#include "kvd.h"
#include "kvd_v4_types.h"

static const char *entry_value_from_string(void *to, const void *from)
{
    struct entry *entry = to;
    const struct molt_old_entry *old = from;
    entry->val = value_of(old->value ? old->value : "", old->value ? old->value_length : 0, 0);
    return NULL;
}
MOLT_TYPE_TRANSFORMER_PARALLEL("struct entry", entry_value_from_string);   /* no state of its own */
