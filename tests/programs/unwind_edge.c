/* Stacks the fast unwinder must get exactly right (or hand to libunwind):
 * allocations from a signal handler (on the thread's stack and on a
 * sigaltstack), on a makecontext coroutine stack, after a longjmp, from a
 * qsort callback, under alloca (CFA from rbp at -O2), through functions
 * with and without frame pointers mixed, and in a thread. Each kind uses
 * its own size so the test can find it; every stack must reach main (or the
 * thread's start routine). The blocks stay live until exit. */
#include "common.h"
#include <alloca.h>
#include <pthread.h>
#include <setjmp.h>
#include <ucontext.h>

#define N 64
static void *volatile keep[N];
static int nkeep;

static void *hold(size_t n) {
    void *p = touch(malloc(n), n);
    if (nkeep < N)
        keep[nkeep++] = p;
    return p;
}

static volatile sig_atomic_t in_handler;
static void on_signal(int sig) {
    (void)sig;
    in_handler = 1;
    hold(1101);
}
static void on_altstack(int sig) {
    (void)sig;
    hold(1102);
}

static ucontext_t main_ctx, co_ctx;
static void coroutine(void) { hold(1103); }

static jmp_buf jb;
__attribute__((noinline)) static void jump_back(void) {
    hold(1); /* a frame that longjmp abandons */
    longjmp(jb, 1);
}

static int cmp(const void *a, const void *b) {
    static int once;
    if (!once++)
        hold(1105);
    return *(const int *)a - *(const int *)b;
}

__attribute__((noinline)) static void with_alloca(int n) {
    char *buf = alloca(n);
    buf[0] = 1;
    KEEP(buf);
    hold(1106);
}

__attribute__((noinline, optimize("no-omit-frame-pointer"))) static int mixed_fp(int n);
__attribute__((noinline, optimize("omit-frame-pointer"))) static int mixed_nofp(int n) {
    int r = n ? mixed_fp(n - 1) : (hold(1107), 0);
    KEEP(&r);
    return r + 1;
}
__attribute__((noinline, optimize("no-omit-frame-pointer"))) static int mixed_fp(int n) {
    int r = mixed_nofp(n);
    KEEP(&r);
    return r + 1;
}

static void *thread_main(void *arg) {
    (void)arg;
    hold(1108);
    return NULL;
}

int main(void) {
    signal(SIGURG, on_signal);
    raise(SIGURG);

    stack_t ss = {.ss_sp = malloc(1 << 16), .ss_size = 1 << 16};
    CHECK(sigaltstack(&ss, NULL) == 0);
    struct sigaction sa = {.sa_handler = on_altstack, .sa_flags = SA_ONSTACK};
    sigaction(SIGWINCH, &sa, NULL);
    raise(SIGWINCH);

    static char co_stack[1 << 16];
    getcontext(&co_ctx);
    co_ctx.uc_stack.ss_sp = co_stack;
    co_ctx.uc_stack.ss_size = sizeof co_stack;
    co_ctx.uc_link = &main_ctx;
    makecontext(&co_ctx, coroutine, 0);
    CHECK(swapcontext(&main_ctx, &co_ctx) == 0);

    if (!setjmp(jb))
        jump_back();
    hold(1104);

    int v[64];
    for (int i = 0; i < 64; i++)
        v[i] = (i * 37) % 64;
    qsort(v, 64, sizeof v[0], cmp);

    with_alloca(300);
    mixed_nofp(20);

    pthread_t t;
    pthread_create(&t, NULL, thread_main, NULL);
    pthread_join(t, NULL);

    for (size_t s = 1101; s <= 1108; s++)
        expect("exit", s, 1);
    return 0;
}
