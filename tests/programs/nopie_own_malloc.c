/* A non-PIE executable (build.rs: `nopie_*` gets -fno-pie -no-pie) with an
 * allocator of its own, like own_malloc.c: malloc, free, calloc and realloc
 * are the bump allocator of bump_alloc.h, defined here, so its dynamic symbols hold a
 * *defined* malloc, not the `UND malloc` PLT stub of nopie_malloc_addr.c.
 * Every allocation bypasses libtrace.so's hooks, and the "not glibc"
 * warning must still be printed (issue 11, point 1: the warning appears
 * exactly when allocations bypass the hooks). It also takes &malloc, as
 * nopie_malloc_addr.c does, so the two differ only in whose malloc it is. */
#include "common.h"

#include "bump_alloc.h"

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
