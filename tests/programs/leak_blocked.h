/* Waiting until a thread is really blocked in a system call (leak tests).
 *
 * The leak check reads a blocked thread's stack from its stack pointer up
 * (/proc/self/task/TID/syscall); a flag the thread sets just before its
 * read() says nothing about whether it is in it yet. These helpers make
 * the state sure instead of likely. */
#ifndef MEMTRACE_LEAK_BLOCKED_H
#define MEMTRACE_LEAK_BLOCKED_H

#include "common.h"
#include <fcntl.h>
#include <sys/syscall.h>

static inline pid_t leak_gettid(void) { return (pid_t)syscall(SYS_gettid); }

/* Whether thread `tid` is inside system call `nr` (its syscall file starts
 * with that number; "running" while it is not in one). */
static inline int leak_in_syscall(pid_t tid, long nr) {
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *end;
    long got = strtol(buf, &end, 10);
    return end != buf && got == nr;
}

/* Waits (at most 10 s) until thread `tid` is blocked in system call `nr`. */
static inline void leak_wait_blocked(pid_t tid, long nr) {
    for (int i = 0; i < 10000 && !leak_in_syscall(tid, nr); i++)
        usleep(1000);
    CHECK(leak_in_syscall(tid, nr));
}

#endif
