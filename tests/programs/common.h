/* Shared helpers for the memtrace end-to-end test programs.
 *
 * Every program knows its own answer: it prints lines
 *     EXPECT <snap> <size> <count>
 * meaning "the snapshot <prefix>.<snap>.snap must hold exactly <count> live
 * blocks of <size> requested bytes" (<snap> is 1, 2, ... or exit). The Rust
 * harness (tests/src/lib.rs) parses these lines and checks the snapshots.
 *
 * Allocations are kept observable so that gcc -O2 cannot remove them: every
 * pointer goes through KEEP() (an empty asm that takes the pointer and
 * clobbers memory) and is stored in a volatile global array.
 */
#ifndef MEMTRACE_TEST_COMMON_H
#define MEMTRACE_TEST_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            exit(99);                                                        \
        }                                                                    \
    } while (0)

static inline void expect(const char *snap, size_t size, size_t count) {
    printf("EXPECT %s %zu %zu\n", snap, size, count);
}

/* Writes to the block so that the allocation has a visible effect. */
static inline void *touch(void *p, size_t n) {
    if (p && n) {
        ((volatile char *)p)[0] = 1;
        ((volatile char *)p)[n - 1] = 2;
    }
    KEEP(p);
    return p;
}

/* Marks the snapshot moment. stdout is flushed first so the output order
 * stays readable; the flush itself allocates nothing new once the stdio
 * buffer exists. */
static inline void snap_now(void) {
    fflush(stdout);
    raise(SIGUSR2);
}

/* Untraced reference runs (the harness sets MT_UNTRACED=1) ignore the
 * snapshot signals, which would otherwise kill the program. */
__attribute__((constructor)) static void mt_untraced_setup(void) {
    if (getenv("MT_UNTRACED")) {
        signal(SIGUSR1, SIG_IGN);
        signal(SIGUSR2, SIG_IGN);
    }
}

#endif
