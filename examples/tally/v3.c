/* tally, version 3: keys become heap strings of any length. An array that becomes a pointer
 * cannot be converted by default rules: `molt check` says a transformer is needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum mode { MODE_COUNT, MODE_QUIET, MODE_VERBOSE };

struct entry {
    char *key;             /* was char[32]: needs a transformer */
    long count;
    time_t last_seen;
    struct entry *next;
};

static struct entry *buckets[128];
static unsigned long commands;
static unsigned long evictions;
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
    e->key = strdup(key);
    e->next = *slot;
    *slot = e;
    return e;
}

int main(void)
{
    char line[4096], word[4096];
    while (fgets(line, sizeof line, stdin)) {
        commands++;
        if (sscanf(line, "add %4095s", word) == 1) {
            struct entry *e = find(word, 1);
            e->count++;
            e->last_seen = time(NULL);
        } else if (sscanf(line, "get %4095s", word) == 1) {
            struct entry *e = find(word, 0);
            printf("%s %ld\n", word, e ? e->count : 0L);
        } else if (sscanf(line, "drop %4095s", word) == 1) {
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
