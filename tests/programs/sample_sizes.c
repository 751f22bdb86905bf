/* Workloads for MEMTRACE_SAMPLE (tests/tests/sampling.rs).
 *
 *   sample_sizes estimate MIB   five lines, each holding MIB MiB in blocks of
 *                               one size (64, 4000, 24576, 200000, 1 MiB),
 *                               allocated interleaved, with blocks of 333 and
 *                               5555 bytes allocated and freed in between;
 *                               snapshot, then exit. Prints "line_<size>=<count>".
 *   sample_sizes free_all N     4 threads allocate N blocks each of varied
 *                               sizes (all ≡ 13 mod 16), realloc some, and free
 *                               every block: half on their own thread, half
 *                               on the next thread. Nothing is left.
 */
#include "common.h"
#include <pthread.h>

static const size_t sizes[5] = {64, 4000, 24576, 200000, 1 << 20};

static void *volatile churn_slot;

static int estimate(long mib) {
    size_t want[5], done[5] = {0};
    void **held[5];
    for (int i = 0; i < 5; i++) {
        want[i] = ((size_t)mib << 20) / sizes[i];
        held[i] = calloc(want[i], sizeof(void *));
        CHECK(held[i]);
    }
    unsigned long x = 12345;
    for (;;) {
        int any = 0;
        for (int i = 0; i < 5; i++) {
            /* Keep the byte mix even: small blocks come in bursts. */
            size_t burst = sizes[i] >= 4000 ? 1 : 64;
            for (size_t b = 0; b < burst && done[i] < want[i]; b++) {
                void *p = malloc(sizes[i]);
                CHECK(p);
                ((volatile char *)p)[0] = 1;
                held[i][done[i]++] = p;
                any = 1;
            }
        }
        x = x * 6364136223846793005ul + 1442695040888963407ul;
        void *q = malloc((x >> 60) & 1 ? 333 : 5555);
        KEEP(q);
        churn_slot = q;
        free(q);
        if (!any)
            break;
    }
    for (int i = 0; i < 5; i++) {
        printf("line_%zu=%zu\n", sizes[i], done[i]);
        KEEP(held[i]);
    }
    snap_now();
    return 0;
}

#define T 4
static long per_thread;
static void **blocks[T];
static pthread_barrier_t barrier;

static size_t size_of(unsigned long r) {
    /* From 13 bytes to ~256 KiB, log-uniform-ish; always ≡ 13 mod 16. */
    unsigned shift = 4 + (r % 15);
    return (((r >> 8) & ((1ul << shift) - 1)) & ~15ul) + 13;
}

static void *worker(void *arg) {
    int t = (int)(long)arg;
    unsigned long x = 88172645463325252ul ^ (unsigned long)t;
    void **mine = blocks[t];
    for (long i = 0; i < per_thread; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        mine[i] = malloc(size_of(x));
        CHECK(mine[i]);
        ((volatile char *)mine[i])[0] = 1;
        if (i % 3 == 0) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            mine[i] = realloc(mine[i], size_of(x));
            CHECK(mine[i]);
        }
        if (i % 5 == 0) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            void *c = calloc(1, size_of(x));
            CHECK(c);
            free(c);
        }
    }
    pthread_barrier_wait(&barrier);
    /* Even indices of our own array, odd ones of the next thread's. */
    for (long i = 0; i < per_thread; i += 2)
        free(mine[i]);
    void **next = blocks[(t + 1) % T];
    for (long i = 1; i < per_thread; i += 2)
        free(next[i]);
    return NULL;
}

static int free_all(long n) {
    per_thread = n;
    pthread_t th[T];
    pthread_barrier_init(&barrier, NULL, T);
    for (int t = 0; t < T; t++) {
        blocks[t] = calloc(n, sizeof(void *));
        CHECK(blocks[t]);
    }
    for (int t = 0; t < T; t++)
        CHECK(pthread_create(&th[t], NULL, worker, (void *)(long)t) == 0);
    for (int t = 0; t < T; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < T; t++)
        free(blocks[t]);
    printf("done\n");
    return 0;
}

int main(int argc, char **argv) {
    CHECK(argc == 3);
    if (!strcmp(argv[1], "estimate"))
        return estimate(atol(argv[2]));
    if (!strcmp(argv[1], "free_all"))
        return free_all(atol(argv[2]));
    return 2;
}
