/* writer: how many events per second can a traced process push through
 * memtrace's writer? THREADS threads do malloc/free pairs as fast as they can
 * for SECONDS, each pair on a shallow stack (malloc <- pair <- worker <-
 * start_thread <- clone3), so unwinding is cheap and the writer (one thread
 * that drains every thread's ring into the live table) is what is measured.
 *
 *   writer [THREADS [MILLISECONDS]]     defaults: 4, 1500
 *
 * The main thread samples its own resident set every 20 ms while the workers
 * run, and reads the CPU time of every thread it did not create (under
 * memtrace: the writer thread) before the workers start and after they are
 * joined. It prints, one key=value a line:
 *   allocs=N frees=N        the workload's own calls
 *   phase_ms=T              from releasing the workers to having joined them
 *   events_per_s=R          (allocs + frees) / phase
 *   rss_kb_early=A          resident set at 25% of the phase
 *   rss_kb_late=B           resident set at the end of the phase
 *   rss_kb_max=C            largest sample
 *   worker_cpu_ms=W         CPU time of the workers (CLOCK_THREAD_CPUTIME_ID)
 *   other_cpu_ms=O          CPU time, from before the workers were created to
 *                           after they were joined, of the threads the program did not create (memtrace's writer)
 *   writer_cpu_ms=M         the same for the threads named "memtrace"
 *   other_threads=K
 */
#define _GNU_SOURCE
#include "common.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAXT 64

static _Atomic int go, stop;

struct worker {
    pthread_t th;
    unsigned long pairs;
    double cpu_s;
    uint64_t seed;
} __attribute__((aligned(64)));

static double now_s(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static FRAME void pair(size_t size) {
    char *p = malloc(size);
    p[0] = 1;
    KEEP(p);
    free(p);
}

static FRAME void *worker(void *arg) {
    struct worker *w = arg;
    uint64_t x = w->seed;
    unsigned long n = 0;
    while (!atomic_load_explicit(&go, memory_order_acquire))
        ;
    for (;;) {
        for (int i = 0; i < 256; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            pair(bench_sizes[(x >> 60) & 15]);
        }
        n += 256;
        if (atomic_load_explicit(&stop, memory_order_relaxed))
            break;
    }
    w->pairs = n;
    w->cpu_s = now_s(CLOCK_THREAD_CPUTIME_ID);
    return NULL;
}

/* Resident set in KiB, without malloc (statm: size resident ...). */
static long rss_kb(void) {
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *s = strchr(buf, ' ');
    return s ? strtol(s + 1, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

/* Sum of utime+stime (clock ticks) of every thread but the main one;
 * *count gets how many there were, *named the ticks of those called
 * "memtrace" (the name libtrace.so gives its writer thread). */
static long others_ticks(pid_t main_tid, int *count, long *named) {
    long sum = 0;
    *named = 0;
    int k = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == main_tid)
            continue;
        char path[300], buf[1024];
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        if (!p)
            continue;
        /* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
        long ut = 0, st = 0;
        if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st) == 2) {
            sum += ut + st;
            k++;
            if (strstr(buf, "(memtrace)"))
                *named += ut + st;
        }
    }
    closedir(d);
    *count = k;
    return sum;
}

int main(int argc, char **argv) {
    int nt = (int)bench_arg(argc, argv, 1, 4);
    long ms = bench_arg(argc, argv, 2, 1500);
    if (nt < 1 || nt > MAXT || ms < 50) {
        fprintf(stderr, "usage: writer [THREADS(1-%d) [MILLISECONDS(>=50)]]\n", MAXT);
        return 2;
    }
    static struct worker ws[MAXT];
    pid_t me = (pid_t)syscall(SYS_gettid);
    double tick = (double)sysconf(_SC_CLK_TCK);
    int k0 = 0, k1 = 0;
    long n0 = 0, n1 = 0;
    long o0 = others_ticks(me, &k0, &n0);  /* before the workers exist: only the writer */
    for (int i = 0; i < nt; i++) {
        ws[i].seed = bench_mix(i + 1);
        if (pthread_create(&ws[i].th, NULL, worker, &ws[i]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    (void)k0;
    double t0 = now_s(CLOCK_MONOTONIC);
    atomic_store_explicit(&go, 1, memory_order_release);
    long early = -1, late = -1, max = -1;
    double end = t0 + ms / 1000.0, quarter = t0 + ms / 4000.0;
    for (;;) {
        struct timespec d = {0, 20 * 1000 * 1000};
        nanosleep(&d, NULL);
        long r = rss_kb();
        double t = now_s(CLOCK_MONOTONIC);
        if (r > max)
            max = r;
        if (early < 0 && t >= quarter)
            early = r;
        late = r;
        if (t >= end)
            break;
    }
    atomic_store_explicit(&stop, 1, memory_order_relaxed);
    unsigned long pairs = 0;
    double wcpu = 0;
    for (int i = 0; i < nt; i++) {
        pthread_join(ws[i].th, NULL);
        pairs += ws[i].pairs;
        wcpu += ws[i].cpu_s;
    }
    double t1 = now_s(CLOCK_MONOTONIC);
    long o1 = others_ticks(me, &k1, &n1);
    double phase = t1 - t0;
    printf("allocs=%lu frees=%lu\n", pairs, pairs);
    printf("threads=%d\n", nt);
    printf("phase_ms=%.1f\n", phase * 1000);
    printf("events_per_s=%.0f\n", 2.0 * pairs / phase);
    printf("rss_kb_early=%ld\nrss_kb_late=%ld\nrss_kb_max=%ld\n", early, late, max);
    printf("worker_cpu_ms=%.0f\n", wcpu * 1000);
    printf("other_cpu_ms=%.0f\n", o0 < 0 || o1 < 0 ? -1.0 : (o1 - o0) * 1000.0 / tick);
    printf("writer_cpu_ms=%.0f\n", o0 < 0 || o1 < 0 ? -1.0 : (n1 - n0) * 1000.0 / tick);
    printf("other_threads=%d\n", k1);
    return 0;
}
