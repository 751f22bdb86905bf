/* churn: malloc/free pairs of mixed sizes, each made at the bottom of a
 * freshly built 16-deep stack whose chain of helpers changes from one pair to
 * the next (143 chain patterns), so no two consecutive allocations share a
 * stack.
 *
 *   churn [THREADS [PAIRS]]      defaults: 1, 3000000
 *
 * PAIRS is the total, shared out evenly between the threads.
 *
 * With THREADS > 1 every thread runs the same loop, and one block in eight is
 * handed to the next thread (a lock-free single-producer ring) which frees it
 * from its own leaf: an eighth of all frees are cross-thread. Prints "allocs=N frees=M" at the end,
 * counting only the workload's own calls. */
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define CHAIN 14        /* helper frames; + leaf + the loop's frame = 16 */
#define SLOTS 256       /* blocks live for SLOTS iterations */
#define RING 4096
#define HANDOFF 8      /* with THREADS > 1, one block in HANDOFF is freed by the next thread */

struct ring {
    _Atomic size_t head __attribute__((aligned(64)));  /* consumer */
    _Atomic size_t tail __attribute__((aligned(64)));  /* producer */
    _Atomic int producer_done;
    void *buf[RING];
};

struct worker {
    int id, nthreads;
    long pairs;
    struct ring *in, *out;  /* in: blocks to free; out: blocks handed on */
    void *slots[SLOTS];
    unsigned long allocs, frees;
    pthread_t th;
};

static int ring_push(struct ring *r, void *p) {
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (t - atomic_load_explicit(&r->head, memory_order_acquire) == RING)
        return 0;
    r->buf[t % RING] = p;
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return 1;
}

static void *ring_pop(struct ring *r) {
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (h == atomic_load_explicit(&r->tail, memory_order_acquire))
        return NULL;
    void *p = r->buf[h % RING];
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    return p;
}

FRAME static void drain_some(struct worker *w, int max) {
    void *p;
    while (max-- > 0 && (p = ring_pop(w->in)) != NULL) {
        free(p);
        w->frees++;
    }
}

FRAME static uint64_t leaf(struct worker *w, uint64_t i, uint64_t h) {
    size_t size = bench_sizes[(h >> 12) & 15];
    char *p = malloc(size);
    if (!p)
        abort();
    p[0] = (char)i;
    p[size - 1] = (char)h;
    KEEP(p);
    w->allocs++;
    void **slot = &w->slots[i % SLOTS];
    void *old = *slot;
    *slot = p;
    if (old) {
        if (w->nthreads > 1 && (i % HANDOFF) == 0) {
            while (!ring_push(w->out, old)) {
                drain_some(w, RING);
                sched_yield();
            }
        } else {
            free(old);
            w->frees++;
        }
    }
    if (w->nthreads > 1 && (i % HANDOFF) == HANDOFF / 2)
        drain_some(w, 2);
    return (uint64_t)(uintptr_t)p;
}

/* Which helper sits at depth d for pair i: the chain switches between the
 * two helpers at two points that move with i (13 x 11 patterns), so every
 * pair's stack differs from the previous pair's, yet the branches stay
 * predictable enough that the bare loop costs what glibc costs. */
static inline uint32_t chain_mask(uint64_t i) {
    uint32_t k1 = (uint32_t)(i % 13), k2 = (uint32_t)((i / 13) % 11) + 2;
    return ((1u << k1) - 1) ^ ((1u << k2) - 1);  /* bit d: step_a at depth d */
}

FRAME static uint64_t step_a(struct worker *w, int d, uint64_t i, uint64_t h, uint32_t m);
FRAME static uint64_t step_b(struct worker *w, int d, uint64_t i, uint64_t h, uint32_t m);

/* step_a and step_b: the same frame; they differ only in the work after the
 * call (so they stay two functions and the frame stays: no tail call). */
#define STEP_FN(name, result)                                                     \
    FRAME static uint64_t name(struct worker *w, int d, uint64_t i, uint64_t h,   \
                               uint32_t m) {                                      \
        uint64_t r;                                                               \
        if (d == 0)                                                               \
            r = leaf(w, i, h);                                                    \
        else if ((m >> d) & 1)                                                    \
            r = step_a(w, d - 1, i, h, m);                                        \
        else                                                                      \
            r = step_b(w, d - 1, i, h, m);                                        \
        KEEP(r);                                                                  \
        return result;                                                            \
    }
STEP_FN(step_a, r + 1)
STEP_FN(step_b, r ^ 3)

FRAME static void *run(void *arg) {
    struct worker *w = arg;
    uint64_t acc = 0;
    for (long i = 0; i < w->pairs; i++) {
        uint64_t h = bench_mix((uint64_t)i * (uint64_t)(w->id + 1));
        uint32_t m = chain_mask((uint64_t)i);
        acc += (i & 1) ? step_a(w, CHAIN - 1, (uint64_t)i, h, m)
                       : step_b(w, CHAIN - 1, (uint64_t)i, h, m);
    }
    KEEP(acc);
    for (int s = 0; s < SLOTS; s++) {
        if (w->slots[s]) {
            free(w->slots[s]);
            w->frees++;
            w->slots[s] = NULL;
        }
    }
    if (w->nthreads > 1) {
        atomic_store_explicit(&w->out->producer_done, 1, memory_order_release);
        for (;;) {
            int done = atomic_load_explicit(&w->in->producer_done, memory_order_acquire);
            void *p = ring_pop(w->in);
            if (p) {
                free(p);
                w->frees++;
            } else if (done) {
                break;
            } else {
                sched_yield();
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    int nthreads = (int)bench_arg(argc, argv, 1, 1);
    long pairs = bench_arg(argc, argv, 2, 3000000);
    if (nthreads < 1 || nthreads > 64 || pairs < 0) {
        fprintf(stderr, "usage: churn [THREADS [PAIRS]]\n");
        return 2;
    }
    static struct worker workers[64];
    static struct ring rings[64];
    for (int t = 0; t < nthreads; t++) {
        workers[t].id = t;
        workers[t].nthreads = nthreads;
        workers[t].pairs = pairs / nthreads + (t < pairs % nthreads);
        workers[t].in = &rings[t];
        workers[t].out = &rings[(t + 1) % nthreads];
    }
    if (nthreads == 1) {
        run(&workers[0]);
    } else {
        for (int t = 0; t < nthreads; t++)
            if (pthread_create(&workers[t].th, NULL, run, &workers[t]) != 0) {
                perror("pthread_create");
                return 1;
            }
        for (int t = 0; t < nthreads; t++)
            pthread_join(workers[t].th, NULL);
    }
    unsigned long allocs = 0, frees = 0;
    for (int t = 0; t < nthreads; t++) {
        allocs += workers[t].allocs;
        frees += workers[t].frees;
    }
    bench_report_cpu();
    printf("allocs=%lu frees=%lu\n", allocs, frees);
    return allocs == frees ? 0 : 1;
}
