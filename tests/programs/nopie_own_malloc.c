/* A non-PIE executable (build.rs: `nopie_*` gets -fno-pie -no-pie) with an
 * allocator of its own, like own_malloc.c: malloc, free, calloc and realloc
 * are a bump allocator defined here, so its dynamic symbols hold a
 * *defined* malloc, not the `UND malloc` PLT stub of nopie_malloc_addr.c.
 * Every allocation bypasses libtrace.so's hooks, and the "not glibc"
 * warning must still be printed (issue 11, point 1: the warning appears
 * exactly when allocations bypass the hooks). It also takes &malloc, as
 * nopie_malloc_addr.c does, so the two differ only in whose malloc it is. */
#include "common.h"

#define ARENA (64u << 20)
static char arena[ARENA] __attribute__((aligned(16)));
static size_t used;

void *malloc(size_t n) {
    size_t need = ((n + 15) & ~(size_t)15) + 16;
    if (n > ARENA)
        return NULL;
    size_t off = __atomic_fetch_add(&used, need, __ATOMIC_RELAXED);
    if (off + need > ARENA)
        return NULL;
    *(size_t *)(arena + off) = n;
    return arena + off + 16;
}

void free(void *p) {
    (void)p;
}

void *calloc(size_t n, size_t size) {
    if (size && n > (size_t)-1 / size)
        return NULL;
    return malloc(n * size);
}

void *realloc(void *p, size_t n) {
    char *q = malloc(n);
    if (p && q) {
        char *o = p;
        size_t old = 0;
        if (o >= arena && o < arena + ARENA)
            old = *(size_t *)(o - 16);
        for (size_t i = 0; i < old && i < n; i++)
            q[i] = o[i];
    }
    return q;
}

typedef void *(*alloc_fn)(size_t);
static alloc_fn volatile from_data = malloc;
static void *volatile held[32];

int main(void) {
    for (int i = 0; i < 32; i++)
        held[i] = touch(from_data(3333), 3333);
    printf("used=%zu\n", __atomic_load_n(&used, __ATOMIC_RELAXED));
    snap_now();
    printf("done\n");
    return 0;
}
