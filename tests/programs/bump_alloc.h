/* A bump allocator over a static buffer that calls nothing, defining
 * malloc, free, calloc and realloc: a program that includes it has an
 * allocator of its own, which the dynamic linker binds every malloc call
 * to (glibc's internal ones too), so libtrace.so's hooks never see them.
 * Included by own_malloc.c and nopie_own_malloc.c. */
#ifndef MEMTRACE_TEST_BUMP_ALLOC_H
#define MEMTRACE_TEST_BUMP_ALLOC_H

#include <stddef.h>

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

#endif
