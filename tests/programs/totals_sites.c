/* Totals per call site (issue 12): allocations, frees and temporaries
 * (freed before the same thread allocates anything else), with malloc,
 * calloc, realloc, a helper whose block is temporary while its caller's is
 * not, and blocks freed on another thread. Every allocation is made in a
 * function of its own (site_*), so the test finds a site's stack by the
 * function its first frame returns to.
 *
 * Prints, for the exit snapshot, one line per site:
 *   TOTAL <function> <allocs> <alloc_bytes> <frees> <freed_bytes> <temporary> <temporary_bytes>
 * stdout is unbuffered: printf allocates nothing. */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

#define NI __attribute__((noinline, noclone))

static void *volatile kept[64];

NI void *site_tmp(void) { return touch(malloc(111), 111); }
NI void *site_calloc(void) { return touch(calloc(3, 37), 111); }
NI void *site_marker(void) { return touch(malloc(77), 77); }
NI void *site_first(void) { return touch(malloc(50), 50); }
NI void *site_grow(void *p) { return touch(realloc(p, 5000), 5000); }
NI void *site_more(void *p) { return touch(realloc(p, 9000), 9000); }
NI void *site_inner(void) { return touch(malloc(222), 222); }
NI void helper(void) { free(site_inner()); }
NI void *site_caller(void) { return touch(malloc(333), 333); }
NI void *site_kept(void) { return touch(malloc(444), 444); }
NI void *site_handoff(void) { return touch(malloc(555), 555); }
NI void *site_worker(void) { return touch(malloc(666), 666); }

static void total(const char *f, long a, long ab, long fr, long fb, long t, long tb) {
    printf("TOTAL %s %ld %ld %ld %ld %ld %ld\n", f, a, ab, fr, fb, t, tb);
}

/* The worker: 0 idle; 1 free `handed`; 2 allocate one block of its own. */
static _Atomic int order;
static void *volatile handed;

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        int o;
        while ((o = atomic_load(&order)) == 0) {
        }
        if (o == 1) free(handed);
        else if (o == 2) kept[40 + (int)(intptr_t)handed] = site_worker();
        else return NULL;
        atomic_store(&order, 0);
    }
}

static void tell(int o) {
    atomic_store(&order, o);
    while (atomic_load(&order) != 0) {
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker, NULL) == 0);

    for (int i = 0; i < 10; i++) free(site_tmp());
    total("site_tmp", 10, 1110, 10, 1110, 10, 1110);

    for (int i = 0; i < 7; i++) kept[i] = site_calloc();
    kept[7] = site_marker(); /* the latest: the calloc blocks are not temporary */
    for (int i = 0; i < 7; i++) free(kept[i]);
    total("site_calloc", 7, 777, 7, 777, 0, 0);

    /* realloc: one free (the old block) and one allocation (the new). */
    for (int i = 0; i < 5; i++) {
        void *p = site_first();
        if (i < 2) kept[8 + i] = site_marker(); /* then site_first's block is not the latest */
        p = site_grow(p);
        p = site_more(p);
        free(p);
    }
    total("site_first", 5, 250, 5, 250, 3, 150);
    total("site_grow", 5, 25000, 5, 25000, 5, 25000);
    total("site_more", 5, 45000, 5, 45000, 5, 45000);
    total("site_marker", 3, 231, 0, 0, 0, 0);

    /* The helper's block is temporary; its caller's is not (the helper
     * allocated while it lived). */
    for (int i = 0; i < 6; i++) {
        void *p = site_caller();
        helper();
        free(p);
    }
    total("site_caller", 6, 1998, 6, 1998, 0, 0);
    total("site_inner", 6, 1332, 6, 1332, 6, 1332);

    /* Freed by another thread while still the latest of the thread that
     * allocated it: temporary (per the allocating thread). */
    for (int i = 0; i < 4; i++) {
        handed = site_handoff();
        tell(1);
    }

    /* Another thread allocating in between does not spoil it. */
    for (int i = 0; i < 3; i++) {
        void *p = site_handoff();
        handed = (void *)(intptr_t)i;
        tell(2);
        free(p);
    }
    total("site_handoff", 7, 3885, 7, 3885, 7, 3885);
    total("site_worker", 3, 1998, 0, 0, 0, 0);

    for (int i = 0; i < 3; i++) kept[20 + i] = site_kept();
    total("site_kept", 3, 1332, 0, 0, 0, 0);

    atomic_store(&order, 3);
    pthread_join(t, NULL);
    return 0;
}
