/* Four threads still allocating and freeing when main returns (issue 15):
 * the exit snapshot's leak check must neither crash nor hang the program.
 * main loses one 777-byte block, which must be definitely lost. */
#include "common.h"
#include <pthread.h>

#define SLOTS 64
static void *volatile g_slots[4][SLOTS];

static void *churn(void *arg) {
    long t = (long)arg;
    unsigned x = (unsigned)t * 2654435761u + 1;
    for (;;) {
        x = x * 1103515245u + 12345u;
        unsigned i = (x >> 8) % SLOTS;
        void *old = g_slots[t][i];
        g_slots[t][i] = malloc(16 + (x >> 20) % 2000);
        free(old);
    }
    return NULL;
}

__attribute__((noinline)) static void lose(void) {
    void *p = malloc(777);
    KEEP(p);
}

__attribute__((noinline)) static void scrub(void) {
    volatile char buf[16384];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = 0;
}

int main(void) {
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, churn, (void *)i) == 0);
    usleep(100 * 1000);
    lose();
    scrub();
    return 0;
}
