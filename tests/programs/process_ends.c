/* Ends that atexit does not see, and the snapshot signal in a program that
 * handles it itself. usage: process_ends MODE [ARG]
 *   _exit        _exit(5)
 *   _Exit        _Exit(6)
 *   execl PATH   execl(PATH, PATH, "a", ..., "h", NULL): 9 arguments, past
 *                the registers (the exec'd program prints them)
 *   execvp NAME  execvp(NAME, {NAME, "p", NULL}): searched in PATH
 *   execfail     execlp of a name found nowhere: fails, the program goes on
 *   vfork PATH   vfork, the child execs PATH; the parent then returns
 *   forkexec PATH fork, the child execs PATH at once (no allocation)
 *   handler      installs a SIGUSR2 handler, then: a plain kill (the
 *                handler's), a sigqueue with memtrace's value (a snapshot,
 *                not the handler's), prints how often the handler ran
 *   segv         writes through NULL (dies of SIGSEGV)
 *   serve        installs a SIGUSR2 handler, prints READY, reads stdin to
 *                its end (snapshots are requested from outside meanwhile),
 *                prints how often the handler ran
 * 21 x 2121 B are live at every end. */
#include "common.h"
#include <sys/wait.h>

static void *volatile k[21];
static volatile sig_atomic_t handled;

static void on_usr2(int sig) {
    (void)sig;
    handled++;
}

/* sigqueue with the value memtrace's own requests carry ("memtrace"). */
static void memtrace_request(void) {
    union sigval v;
    uint64_t word;
    memcpy(&word, "memtrace", 8);
    v.sival_ptr = (void *)(uintptr_t)word;
    fflush(stdout);
    CHECK(sigqueue(getpid(), SIGUSR2, v) == 0);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "_exit";
    const char *arg = argc > 2 ? argv[2] : "";
    for (int i = 0; i < 21; i++) k[i] = touch(malloc(2121), 2121);
    expect("exit", 2121, 21);
    fflush(stdout);
    if (!strcmp(mode, "_exit")) _exit(5);
    if (!strcmp(mode, "_Exit")) _Exit(6);
    if (!strcmp(mode, "execl")) {
        execl(arg, arg, "a", "b", "c", "d", "e", "f", "g", "h", (char *)NULL);
        return 98;
    }
    if (!strcmp(mode, "execvp")) {
        char *args[] = {(char *)arg, "p", NULL};
        execvp(arg, args);
        return 98;
    }
    if (!strcmp(mode, "execfail")) {
        execlp("memtrace-no-such-program", "x", (char *)NULL);
        printf("exec_failed=%d\n", errno == ENOENT);
        return 0;
    }
    if (!strcmp(mode, "vfork") || !strcmp(mode, "forkexec")) {
        pid_t pid = mode[0] == 'v' ? vfork() : fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            execl(arg, arg, (char *)NULL);
            _exit(127);
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        printf("child_pid=%d\nchild_status=%d\n", (int)pid, WEXITSTATUS(st));
        return 0;
    }
    if (!strcmp(mode, "handler")) {
        CHECK(signal(SIGUSR2, on_usr2) != SIG_ERR);
        fflush(stdout);
        kill(getpid(), SIGUSR2);
        memtrace_request();
        expect("1", 2121, 21);
        usleep(200000);
        printf("handled=%d\n", (int)handled);
        return 0;
    }
    if (!strcmp(mode, "segv")) *(volatile int *)0 = 1;
    if (!strcmp(mode, "serve")) {
        CHECK(signal(SIGUSR2, on_usr2) != SIG_ERR);
        expect("1", 2121, 21);
        printf("READY\n");
        fflush(stdout);
        char buf[64];
        while (read(0, buf, sizeof buf) > 0 || errno == EINTR) errno = 0;
        printf("handled=%d\n", (int)handled);
        return 0;
    }
    return 99;
}
