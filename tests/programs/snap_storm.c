/* A storm of snapshot signals from outside.
 *
 * Holds 100 x 7777 B from before it prints READY until exit; a churn thread
 * allocates and frees sizes 64..1087 meanwhile. Main waits on stdin (the
 * test sends the signals, then closes stdin), stops the churn and exits.
 * Prints its peak RSS (maxrss_kb=N). */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>

static atomic_int stop;
static void *volatile held[100];
static atomic_long churned;

static void *churn(void *arg) {
    (void)arg;
    void *ring[256] = {0};
    unsigned seed = 7;
    while (!atomic_load(&stop)) {
        seed = seed * 1103515245u + 12345u;
        int slot = (seed >> 8) % 256;
        free(ring[slot]);
        size_t sz = 64 + (seed >> 16) % 1024;
        ring[slot] = touch(malloc(sz), sz);
        atomic_fetch_add(&churned, 1);
    }
    for (int i = 0; i < 256; i++) free(ring[i]);
    return NULL;
}

int main(void) {
    for (int i = 0; i < 100; i++) held[i] = touch(malloc(7777), 7777);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, churn, NULL) == 0);
    printf("READY\n");
    fflush(stdout);
    char buf[64];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0 && errno != EINTR) break;
    }
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("churned=%ld\n", atomic_load(&churned));
    printf("maxrss_kb=%ld\n", ru.ru_maxrss);
    expect("exit", 7777, 100);
    printf("done\n");
    return 0;
}
