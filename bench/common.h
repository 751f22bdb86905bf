/* Shared bits of the memtrace benchmark workloads (built by scripts/bench
 * with gcc -O2 -fomit-frame-pointer). */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Keeps gcc -O2 from proving a block unused and deleting its malloc/free. */
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")
/* No inlining, cloning or interprocedural shortcuts: every call is a frame. */
#define FRAME __attribute__((noipa))

/* Mixed request sizes, all within glibc's per-thread cache (<= 1032 bytes),
 * so the bare loop is a fast allocator and the tracer's cost shows. */
static const uint32_t bench_sizes[16] = {
    16, 24, 32, 40, 48, 56, 64, 80, 96, 128, 160, 192, 256, 384, 512, 1024,
};

static inline uint64_t bench_mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline long bench_arg(int argc, char **argv, int i, long dflt) {
    return argc > i ? strtol(argv[i], NULL, 10) : dflt;
}

/* With BENCH_CPU set, prints the calling thread's CPU time on stderr: a
 * steadier figure than wall time for comparing two builds of libtrace.so
 * on a noisy machine (the writer thread's CPU is not in it). */
static inline void bench_report_cpu(void) {
    struct timespec ts;
    if (getenv("BENCH_CPU") && clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        fprintf(stderr, "thread_cpu_ms=%.1f\n", ts.tv_sec * 1e3 + ts.tv_nsec / 1e6);
}

#endif
