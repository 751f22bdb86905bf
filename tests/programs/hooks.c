/* Every allocation hook, with glibc's semantics, each at a distinctive size.
 * Snapshot 1 after all calls; then part is freed; the exit snapshot holds
 * the rest. */
#include "common.h"
#include <malloc.h>

#define PAGE 4096

static void *volatile k_malloc[1000];
static void *volatile k_tmp[200];
static void *volatile k_calloc[300];
static void *volatile k_grow[10], *volatile k_shrink[10], *volatile k_move[10], *volatile k_blocker[10];
static void *volatile k_rnull[10], *volatile k_ra[10], *volatile k_ragrow[10], *volatile k_failre[10];
static void *volatile k_pm[10], *volatile k_aa[10], *volatile k_ma[10], *volatile k_va[10], *volatile k_pva[10];
static void *volatile k_zero[7];

int main(void) {
    /* malloc / free */
    for (int i = 0; i < 1000; i++) k_malloc[i] = touch(malloc(1000), 1000);
    for (int i = 0; i < 200; i++) k_tmp[i] = touch(malloc(1001), 1001);
    for (int i = 0; i < 200; i++) free(k_tmp[i]);
    for (int i = 0; i < 10; i++) free(NULL);
    for (int i = 0; i < 7; i++) { k_zero[i] = malloc(0); CHECK(k_zero[i] != NULL); KEEP(k_zero[i]); }

    /* calloc: zeroed memory; overflow -> NULL + ENOMEM, nothing recorded */
    for (int i = 0; i < 300; i++) {
        unsigned char *p = calloc(7, 111);
        CHECK(p != NULL);
        for (int j = 0; j < 777; j++) CHECK(p[j] == 0);
        k_calloc[i] = touch(p, 777);
    }
    for (int i = 0; i < 5; i++) {
        errno = 0;
        void *p = calloc(SIZE_MAX / 2 + 1, 2 + i);
        KEEP(p);
        CHECK(p == NULL && errno == ENOMEM);
        errno = 0;
        p = calloc((size_t)1 << 33, (size_t)1 << 33);
        KEEP(p);
        CHECK(p == NULL && errno == ENOMEM);
    }

    /* realloc: grow, shrink, move, realloc(NULL, n), realloc(p, 0), failure */
    for (int i = 0; i < 10; i++) {
        char *p = touch(malloc(101), 101);
        memset(p, 'g', 101);
        char *q = realloc(p, 5001);
        CHECK(q != NULL && q[0] == 'g' && q[100] == 'g');
        k_grow[i] = touch(q, 5001);
    }
    for (int i = 0; i < 10; i++) {
        char *p = touch(malloc(9001), 9001);
        memset(p, 's', 9001);
        char *q = realloc(p, 3003);
        CHECK(q != NULL && q[0] == 's' && q[3002] == 's');
        k_shrink[i] = touch(q, 3003);
    }
    int moved = 0;
    for (int i = 0; i < 10; i++) {
        char *p = touch(malloc(2003), 2003);
        memset(p, 'm', 2003);
        k_blocker[i] = touch(malloc(2005), 2005); /* in use right after p: realloc must move */
        char *q = realloc(p, 60001);
        CHECK(q != NULL && q[0] == 'm' && q[2002] == 'm');
        moved += (q != p);
        k_move[i] = touch(q, 60001);
    }
    CHECK(moved == 10);
    for (int i = 0; i < 10; i++) k_rnull[i] = touch(realloc(NULL, 2222), 2222);
    for (int i = 0; i < 10; i++) {
        void *p = touch(malloc(4444), 4444);
        void *q = realloc(p, 0); /* glibc: frees p, returns NULL */
        KEEP(q);
        CHECK(q == NULL);
    }
    for (int i = 0; i < 10; i++) {
        void *p = touch(malloc(1357), 1357);
        errno = 0;
        void *q = realloc(p, SIZE_MAX - 4096); /* fails: p stays live, untouched */
        KEEP(q);
        CHECK(q == NULL && errno == ENOMEM);
        errno = 0;
        q = reallocarray(p, SIZE_MAX / 2, 3); /* overflow: p stays live */
        KEEP(q);
        CHECK(q == NULL && errno == ENOMEM);
        k_failre[i] = p;
    }

    /* reallocarray */
    for (int i = 0; i < 10; i++) k_ra[i] = touch(reallocarray(NULL, 13, 17), 221);
    for (int i = 0; i < 10; i++) {
        char *p = touch(reallocarray(NULL, 19, 23), 437);
        memset(p, 'r', 437);
        char *q = reallocarray(p, 29, 31);
        CHECK(q != NULL && q[436] == 'r');
        k_ragrow[i] = touch(q, 899);
    }
    errno = 0;
    { void *p = reallocarray(NULL, SIZE_MAX / 2, 3); KEEP(p); CHECK(p == NULL && errno == ENOMEM); }

    /* aligned allocations */
    for (int i = 0; i < 10; i++) {
        void *p = NULL;
        CHECK(posix_memalign(&p, 64, 1111) == 0);
        CHECK(((uintptr_t)p & 63) == 0);
        k_pm[i] = touch(p, 1111);
    }
    {
        void *p = (void *)0x1234;
        CHECK(posix_memalign(&p, 3, 100) == EINVAL); /* bad alignment: nothing allocated */
        CHECK(p == (void *)0x1234);
    }
    for (int i = 0; i < 10; i++) {
        void *p = aligned_alloc(128, 1280);
        CHECK(p != NULL && ((uintptr_t)p & 127) == 0);
        k_aa[i] = touch(p, 1280);
    }
    for (int i = 0; i < 10; i++) {
        void *p = memalign(32, 1333);
        CHECK(p != NULL && ((uintptr_t)p & 31) == 0);
        k_ma[i] = touch(p, 1333);
    }
    for (int i = 0; i < 10; i++) {
        void *p = valloc(1444);
        CHECK(p != NULL && ((uintptr_t)p & (PAGE - 1)) == 0);
        k_va[i] = touch(p, 1444);
    }
    for (int i = 0; i < 10; i++) {
        void *p = pvalloc(1555);
        CHECK(p != NULL && ((uintptr_t)p & (PAGE - 1)) == 0);
        k_pva[i] = touch(p, 1555);
    }

    snap_now();
    expect("1", 1000, 1000);
    expect("1", 1001, 0);
    expect("1", 0, 7);
    expect("1", 777, 300);
    expect("1", 101, 0);
    expect("1", 5001, 10);
    expect("1", 9001, 0);
    expect("1", 3003, 10);
    expect("1", 2003, 0);
    expect("1", 2005, 10);
    expect("1", 60001, 10);
    expect("1", 2222, 10);
    expect("1", 4444, 0);
    expect("1", 1357, 10);
    expect("1", 221, 10);
    expect("1", 437, 0);
    expect("1", 899, 10);
    expect("1", 1111, 10);
    expect("1", 1280, 10);
    expect("1", 1333, 10);
    expect("1", 1444, 10);
    expect("1", 1555, 10);

    /* free part of it; the exit snapshot holds the rest */
    for (int i = 0; i < 500; i++) free(k_malloc[i]);
    for (int i = 0; i < 300; i++) free(k_calloc[i]);
    for (int i = 0; i < 10; i++) free(k_pm[i]);
    for (int i = 0; i < 5; i++) free(k_ma[i]);
    for (int i = 0; i < 10; i++) free(k_va[i]);
    for (int i = 0; i < 10; i++) free(k_move[i]);
    for (int i = 0; i < 7; i++) free(k_zero[i]);
    for (int i = 0; i < 3; i++) k_grow[i] = touch(realloc(k_grow[i], 6007), 6007); /* grow again */
    expect("exit", 1000, 500);
    expect("exit", 777, 0);
    expect("exit", 0, 0);
    expect("exit", 1111, 0);
    expect("exit", 1280, 10);
    expect("exit", 1333, 5);
    expect("exit", 1444, 0);
    expect("exit", 1555, 10);
    expect("exit", 60001, 0);
    expect("exit", 2005, 10);
    expect("exit", 5001, 7);
    expect("exit", 6007, 3);
    expect("exit", 1357, 10);
    printf("done\n");
    return 0;
}
