/* 2000 short-lived threads, 50 at a time, each allocating a known amount:
 * thread i allocates 1500 bytes (kept), 2500 bytes (freed by itself before
 * it exits) and 3500 bytes (handed to main, which frees it unless i % 3 == 0).
 * Half the batches are detached threads that report through a counter. */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

#define N 2000
#define BATCH 50

static void *volatile k1500[N];
static void *volatile k3500[N];
static atomic_int finished;

static void *body(void *arg) {
    long i = (long)arg;
    k1500[i] = touch(malloc(1500), 1500);
    void *tmp = touch(malloc(2500), 2500);
    k3500[i] = touch(malloc(3500), 3500);
    free(tmp);
    atomic_fetch_add(&finished, 1);
    return NULL;
}

int main(void) {
    pthread_t th[BATCH];
    for (long b = 0; b < N / BATCH; b++) {
        int detached = b % 2;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        if (detached) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int target = atomic_load(&finished) + BATCH;
        for (long j = 0; j < BATCH; j++) CHECK(pthread_create(&th[j], &attr, body, (void *)(b * BATCH + j)) == 0);
        pthread_attr_destroy(&attr);
        if (detached) {
            while (atomic_load(&finished) < target) usleep(100);
        } else {
            for (int j = 0; j < BATCH; j++) pthread_join(th[j], NULL);
        }
    }
    int kept3500 = 0;
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0) kept3500++;
        else free(k3500[i]);
    }
    usleep(10000); /* let the last detached threads leave */
    expect("exit", 1500, N);
    expect("exit", 2500, 0);
    expect("exit", 3500, kept3500);
    printf("threads=%d\n", atomic_load(&finished));
    return 0;
}
