/* Blocks held only on thread stacks that the kernel merged into one
 * mapping (threads made without guard pages, their stacks side by side),
 * and, with the argument "spin", on the stack of a thread still running at
 * exit (its stack pointer unknown to the leak check). None of them may
 * come out lost: a pointer on a live stack makes a block still reachable.
 *
 *   still reachable: 401, 402, 403, 404 bytes, one on each blocked
 *                    thread's stack; 505 bytes on the spinning thread's
 *   definitely lost: 777 bytes (main drops it: the check still finds leaks)
 */
#include "common.h"
#include "leak_blocked.h"
#include <pthread.h>

#define BLOCKED 4

static int g_pipe[2];
static volatile pid_t g_tid[BLOCKED];
static volatile int g_spinning;

static void *blocked(void *arg) {
    long i = (long)arg;
    char *volatile held = malloc(401 + i);
    memset(held, 0, 401 + i);
    g_tid[i] = leak_gettid();
    char c;
    while (read(g_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    KEEP(held);
    return NULL;
}

static void *spin(void *arg) {
    (void)arg;
    char *volatile held = malloc(505);
    memset(held, 0, 505);
    g_spinning = 1;
    for (;;)
        KEEP(held);
    return NULL;
}

__attribute__((noinline)) static void lose(void) {
    void *p = malloc(777);
    KEEP(p);
}

__attribute__((noinline)) static void scrub(void) {
    volatile char buf[65536];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = 0;
}

int main(int argc, char **argv) {
    CHECK(pipe(g_pipe) == 0);
    pthread_attr_t attr;
    CHECK(pthread_attr_init(&attr) == 0);
    CHECK(pthread_attr_setguardsize(&attr, 0) == 0);
    CHECK(pthread_attr_setstacksize(&attr, 128 * 1024) == 0);
    pthread_t t;
    for (long i = 0; i < BLOCKED; i++)
        CHECK(pthread_create(&t, &attr, blocked, (void *)i) == 0);
    if (argc > 1 && strcmp(argv[1], "spin") == 0) {
        CHECK(pthread_create(&t, &attr, spin, NULL) == 0);
        while (!g_spinning)
            usleep(1000);
    }
    for (int i = 0; i < BLOCKED; i++) {
        while (!g_tid[i])
            usleep(1000);
        leak_wait_blocked(g_tid[i], SYS_read);
    }
    if (getenv("LEAK_STACKS_MAPS")) {
        FILE *f = fopen("/proc/self/maps", "r");
        char line[512];
        while (f && fgets(line, sizeof line, f))
            fputs(line, stderr);
    }
    lose();
    scrub();
    return 0;
}
