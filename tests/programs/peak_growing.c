/* A program that passes its peak millions of times (issue 12): N1 blocks
 * allocated and kept (each a new peak), then K blocks grown one byte at a
 * time with realloc, R times in all (each realloc frees s bytes and
 * allocates s + 1: a new peak again). The peak is the end of the growth.
 * Then everything of phase 2 is freed and a small block allocated: not in
 * the peak.
 *
 *   peak_growing [N1 [R]]    defaults 1000000, 2000000 (K = 1000; R a multiple of K)
 *
 * Prints "PEAK <size> <count>" for what the peak holds of the program's own
 * blocks, "NOTPEAK <size>", and "new_peaks=<n>". stdout is unbuffered. */
#include "common.h"

#define K 1000
#define FIRST 1000

static void *a[4000000];
static void *b[K];

int main(int argc, char **argv) {
    long n1 = argc > 1 ? atol(argv[1]) : 1000000;
    long r = argc > 2 ? atol(argv[2]) : 2000000;
    CHECK(n1 % 8 == 0 && n1 <= 4000000 && r % K == 0);
    setvbuf(stdout, NULL, _IONBF, 0);
    for (long i = 0; i < n1; i++) {
        a[i] = malloc(16 + i % 8);
        KEEP(a[i]);
    }
    for (int j = 0; j < K; j++) b[j] = touch(malloc(FIRST), FIRST);
    for (long i = 0; i < r; i++) {
        int j = i % K;
        size_t s = FIRST + i / K + 1;
        b[j] = realloc(b[j], s);
        CHECK(b[j]);
        KEEP(b[j]);
    }
    for (int s = 0; s < 8; s++) printf("PEAK %d %ld\n", 16 + s, n1 / 8);
    printf("PEAK %ld %d\n", FIRST + r / K, K);
    for (int j = 0; j < K; j++) free(b[j]);
    b[0] = touch(malloc(4242), 4242);
    printf("NOTPEAK 4242\nNOTPEAK %d\n", FIRST);
    printf("new_peaks=%ld\n", n1 + K + r);
    return 0;
}
