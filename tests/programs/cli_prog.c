/* Known allocation lines for the memtrace CLI. Snapshot 1 after site A,
 * snapshot 2 after site B. The MARK comments let the test find the lines. */
#include "common.h"

static void *volatile site_a[1000];
static void *volatile site_b[500];

__attribute__((noinline)) static void alloc_a(void) {
    for (int i = 0; i < 1000; i++) {
        site_a[i] = malloc(1000); /* MARK:site_a */
        KEEP(site_a[i]);
    }
}

__attribute__((noinline)) static void alloc_b(void) {
    for (int i = 0; i < 500; i++) {
        site_b[i] = malloc(4000); /* MARK:site_b */
        KEEP(site_b[i]);
    }
}

int main(void) {
    alloc_a(); /* MARK:call_a */
    snap_now();
    alloc_b(); /* MARK:call_b */
    snap_now();
    printf("done\n");
    return 0;
}
