/* tally, version 2: what a real next release changes. Counts become 64-bit, entries remember
 * when they were last seen, the table doubles, a new mode and an eviction counter appear.
 * Every one of these changes is convertible by Molt's default rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum mode { MODE_COUNT, MODE_QUIET, MODE_VERBOSE };

struct entry {
    char key[32];
    long count;            /* was int: widened */
    time_t last_seen;      /* new member: zeroed */
    struct entry *next;
};

static struct entry *buckets[128];   /* was 64: grown, new slots zeroed */
static unsigned long commands;
static unsigned long evictions;      /* new variable */
enum mode mode = MODE_COUNT;

static unsigned hash(const char *key)
{
    unsigned h = 5381;
    while (*key)
        h = h * 33 + (unsigned char)*key++;
    return h;
}

static struct entry *find(const char *key, int create)
{
    struct entry **slot = &buckets[hash(key) % 128];
    for (struct entry *e = *slot; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    if (!create)
        return NULL;
    struct entry *e = calloc(1, sizeof *e);
    snprintf(e->key, sizeof e->key, "%s", key);
    e->next = *slot;
    *slot = e;
    return e;
}

int main(void)
{
    char line[128], word[64];
    while (fgets(line, sizeof line, stdin)) {
        commands++;
        if (sscanf(line, "add %63s", word) == 1) {
            struct entry *e = find(word, 1);
            e->count++;
            e->last_seen = time(NULL);
        } else if (sscanf(line, "get %63s", word) == 1) {
            struct entry *e = find(word, 0);
            printf("%s %ld\n", word, e ? e->count : 0L);
        } else if (sscanf(line, "drop %63s", word) == 1) {
            struct entry **slot = &buckets[hash(word) % 128];
            for (; *slot; slot = &(*slot)->next)
                if (strcmp((*slot)->key, word) == 0) {
                    struct entry *gone = *slot;
                    *slot = gone->next;
                    free(gone);
                    evictions++;
                    break;
                }
        } else if (strncmp(line, "stats", 5) == 0)
            printf("commands %lu evictions %lu\n", commands, evictions);
        else if (strncmp(line, "quit", 4) == 0)
            break;
    }
    return 0;
}
