/* Stack depth: a block allocated at recursion depth DEPTH (argv[1], default
 * 50) and one allocated directly in main. Snapshot 1 holds both. */
#include "common.h"

static void *volatile deep_block;
static void *volatile shallow_block;

__attribute__((noinline)) static int recurse(int n) {
    if (n == 0) {
        deep_block = touch(malloc(9999), 9999);
        return 0;
    }
    int r = recurse(n - 1);
    KEEP(&r);
    return r + 1; /* not a tail call */
}

int main(int argc, char **argv) {
    int depth = argc > 1 ? atoi(argv[1]) : 50;
    shallow_block = touch(malloc(8888), 8888);
    printf("depth=%d\n", recurse(depth));
    snap_now();
    expect("1", 9999, 1);
    expect("1", 8888, 1);
    return 0;
}
