/* tally, version 1: counts words read from standard input in a chained hash table.
 * The demo (`make demo`) compares this version with v2.c and v3.c using `molt diff` and
 * `molt check`. Commands: "add WORD", "get WORD", "stats", "quit". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mode { MODE_COUNT, MODE_QUIET };

struct entry {
    char key[32];
    int count;
    struct entry *next;
};

static struct entry *buckets[64];
static unsigned long commands;
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
    struct entry **slot = &buckets[hash(key) % 64];
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
        if (sscanf(line, "add %63s", word) == 1)
            find(word, 1)->count++;
        else if (sscanf(line, "get %63s", word) == 1) {
            struct entry *e = find(word, 0);
            printf("%s %d\n", word, e ? e->count : 0);
        } else if (strncmp(line, "stats", 5) == 0)
            printf("commands %lu\n", commands);
        else if (strncmp(line, "quit", 4) == 0)
            break;
    }
    return 0;
}
