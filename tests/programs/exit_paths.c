/* Ways to end a program. usage: exit_paths MODE [SNAPFILE]
 *   return     return 0 from main
 *   status7    return 7 from main
 *   exit       exit(0) from a nested function
 *   thread     a second thread calls exit(3) while main waits in pthread_join
 *   abort      snapshot 1, wait until SNAPFILE exists, abort()
 *   segv       snapshot 1, wait until SNAPFILE exists, write through NULL
 *   kill       snapshot 1, wait until SNAPFILE exists, print READY, sleep
 * 42 x 4242 B are live at every end. */
#include "common.h"
#include <pthread.h>
#include <sys/stat.h>

static void *volatile k[42];

__attribute__((noinline)) static void leave(int code) {
    fflush(stdout);
    exit(code);
}

static void *thread_exit(void *arg) {
    (void)arg;
    leave(3);
    return NULL;
}

static void wait_for(const char *path) {
    struct stat st;
    for (int i = 0; i < 1000; i++) {
        if (stat(path, &st) == 0) {
            printf("snapshot_seen=yes\n");
            fflush(stdout);
            return;
        }
        usleep(10000);
    }
    printf("snapshot_seen=no\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "return";
    for (int i = 0; i < 42; i++) k[i] = touch(malloc(4242), 4242);
    expect("exit", 4242, 42);
    fflush(stdout);
    if (!strcmp(mode, "return")) return 0;
    if (!strcmp(mode, "status7")) return 7;
    if (!strcmp(mode, "exit")) leave(0);
    if (!strcmp(mode, "thread")) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, thread_exit, NULL) == 0);
        pthread_join(t, NULL);
        return 1; /* not reached */
    }
    CHECK(argc > 2);
    snap_now();
    expect("1", 4242, 42);
    wait_for(argv[2]);
    if (!strcmp(mode, "abort")) abort();
    if (!strcmp(mode, "segv")) {
        signal(SIGSEGV, SIG_DFL);
        *(volatile int *)0 = 1;
    }
    if (!strcmp(mode, "kill")) {
        printf("READY\n");
        fflush(stdout);
        for (;;) pause();
    }
    return 1;
}
