/* A program with its own allocator (bump_alloc.h), which libtrace.so's
 * hooks never see. The preload must say so once on
 * stderr and name this program in each snapshot's malloc_owner. */
#include "common.h"

#include "bump_alloc.h"

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
