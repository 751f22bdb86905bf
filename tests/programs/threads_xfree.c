/* Cross-thread frees with immediate address reuse, on 4 threads, repeated.
 *
 * Thread t allocates blocks of size 2001 + t (all four sizes share one glibc
 * size class, 2016-byte chunks) and hands most of them to thread (t+1) % 4,
 * which frees them: the freed chunk lands in the freeing thread's tcache and
 * is handed out again by its very next malloc, so the same address is freed
 * on one thread and allocated on another back to back. Every 97th block is
 * kept. The program keeps its own exact count per size.
 *
 * Mid-run (after round MID) all workers stop at a barrier, thread 0 raises
 * the snapshot signal and prints the counts, then all go on. At the end the
 * queues are drained and the kept blocks stay live to the exit snapshot.
 *
 * usage: threads_xfree [BASE [PER_ROUND]]: sizes BASE .. BASE+3 (default
 * 2001; 97 puts them in one fastbin class). Run it also with
 * GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.arena_max=1 so
 * that every free makes the address available to all threads at once. The
 * program counts how often a malloc returned the address another thread had
 * freed last (cross_reuse=N). */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

#define T 4
#define ROUNDS 12
#define MID 6
#define MAX_PER_ROUND 20000
#define QCAP 256
#define MAXKEEP (ROUNDS * MAX_PER_ROUND / 97 + 8)

static size_t base = 2001;
static int per_round = 3000;
static atomic_uintptr_t last_freed;
static atomic_int last_freer;
static atomic_long cross_reuse;

struct queue {
    pthread_mutex_t mu;
    void *items[QCAP];
    int head, len;
};

static struct queue q[T];
static atomic_long live[T]; /* live blocks of size 2001 + t */
static void *volatile kept[T][MAXKEEP];
static int nkept[T];
static pthread_barrier_t bar;

static int push(int t, void *p) {
    struct queue *x = &q[t];
    pthread_mutex_lock(&x->mu);
    int ok = x->len < QCAP;
    if (ok) {
        x->items[(x->head + x->len) % QCAP] = p;
        x->len++;
    }
    pthread_mutex_unlock(&x->mu);
    return ok;
}

static void *pop(int t) {
    struct queue *x = &q[t];
    void *p = NULL;
    pthread_mutex_lock(&x->mu);
    if (x->len) {
        p = x->items[x->head];
        x->head = (x->head + 1) % QCAP;
        x->len--;
    }
    pthread_mutex_unlock(&x->mu);
    return p;
}

/* The block's first byte says which thread (so which size) allocated it. */
static void release(void *p, int me) {
    int owner = *(volatile unsigned char *)p;
    atomic_fetch_sub(&live[owner], 1);
    free(p);
    atomic_store(&last_freer, me);
    atomic_store(&last_freed, (uintptr_t)p);
}

static void *worker(void *arg) {
    int t = (int)(long)arg;
    size_t size = base + t;
    long n = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < per_round; i++, n++) {
            unsigned char *p = malloc(size);
            CHECK(p != NULL);
            if ((uintptr_t)p == atomic_load(&last_freed) && atomic_load(&last_freer) != t)
                atomic_fetch_add(&cross_reuse, 1);
            atomic_fetch_add(&live[t], 1);
            p[0] = (unsigned char)t;
            p[size - 1] = 0x5a;
            KEEP(p);
            if (n % 97 == 0) {
                kept[t][nkept[t]++] = p;
            } else if (!push((t + 1) % T, p)) {
                release(p, t);
            }
            void *o;
            int drained = 0;
            while (drained < 4 && (o = pop(t)) != NULL) {
                release(o, t);
                drained++;
            }
        }
        if (round == MID) {
            pthread_barrier_wait(&bar);
            if (t == 0) {
                snap_now();
                for (int k = 0; k < T; k++) expect("1", base + k, atomic_load(&live[k]));
                fflush(stdout);
            }
            pthread_barrier_wait(&bar);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) base = (size_t)atol(argv[1]);
    if (argc > 2) per_round = atoi(argv[2]);
    CHECK(base >= 16 && per_round > 0 && per_round <= MAX_PER_ROUND);
    pthread_t th[T];
    for (int t = 0; t < T; t++) pthread_mutex_init(&q[t].mu, NULL);
    pthread_barrier_init(&bar, NULL, T);
    for (int t = 0; t < T; t++) CHECK(pthread_create(&th[t], NULL, worker, (void *)(long)t) == 0);
    for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < T; t++) {
        void *o;
        while ((o = pop(t)) != NULL) release(o, -1);
    }
    long total = 0;
    for (int t = 0; t < T; t++) {
        CHECK(atomic_load(&live[t]) == nkept[t]);
        expect("exit", base + t, atomic_load(&live[t]));
        total += nkept[t];
    }
    printf("kept=%ld\n", total);
    printf("cross_reuse=%ld\n", atomic_load(&cross_reuse));
    return 0;
}
