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
 *   lifecycle sigwait     SIGTERM is blocked in every program thread and one
 *                         thread sigwait()s for it: the signal must reach
 *                         sigwait (not kill the process on a thread that
 *                         does not block it, such as a careless writer).
 *                         Prints READY; the test sends SIGTERM.
 *   lifecycle slow_atexit main_exit with an exit handler that prints
 *                         IN_ATEXIT and sleeps 30 s; it runs on whichever
 *                         thread ends last (under the preload: the writer).
 *                         SIGTERM must still end the process at once.
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

static void slow_exit_handler(void) {
    printf("IN_ATEXIT\n");
    fflush(stdout);
    sleep(30);
}

static void *waiter(void *arg) {
    sigset_t *set = arg;
    int sig = 0;
    CHECK(sigwait(set, &sig) == 0);
    printf("got_signal=%d\n", sig);
    held[3] = touch(malloc(999), 999);
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
    if (!strcmp(argv[1], "slow_atexit")) {
        pthread_t t;
        atexit(slow_exit_handler);
        CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
        pthread_exit(NULL);
    }
    if (!strcmp(argv[1], "sigwait")) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0);
        pthread_t t;
        CHECK(pthread_create(&t, NULL, waiter, &set) == 0);
        usleep(50 * 1000);
        printf("READY\n");
        fflush(stdout);
        CHECK(pthread_join(t, NULL) == 0);
        expect("exit", 999, 1);
        return 0;
    }
    return 2;
}
