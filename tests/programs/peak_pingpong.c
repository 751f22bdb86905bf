/* Two threads hand one big block back and forth: A allocates SIZE_A, frees
 * it, then lets B go; B allocates SIZE_B, frees it, lets A go; ROUNDS times.
 * The two blocks are never live together, but the writer drains the rings
 * one after the other: if it applied B's allocation (drained from B's ring)
 * before A's free (published before it, still in A's ring when A's ring was
 * read), a running maximum would see both. The exact peak (issue 12) holds
 * exactly one of them.
 *
 * Prints "PEAK <size> <count>" for what the peak must hold of these sizes:
 * the larger block once (SIZE_B > SIZE_A); and NOTPEAK SIZE_A. */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

#define SIZE_A 70001
#define SIZE_B 70003

static int rounds = 200000;
static _Atomic int turn; /* 0: A's, 1: B's */
static _Atomic int done;

/* Small pairs on a third thread keep the writer draining all the time. */
static void *noise(void *arg) {
    (void)arg;
    while (!atomic_load_explicit(&done, memory_order_relaxed)) {
        char *p = malloc(16);
        touch(p, 16);
        free(p);
    }
    return NULL;
}

static void *side(void *arg) {
    int me = (int)(intptr_t)arg;
    size_t size = me ? SIZE_B : SIZE_A;
    for (int i = 0; i < rounds; i++) {
        while (atomic_load_explicit(&turn, memory_order_acquire) != me) {
        }
        char *p = malloc(size);
        touch(p, size);
        free(p);
        atomic_store_explicit(&turn, !me, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) rounds = atoi(argv[1]);
    setvbuf(stdout, NULL, _IONBF, 0); /* no stdio buffer among the blocks */
    pthread_t a, b, n;
    CHECK(pthread_create(&n, NULL, noise, NULL) == 0);
    CHECK(pthread_create(&a, NULL, side, (void *)0) == 0);
    CHECK(pthread_create(&b, NULL, side, (void *)1) == 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    atomic_store(&done, 1);
    pthread_join(n, NULL);
    printf("PEAK %d 1\n", SIZE_B);
    printf("NOTPEAK %d\n", SIZE_A);
    return 0;
}
