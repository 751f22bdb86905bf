/* Stacks complete through code without frame pointers: the comparator of
 * glibc's qsort (Debian's libc has no frame pointers) allocates. The block's
 * stack must reach main. */
#include "common.h"

static void *volatile blocks[4096];
static int nblocks;

static int cmp(const void *a, const void *b) {
    if (nblocks < 4096) blocks[nblocks++] = touch(malloc(4567), 4567);
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int main(void) {
    int v[64];
    for (int i = 0; i < 64; i++) v[i] = (i * 37) % 64;
    qsort(v, 64, sizeof v[0], cmp);
    for (int i = 1; i < 64; i++) CHECK(v[i - 1] <= v[i]);
    snap_now();
    expect("1", 4567, nblocks);
    printf("calls=%d\n", nblocks);
    return 0;
}
