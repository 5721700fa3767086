/* The cost of an update point in a tight loop, against the same loop without one.
 * Prints nanoseconds per iteration of each loop and the difference. Target (issue 3): < 1 ns.
 * Built against the runtime (libmolt.so) like an application. */
#include <molt/molt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* The work both loops do: small, dependent, not optimised away. */
static inline unsigned long step(unsigned long x) { return x * 6364136223846793005UL + 1442695040888963407UL; }

__attribute__((noinline)) static unsigned long plain_loop(long iterations, unsigned long x)
{
    for (long i = 0; i < iterations; ++i) {
        x = step(x);
        __asm__ volatile("" : "+r"(x));
    }
    return x;
}

__attribute__((noinline)) static unsigned long loop_with_update_point(long iterations, unsigned long x)
{
    for (long i = 0; i < iterations; ++i) {
        molt_update_point("loop");
        x = step(x);
        __asm__ volatile("" : "+r"(x));
    }
    return x;
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 500000000L;
    double best_plain = 1e9, best_point = 1e9;
    unsigned long sink = 1;
    for (int round = 0; round < 5; ++round) {
        double start = seconds();
        sink = plain_loop(iterations, sink);
        double plain = (seconds() - start) / (double)iterations * 1e9;
        start = seconds();
        sink = loop_with_update_point(iterations, sink);
        double point = (seconds() - start) / (double)iterations * 1e9;
        if (plain < best_plain) best_plain = plain;
        if (point < best_point) best_point = point;
    }
    printf("update point: plain loop %.3f ns/iteration, with molt_update_point %.3f ns/iteration, "
           "cost %.3f ns (target < 1 ns) [%lu]\n",
           best_plain, best_point, best_point - best_plain, sink & 1);
    return 0;
}
