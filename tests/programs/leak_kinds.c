/* Every kind of leak memcheck knows, in known amounts (issue 15).
 *
 *   definitely lost: 10 x 1000 (lose_many), the 64-byte head of a tree
 *                    holding two 1568-byte children (make_tree), the lower
 *                    of two 48-byte blocks pointing to each other (cycle)
 *   indirectly lost: the tree's two children, the cycle's other block
 *   possibly lost:   200 bytes pointed to only at +40 (interior)
 *   still reachable: a global chain 100 -> 100, and 300 bytes held only
 *                    on the stack of a thread blocked in read() (main
 *                    makes sure it is in read(), not about to enter it)
 *
 * A pointer dropped by the program must not survive as a stale copy: the
 * work happens in noinline functions and main scrubs the stack below it
 * before it returns.
 */
#include "common.h"
#include "leak_blocked.h"
#include <pthread.h>

struct node {
    struct node *left, *right;
    char pad[48];
};

static void *volatile g_root;
static char *volatile g_interior;
static int g_pipe[2];
static volatile pid_t g_blocked_tid;

__attribute__((noinline)) static void lose_many(void) {
    for (int i = 0; i < 10; i++) {
        /* Written over: a fresh chunk can still hold glibc's free-list
         * pointers (fd/bk) to chunks the cycle below gets later, which a
         * conservative scan would follow (memcheck's own allocator leaves
         * no such words). */
        void *p = malloc(1000);
        memset(p, 0, 1000);
        KEEP(p);
    }
}

__attribute__((noinline)) static void *make_child(void) {
    void *p = malloc(1568);
    memset(p, 0, 1568);
    return p;
}

__attribute__((noinline)) static void make_tree(void) {
    struct node *head = malloc(sizeof *head); /* 64 */
    memset(head, 0, sizeof *head);
    head->left = make_child();
    head->right = make_child();
    KEEP(head);
}

__attribute__((noinline)) static void cycle(void) {
    struct node *n[2];
    for (int i = 0; i < 2; i++) {
        n[i] = malloc(48);
        memset(n[i], 0, 48);
    }
    n[0]->left = n[1];
    n[1]->left = n[0];
    KEEP(n[0]);
    KEEP(n[1]);
}

__attribute__((noinline)) static void interior(void) {
    char *p = malloc(200);
    memset(p, 0, 200);
    g_interior = p + 40;
}

__attribute__((noinline)) static void reachable(void) {
    void **a = malloc(100);
    memset(a, 0, 100);
    a[0] = malloc(100);
    memset(a[0], 0, 100);
    g_root = a;
}

static void *blocked(void *arg) {
    (void)arg;
    char *volatile held = malloc(300);
    memset(held, 0, 300);
    g_blocked_tid = leak_gettid();
    char c;
    while (read(g_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    KEEP(held);
    return NULL;
}

__attribute__((noinline)) static void scrub(void) {
    volatile char buf[65536];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = 0;
}

int main(void) {
    CHECK(pipe(g_pipe) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, blocked, NULL) == 0);
    while (!g_blocked_tid)
        usleep(1000);
    leak_wait_blocked(g_blocked_tid, SYS_read);
    lose_many();
    make_tree();
    cycle();
    interior();
    reachable();
    scrub();
    return 0;
}
