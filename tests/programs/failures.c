/* Failed allocations record nothing. usage:
 *   failures calloc|huge|rlimit|rlimit-first
 *
 * 20 x 1212 B, snapshot 1; then only failing calls (calloc overflow, huge
 * sizes, or malloc under an RLIMIT_AS limit) and 5 x 4321 B that succeed;
 * snapshot 2; exit. Between the two snapshots exactly 5 allocations and no
 * free happened. rlimit-first sets the limit to the current size before
 * anything else in main: the profiler's writer thread must have its memory
 * by then (a thread's first malloc maps it a 64 MiB glibc arena). */
#include "common.h"
#include <malloc.h>
#include <sys/resource.h>

static void *volatile k1212[20];
static void *volatile k4321[5];

#define FAILS(expr)                               \
    do {                                          \
        errno = 0;                                \
        void *r_ = (expr);                        \
        KEEP(r_);                                 \
        CHECK(r_ == NULL && errno == ENOMEM);     \
        failed++;                                 \
    } while (0)

static long vm_size_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f != NULL);
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmSize:", 7)) kb = atol(line + 7);
    fclose(f);
    return kb;
}

/* RLIMIT_AS = the current address-space size + `room` bytes. */
static void limit_as(long room) {
    long kb = vm_size_kb();
    CHECK(kb > 0);
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = (rlim_t)kb * 1024 + (rlim_t)room;
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "calloc";
    int failed = 0;
    int first = !strcmp(mode, "rlimit-first");
    if (first) {
        /* No room at all for new mappings; the writer thread wakes every
         * 10 ms: let it run into that. */
        limit_as(0);
        usleep(30000);
        mode = "rlimit";
    }
    for (int i = 0; i < 20; i++) k1212[i] = touch(malloc(1212), 1212);
    if (!strcmp(mode, "rlimit") && !first)
        limit_as(64 << 20);
    snap_now();
    if (!strcmp(mode, "calloc")) {
        for (int i = 0; i < 100; i++) {
            FAILS(calloc(SIZE_MAX / 2 + 1, 2 + i % 7));
            FAILS(calloc((size_t)1 << 33, (size_t)1 << 33));
            FAILS(calloc(3, SIZE_MAX / 3 + 1));
        }
    } else if (!strcmp(mode, "huge")) {
        for (int i = 0; i < 20; i++) {
            FAILS(malloc(SIZE_MAX - 100));
            FAILS(malloc((size_t)1 << 62));
            FAILS(realloc(NULL, (size_t)1 << 62));
            FAILS(reallocarray(NULL, (size_t)1 << 31, (size_t)1 << 31));
            FAILS(aligned_alloc(64, (size_t)1 << 62));
            FAILS(memalign(64, (size_t)1 << 62));
            FAILS(valloc((size_t)1 << 62));
            FAILS(pvalloc((size_t)1 << 62));
            void *p = NULL;
            CHECK(posix_memalign(&p, 64, (size_t)1 << 62) == ENOMEM);
            failed++;
        }
    } else if (!strcmp(mode, "rlimit")) {
        for (int i = 0; i < 50; i++) {
            FAILS(malloc(256u << 20));
            FAILS(calloc(1, 256u << 20));
        }
    } else {
        fprintf(stderr, "bad mode\n");
        return 2;
    }
    for (int i = 0; i < 5; i++) k4321[i] = touch(malloc(4321), 4321);
    snap_now();
    printf("failed=%d alloc_delta=5 free_delta=0\n", failed);
    expect("1", 1212, 20);
    expect("1", 4321, 0);
    expect("2", 1212, 20);
    expect("2", 4321, 5);
    expect("exit", 1212, 20);
    expect("exit", 4321, 5);
    return 0;
}
