/* A pool allocator that reports its objects with memtrace.h (issue 16):
 * one malloc'd chunk, objects carved from it and given back to a small
 * free list, each tracked in domain 7 where it is handed out.
 *
 * Known answer at exit, domain 7 (the pool's objects):
 *   48 bytes x 8   allocated by make_widgets (10, two given back)
 *   40 bytes x 5   allocated by make_names (two of them at the addresses
 *                  the two widgets gave back)
 *   72 bytes x 1   allocated by lose_one, its pointer dropped: definitely
 *                  lost (the others are held by globals: still reachable)
 * domain 0 (malloc's): the 65536-byte chunk and a 333-byte block, and no
 * block of 48, 40 or 72 bytes.
 *
 * It prints what memtrace_track/untrack returned: 0 traced, -2 without
 * memtrace (the weak symbols are NULL), and -1 for domain 0 (refused).
 */
#include "common.h"
#include "memtrace.h"

#define DOMAIN 7
#define POOL_BYTES 65536

struct pool {
    char *chunk;
    size_t used;
    void *spare[4];
    int nspare;
};

static struct pool g_pool;
static void *volatile g_widgets[10];
static void *volatile g_names[5];
static void *volatile g_heap;
static int g_track = 1, g_untrack = 1;

__attribute__((noinline)) static void *pool_alloc(size_t n) {
    void *p;
    if (g_pool.nspare > 0 && n <= 48) {
        p = g_pool.spare[--g_pool.nspare];
        g_pool.spare[g_pool.nspare] = NULL;
    } else {
        p = g_pool.chunk + g_pool.used;
        g_pool.used += (n + 15) & ~(size_t)15;
        CHECK(g_pool.used <= POOL_BYTES);
    }
    g_track = MEMTRACE_TRACK(DOMAIN, p, n); /* POOL TRACK */
    return p;
}

/* Only 48-byte objects come back in this program. */
__attribute__((noinline)) static void pool_free(void *p) {
    g_untrack = MEMTRACE_UNTRACK(DOMAIN, p);
    CHECK(g_pool.nspare < 4);
    g_pool.spare[g_pool.nspare++] = p;
}

__attribute__((noinline)) static void make_widgets(void) {
    for (int i = 0; i < 10; i++) {
        g_widgets[i] = pool_alloc(48); /* SITE widgets */
        memset(g_widgets[i], 0, 48);
    }
}

__attribute__((noinline)) static void make_names(void) {
    for (int i = 0; i < 5; i++) {
        g_names[i] = pool_alloc(40); /* SITE names */
        memset(g_names[i], 'n', 40);
    }
}

__attribute__((noinline)) static void lose_one(void) {
    char *p = pool_alloc(72); /* SITE lost */
    memset(p, 0, 72);
    KEEP(p);
}

__attribute__((noinline)) static void scrub(void) {
    volatile char buf[65536];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = 0;
}

int main(void) {
    g_pool.chunk = calloc(1, POOL_BYTES); /* SITE chunk */
    CHECK(g_pool.chunk != NULL);
    g_heap = malloc(333); /* SITE heap */
    memset(g_heap, 0, 333);
    make_widgets();
    pool_free(g_widgets[3]);
    g_widgets[3] = NULL;
    pool_free(g_widgets[7]);
    g_widgets[7] = NULL;
    make_names();
    lose_one();
    int track0 = MEMTRACE_TRACK(0, g_heap, 333);
    printf("track=%d untrack=%d track0=%d\n", g_track, g_untrack, track0);
    fflush(stdout);
    scrub();
    return 0;
}
