/* malloc/free pairs, built twice: against plain glibc and against the Molt runtime (which
 * interposes the malloc family to track block sizes). Prints ns per pair for several sizes,
 * with 1 and 2 threads. Target (issue 4): the runtime within 10 ns per pair of glibc. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef WITH_MOLT
#include <molt/molt.h>
#endif

enum { pairs = 5000000 };

struct job {
    size_t size;
    double ns_per_pair;
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void *run(void *argument)
{
    struct job *job = argument;
    void *volatile keep;
    double start = now();
    for (int i = 0; i < pairs; ++i) {
        void *block = malloc(job->size);
        *(volatile char *)block = 1;
        keep = block;
        free(block);
    }
    (void)keep;
    job->ns_per_pair = (now() - start) / pairs;
    return NULL;
}

static double measure(size_t size, int threads)
{
    pthread_t handles[2];
    struct job jobs[2] = {{size, 0}, {size, 0}};
    for (int t = 0; t < threads; ++t)
        pthread_create(&handles[t], NULL, run, &jobs[t]);
    double total = 0;
    for (int t = 0; t < threads; ++t) {
        pthread_join(handles[t], NULL);
        total += jobs[t].ns_per_pair;
    }
    return total / threads;
}

int main(void)
{
#ifdef WITH_MOLT
    const char *name = "molt ";
    void *probe = calloc(1, 24);
    if (molt_block_size(probe) != 24) {
        fprintf(stderr, "malloc_bench: the runtime does not track blocks\n");
        return 1;
    }
    free(probe);
#else
    const char *name = "glibc";
#endif
    const size_t sizes[] = {16, 64, 256, 4096};
    for (int threads = 1; threads <= 2; ++threads)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
            double best = 1e9;
            for (int round = 0; round < 3; ++round) {
                double ns = measure(sizes[i], threads);
                if (ns < best)
                    best = ns;
            }
            printf("%s threads=%d size=%-5zu %6.2f ns/pair\n", name, threads, sizes[i], best);
        }
    return 0;
}
