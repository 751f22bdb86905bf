/* fork while other threads are inside malloc, 100 times: no deadlock.
 * Three threads churn malloc/free; main forks; each child allocates and
 * frees, holds 3 x 5151 B, and leaves: every 10th with exit(0), the others
 * with _exit(0); both write the child's exit snapshot. */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

static atomic_int stop;

static void *churn(void *arg) {
    unsigned seed = (unsigned)(long)arg + 1;
    void *ring[32] = {0};
    while (!atomic_load(&stop)) {
        seed = seed * 1103515245u + 12345u;
        int s = (seed >> 8) % 32;
        free(ring[s]);
        size_t sz = 16 + (seed >> 16) % 4000;
        ring[s] = touch(malloc(sz), sz);
    }
    for (int i = 0; i < 32; i++) free(ring[i]);
    return NULL;
}

static void *volatile held[3];

int main(void) {
    pthread_t th[3];
    for (long t = 0; t < 3; t++) CHECK(pthread_create(&th[t], NULL, churn, (void *)t) == 0);
    int ok = 0, exits = 0;
    for (int i = 0; i < 100; i++) {
        fflush(stdout);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            for (int j = 0; j < 100; j++) free(touch(malloc(64 + j), 64 + j));
            for (int j = 0; j < 3; j++) held[j] = touch(malloc(5151), 5151);
            if (i % 10 == 0) exit(0);
            _exit(0);
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) ok++;
        exits++; /* exit() and _exit() alike */
    }
    atomic_store(&stop, 1);
    for (int t = 0; t < 3; t++) pthread_join(th[t], NULL);
    printf("children_ok=%d\n", ok);
    printf("children_with_exit=%d\n", exits);
    return 0;
}
