/* Known phases (issue 13): each phase changes the live set, waits 400 ms
 * (a history point of 100 ms is on disk by then), prints
 * "PHASE <k> <CLOCK_REALTIME ns>" and its live set as "EXPECT <k> <size>
 * <count>", and waits 300 ms more. `--at` that moment must give exactly
 * that live set. */
#include "common.h"
#include <time.h>

static void *a[64], *b[64], *c[64];

static void phase(int k, const int *sizes, const int *counts, int n) {
    struct timespec ts = {0, 400000000};
    nanosleep(&ts, NULL);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    printf("PHASE %d %lld\n", k, (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
    for (int i = 0; i < n; i++) printf("EXPECT %d %d %d\n", k, sizes[i], counts[i]);
    fflush(stdout);
    ts.tv_nsec = 300000000;
    nanosleep(&ts, NULL);
}

int main(void) {
    for (int i = 0; i < 20; i++) a[i] = touch(malloc(1111), 1111);
    phase(1, (int[]){1111, 2222, 3333}, (int[]){20, 0, 0}, 3);
    for (int i = 0; i < 30; i++) b[i] = touch(malloc(2222), 2222);
    for (int i = 0; i < 15; i++) free(a[i]);
    phase(2, (int[]){1111, 2222, 3333}, (int[]){5, 30, 0}, 3);
    for (int i = 15; i < 20; i++) free(a[i]);
    for (int i = 0; i < 10; i++) free(b[i]);
    for (int i = 0; i < 7; i++) c[i] = touch(malloc(3333), 3333);
    phase(3, (int[]){1111, 2222, 3333}, (int[]){0, 20, 7}, 3);
    return 0;
}
