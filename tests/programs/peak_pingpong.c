/* Two threads hand one big block back and forth: A allocates SIZE_A, frees
 * it, then lets B go; B allocates SIZE_B, frees it, lets A go; ROUNDS times.
 * The two blocks are never live together. The writer drains the rings one
 * after the other, newest first: the rings are made in the order B, noise,
 * A, so it reads A's, then the noise thread's (full of small pairs: that
 * takes a while), then B's. A free of A published just after A's ring was
 * read and B's allocation made while the noise ring was being read reach
 * the writer in different batches, the allocation first: a writer that
 * applied each batch as it came would see both blocks live (a phantom
 * peak). The exact peak (issue 12) holds exactly one of them. (Measured
 * with 100000 rounds: the writer before exact cuts showed both blocks in 7
 * of 8 runs.) The sides wait for their turn on a condition variable: a
 * spinning waiter starves the other side on a loaded machine.
 *
 *   peak_pingpong [ROUNDS]    default 200000
 *
 * Prints "PEAK <size> 1" for the larger block and "NOTPEAK <size>" for the
 * other. stdout is unbuffered. */
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#define SIZE_A 70001
#define SIZE_B 70003

static int rounds = 200000;
static _Atomic int turn = -1; /* 0: A's, 1: B's; -1: not yet */
static _Atomic int stage;    /* rings made so far, in order */
static _Atomic int done;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

static void wait_stage(int s) {
    while (atomic_load(&stage) < s) sched_yield();
}

/* A first small pair gives the thread its ring (at stage `s`). */
static void take_ring(int s) {
    wait_stage(s);
    free(touch(malloc(8), 8));
    atomic_store(&stage, s + 1);
}

static void *noise(void *arg) {
    (void)arg;
    take_ring(1);
    while (!atomic_load_explicit(&done, memory_order_relaxed)) {
        for (int i = 0; i < 64; i++) free(touch(malloc(16), 16));
    }
    return NULL;
}

static void *side(void *arg) {
    int me = (int)(intptr_t)arg;
    take_ring(me ? 0 : 2);
    if (!me) {
        pthread_mutex_lock(&lock);
        atomic_store(&turn, 0);
        pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&lock);
    }
    size_t size = me ? SIZE_B : SIZE_A;
    for (int i = 0; i < rounds; i++) {
        /* A short spin, then sleep on the condition variable (no CPU burnt
         * by whoever waits: on a loaded machine spinning starves the other
         * side). Static mutex and condition: no allocation. */
        for (int spins = 0; spins < 200 && atomic_load_explicit(&turn, memory_order_acquire) != me; spins++) {
        }
        pthread_mutex_lock(&lock);
        while (atomic_load(&turn) != me) pthread_cond_wait(&changed, &lock);
        pthread_mutex_unlock(&lock);
        char *p = malloc(size);
        touch(p, size);
        free(p);
        pthread_mutex_lock(&lock);
        atomic_store_explicit(&turn, !me, memory_order_release);
        pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) rounds = atoi(argv[1]);
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_t a, b, n;
    CHECK(pthread_create(&b, NULL, side, (void *)1) == 0);
    CHECK(pthread_create(&n, NULL, noise, NULL) == 0);
    CHECK(pthread_create(&a, NULL, side, (void *)0) == 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    atomic_store(&done, 1);
    pthread_join(n, NULL);
    printf("PEAK %d 1\n", SIZE_B);
    printf("NOTPEAK %d\n", SIZE_A);
    return 0;
}
