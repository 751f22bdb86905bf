/* A library loaded with dlopen that allocates on behalf of its caller. */
#include <stdlib.h>

__attribute__((noinline)) void *dl_alloc_one(size_t n) {
    void *p = malloc(n); /* MARK:dl_malloc */
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

void dl_alloc(void **out, int count) {
    for (int i = 0; i < count; i++) out[i] = dl_alloc_one(7070);
}
