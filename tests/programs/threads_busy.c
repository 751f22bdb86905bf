/* A snapshot while other threads keep allocating.
 *
 * Three churn threads allocate and free sizes 64..191 without pause and each
 * keeps exactly one "ticket" block of 6001 bytes alive, replacing it in a
 * loop (malloc the new one, then free the old one): at any moment each
 * thread holds one or two tickets. Main allocates 1000 x 777 and 10 x 12345,
 * raises the snapshot signal while the churn goes on, frees half, raises
 * again, and stops the churn. Sizes 777 and 12345 are exact at each signal;
 * the tickets are between 3 and 6. */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

#define W 3
static atomic_int stop;
static atomic_int started;
static void *volatile k777[1000];
static void *volatile k12345[10];

static void *churn(void *arg) {
    unsigned seed = (unsigned)(long)arg * 2654435761u + 1;
    void *ring[64] = {0};
    void *ticket = touch(malloc(6001), 6001);
    atomic_fetch_add(&started, 1);
    long i = 0;
    while (!atomic_load(&stop)) {
        seed = seed * 1103515245u + 12345u;
        int slot = (seed >> 8) % 64;
        free(ring[slot]);
        size_t sz = 64 + (seed >> 16) % 128;
        ring[slot] = touch(malloc(sz), sz);
        if (++i % 16 == 0) {
            void *nt = touch(malloc(6001), 6001);
            free(ticket);
            ticket = nt;
        }
    }
    for (int s = 0; s < 64; s++) free(ring[s]);
    free(ticket);
    return NULL;
}

int main(void) {
    pthread_t th[W];
    for (int t = 0; t < W; t++) CHECK(pthread_create(&th[t], NULL, churn, (void *)(long)t) == 0);
    while (atomic_load(&started) < W) sched_yield();
    for (int i = 0; i < 1000; i++) k777[i] = touch(malloc(777), 777);
    for (int i = 0; i < 10; i++) k12345[i] = touch(malloc(12345), 12345);
    usleep(20000);
    snap_now();
    expect("1", 777, 1000);
    expect("1", 12345, 10);
    for (int i = 0; i < 500; i++) free(k777[i]);
    for (int i = 0; i < 3; i++) free(k12345[i]);
    usleep(20000);
    snap_now();
    expect("2", 777, 500);
    expect("2", 12345, 7);
    usleep(20000);
    atomic_store(&stop, 1);
    for (int t = 0; t < W; t++) pthread_join(th[t], NULL);
    expect("exit", 777, 500);
    expect("exit", 12345, 7);
    expect("exit", 6001, 0);
    printf("done\n");
    return 0;
}
