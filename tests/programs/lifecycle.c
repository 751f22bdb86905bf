/* The process ends when its last thread ends, also under the preload.
 *
 *   lifecycle main_exit   main() calls pthread_exit() while a worker
 *                         still runs; the worker takes a snapshot, allocates
 *                         and returns. glibc then ends the process with
 *                         exit(0) (the writer thread must not keep it alive).
 *   lifecycle fork_thread a non-main thread forks; in the child that thread
 *                         is the only one and simply returns: the child must
 *                         end with status 0 and write its exit snapshot.
 *                         The parent waits at most 10 s for it.
 */
#include "common.h"
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>

static void *volatile held[4];

static void *worker(void *arg) {
    (void)arg;
    usleep(100 * 1000);
    snap_now();                       /* 1: main's 777 block is live */
    held[1] = touch(malloc(555), 555);
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *forking_thread(void *arg) {
    (void)arg;
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* The child: this thread is all there is. Leave a block and end
         * the thread (not the process). */
        held[2] = touch(malloc(888), 888);
        return NULL;
    }
    printf("child_pid=%d\n", (int)pid);
    double t0 = now();
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        CHECK(r >= 0);
        if (r == pid)
            break;
        if (now() - t0 > 10) {
            printf("child=hung\n");
            fflush(stdout);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            exit(1);
        }
        usleep(2000);
    }
    printf("child_exited=%d child_status=%d child_ms=%d\n", WIFEXITED(status), WEXITSTATUS(status),
           (int)((now() - t0) * 1000));
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    if (!strcmp(argv[1], "main_exit")) {
        pthread_t t;
        held[0] = touch(malloc(777), 777);
        CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
        expect("1", 777, 1);
        expect("1", 555, 0);
        expect("exit", 777, 1);
        expect("exit", 555, 1);
        fflush(stdout);
        pthread_exit(NULL);
    }
    if (!strcmp(argv[1], "fork_thread")) {
        pthread_t t;
        held[0] = touch(malloc(777), 777);
        fflush(stdout);
        CHECK(pthread_create(&t, NULL, forking_thread, NULL) == 0);
        CHECK(pthread_join(t, NULL) == 0);
        return 0;
    }
    return 2;
}
