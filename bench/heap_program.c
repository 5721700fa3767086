/* The program of bench/heap_bench.sh: a linked list of N nodes, built by version 1. Version 2
 * is built twice: with the same node type (CHANGED undefined: an update that converts nothing)
 * and with a member added (CHANGED defined: every node is converted).
 * Usage: heap_program N READY_FILE */
#include <molt/molt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct node {
    long key;
#ifdef CHANGED
    long hits;
#endif
    struct node *next;
};

static struct node *list;
static long length;

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    if (!molt_is_updating()) {
        length = atol(argv[1]);
        for (long i = 0; i < length; ++i) {
            struct node *node = malloc(sizeof *node);
            node->key = i;
            node->next = list;
            list = node;
        }
        FILE *ready = fopen(argv[2], "w");
        fprintf(ready, "%d\n", getpid());
        fclose(ready);
    }
    int updated = molt_is_updating();
    for (;;) {
        molt_update_point("main");
        if (updated) {  /* after the first update point: outside the measured pause */
            long count = 0;
            for (struct node *node = list; node; node = node->next)
                count++;
            if (count != length)
                fprintf(stderr, "heap_program: %ld nodes after the update, expected %ld\n", count, length);
            updated = 0;
        }
        struct timespec pause = {0, 2 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}
