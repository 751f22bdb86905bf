/* A deterministic program for the DHAT cross-check: no realloc, no threads;
 * prints nothing until the end. */
#include "common.h"

static void *volatile k[6000];

int main(void) {
    for (int i = 0; i < 5000; i++) k[i] = touch(malloc(100 + i % 50), 100 + i % 50);
    for (int i = 0; i < 5000; i += 2) free(k[i]);
    for (int i = 0; i < 300; i++) k[5000 + i] = touch(calloc(3, 333), 999);
    for (int i = 0; i < 100; i++) {
        void *p = NULL;
        CHECK(posix_memalign(&p, 64, 2048) == 0);
        k[5300 + i] = touch(p, 2048);
    }
    for (int i = 5000; i < 5150; i++) free(k[i]);
    for (int i = 0; i < 20; i++) {
        void *big = touch(malloc(200000), 200000);
        free(big);
    }
    printf("done\n");
    return 0;
}
