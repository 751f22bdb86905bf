/* memtrace attach on a busy program (tests/tests/attach.rs).
 *
 * Four threads allocate, reallocate and free all the time, on blocks from
 * before the attach and after it. The main thread waits on stdin: the test
 * attaches while it waits, then sends "go". Then it allocates a known set of
 * blocks (below), reallocates one block from before the attach (a new
 * allocation of its new size, to memtrace), and quiesces the churn threads:
 * each frees every block it holds. It says "quiet" and waits again: live now,
 * and allocated since the attach, are exactly the known blocks. On "end" it
 * frees all of them but the kept_block() ones, checks every pattern it wrote
 * and exits 0.
 *
 *   7 x 4242 B in kept_block()    (still live at exit)
 *   3 x calloc(3, 555) in calloc_block()
 *   1 x realloc(pre-attach, 3333) in realloc_block()
 *   1 x strdup of 99 characters (100 B, allocated inside libc) in strdup_block()
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keeps gcc -O2 from dropping an allocation it sees no use of. */
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

#define THREADS 4
#define SLOTS 16
#define BEFORE 50

static atomic_int quiesce;
static atomic_int quiet_threads;
static atomic_long errors;
static atomic_long rounds;

/* A block of `size` bytes filled with its own byte; checked before free. */
static void fill(unsigned char *p, size_t size, unsigned char tag) {
    memset(p, tag, size);
}

static void check(const unsigned char *p, size_t size, unsigned char tag) {
    for (size_t i = 0; i < size; i++)
        if (p[i] != tag) {
            atomic_fetch_add(&errors, 1);
            return;
        }
}

struct slot {
    unsigned char *p;
    size_t size;
    unsigned char tag;
};

static void *churn(void *arg) {
    long id = (long)arg;
    struct slot s[SLOTS];
    for (int i = 0; i < SLOTS; i++) { /* blocks from before the attach */
        s[i].size = 100 + id * 10 + i;
        s[i].tag = (unsigned char)(i + 1);
        s[i].p = malloc(s[i].size);
        fill(s[i].p, s[i].size, s[i].tag);
    }
    for (unsigned long n = 0; !atomic_load(&quiesce); n++) {
        struct slot *x = &s[n % SLOTS];
        size_t size = 16 + (n * 37 + id * 101) % 2000;
        check(x->p, x->size, x->tag);
        if (n % 3 == 0) {
            size_t keep = x->size < size ? x->size : size;
            x->p = realloc(x->p, size);
            check(x->p, keep, x->tag);
        } else {
            free(x->p);
            x->p = n % 3 == 1 ? malloc(size) : calloc(1, size);
        }
        x->size = size;
        x->tag = (unsigned char)(n % 251 + 1);
        fill(x->p, size, x->tag);
        if (n % 1024 == 0)
            atomic_fetch_add(&rounds, 1);
    }
    for (int i = 0; i < SLOTS; i++) {
        check(s[i].p, s[i].size, s[i].tag);
        free(s[i].p);
    }
    atomic_fetch_add(&quiet_threads, 1);
    return NULL;
}

static int wait_for(const char *word) {
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 0;
    return strncmp(line, word, strlen(word)) == 0;
}

static void *kept_block(void) {
    return malloc(4242); /* ATTACH_KEPT */
}

static void *calloc_block(void) {
    return calloc(3, 555); /* ATTACH_CALLOC */
}

/* 99 characters: strdup makes a 100-byte block, allocated inside libc. */
static const char text99[] = "0123456789012345678901234567890123456789"
                             "0123456789012345678901234567890123456789"
                             "0123456789012345678";

static char *strdup_block(void) {
    return strdup(text99); /* ATTACH_STRDUP */
}

static void *realloc_block(void *old) {
    return realloc(old, 3333); /* ATTACH_REALLOC */
}

int main(void) {
    unsigned char *before[BEFORE];
    for (int i = 0; i < BEFORE; i++) {
        before[i] = malloc(1000 + i);
        fill(before[i], 1000 + i, (unsigned char)i);
    }
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, churn, (void *)i);
    while (atomic_load(&rounds) < THREADS * 4) /* every thread is busy */
        ;
    printf("ready\n");
    fflush(stdout);
    if (!wait_for("go"))
        return 2;
    long rounds_at_go = atomic_load(&rounds);

    void *kept[7], *zeroed[3];
    for (int i = 0; i < 7; i++)
        KEEP(kept[i] = kept_block());
    for (int i = 0; i < 3; i++)
        KEEP(zeroed[i] = calloc_block());
    char *dup = strdup_block();
    KEEP(dup);
    unsigned char *moved = realloc_block(before[0]);
    check(moved, 1000, 0);
    before[0] = NULL;

    while (atomic_load(&rounds) < rounds_at_go + THREADS * 4) /* churn after the attach */
        ;
    atomic_store(&quiesce, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("quiet\n");
    fflush(stdout);
    if (!wait_for("end"))
        return 2;

    for (int i = 1; i < BEFORE; i++) { /* frees of blocks memtrace never saw */
        check(before[i], 1000 + i, (unsigned char)i);
        free(before[i]);
    }
    for (int i = 0; i < 3; i++)
        free(zeroed[i]);
    free(moved);
    if (strlen(dup) != 99)
        atomic_fetch_add(&errors, 1);
    free(dup);
    for (int i = 0; i < 7; i++)
        ((char *)kept[i])[0] = 1; /* still live at exit */
    printf("threads %d, errors %ld\n", THREADS, atomic_load(&errors));
    return atomic_load(&errors) == 0 ? 0 : 1;
}
