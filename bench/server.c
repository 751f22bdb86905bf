/* server: a long-running loop that allocates under a stable deep stack.
 *
 *   server [ALLOCS]      default 3000000
 *
 * main -> 20 nested frames (a request-processing framework) -> the event
 * loop -> a short chain of helpers that changes from one allocation to the
 * next (one of 4 handlers, then one of 2 builders or none) -> malloc: about
 * 24 frames, of which only the last 2-3 change. Each block lives for 1024
 * allocations (a window of in-flight requests), so a free follows every
 * allocation. Prints "allocs=N frees=M". */
#include "common.h"

#include <stdio.h>

#define NEST 20
#define WINDOW 1024

static void *window[WINDOW];
static unsigned long allocs, frees;

FRAME static void *build_small(uint64_t h) {
    size_t size = bench_sizes[h & 7];
    char *p = malloc(size);
    if (!p)
        abort();
    p[0] = (char)h;
    KEEP(p);
    return p;
}

FRAME static void *build_large(uint64_t h) {
    size_t size = bench_sizes[8 + (h & 7)];
    char *p = malloc(size);
    if (!p)
        abort();
    p[size - 1] = (char)h;
    KEEP(p);
    return p;
}

FRAME static void *handle_get(uint64_t h) {
    void *p = build_small(h);
    KEEP(p);
    return p;
}

FRAME static void *handle_put(uint64_t h) {
    void *p = (h & 16) ? build_large(h) : build_small(h);
    KEEP(p);
    return p;
}

FRAME static void *handle_list(uint64_t h) {
    void *p = build_large(h);
    KEEP(p);
    return p;
}

FRAME static void *handle_ping(uint64_t h) {
    char *p = malloc(32); /* allocates directly: the shortest chain */
    if (!p)
        abort();
    p[0] = (char)h;
    KEEP(p);
    return p;
}

FRAME static void event_loop(long n) {
    for (long i = 0; i < n; i++) {
        uint64_t h = bench_mix((uint64_t)i);
        void *p;
        switch ((h >> 8) & 3) {
        case 0: p = handle_get(h); break;
        case 1: p = handle_put(h); break;
        case 2: p = handle_list(h); break;
        default: p = handle_ping(h); break;
        }
        allocs++;
        void **slot = &window[i % WINDOW];
        if (*slot) {
            free(*slot);
            frees++;
        }
        *slot = p;
    }
    for (int s = 0; s < WINDOW; s++) {
        if (window[s]) {
            free(window[s]);
            frees++;
            window[s] = NULL;
        }
    }
}

FRAME static long nest(int d, long n) {
    if (d == 0)
        event_loop(n);
    else
        nest(d - 1, n);
    KEEP(n);
    return n + d; /* no tail call: each level keeps its frame */
}

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 3000000);
    if (n < 0) {
        fprintf(stderr, "usage: server [ALLOCS]\n");
        return 2;
    }
    nest(NEST - 1, n);
    bench_report_cpu();
    printf("allocs=%lu frees=%lu\n", allocs, frees);
    return allocs == frees ? 0 : 1;
}
