/* A program with its own allocator: malloc, free, calloc and realloc are a
 * bump allocator over a static buffer that calls nothing. The dynamic
 * linker binds every malloc call (also glibc's internal ones) to these, so
 * libtrace.so's hooks never see them. The preload must say so once on
 * stderr and name this program in each snapshot's malloc_owner. */
#include "common.h"

#define ARENA (64u << 20)
static char arena[ARENA] __attribute__((aligned(16)));
static size_t used; /* bytes handed out; updated atomically (our writer
                       thread's libc calls allocate here too) */

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
    (void)p; /* a bump allocator never gives back */
}

void *calloc(size_t n, size_t size) {
    if (size && n > (size_t)-1 / size)
        return NULL;
    return malloc(n * size); /* the static arena is zeroed and never reused */
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

static void *volatile held[16];

int main(void) {
    for (int i = 0; i < 16; i++)
        held[i] = touch(malloc(1000 + i), 1000 + i);
    printf("used=%zu\n", __atomic_load_n(&used, __ATOMIC_RELAXED));
    snap_now();
    held[0] = touch(realloc(held[0], 5000), 5000);
    printf("done\n");
    return 0;
}
