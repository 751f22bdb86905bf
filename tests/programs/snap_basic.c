/* Two signal snapshots and the exit snapshot.
 *
 * usage: snap_basic [SIGNAL] [own-handler]
 *   SIGNAL      the signal to raise: USR2 (default), USR1, or a number
 *   own-handler install the program's own handler for that signal first
 *               (sigaction); it counts its calls, printed as handler_calls=N
 *
 * 1000 x 1000 B at site A, snapshot 1; 500 x 4000 B at site B, 300 of A
 * freed, snapshot 2; all of B freed, 1 x 12345 B; exit. */
#include "common.h"

static void *volatile site_a[1000];
static void *volatile site_b[500];
static volatile sig_atomic_t handler_calls;

static void own_handler(int sig) {
    (void)sig;
    handler_calls++;
}

static int parse_signal(const char *s) {
    if (!strcmp(s, "USR1")) return SIGUSR1;
    if (!strcmp(s, "USR2")) return SIGUSR2;
    return atoi(s);
}

int main(int argc, char **argv) {
    int sig = argc > 1 ? parse_signal(argv[1]) : SIGUSR2;
    int own = argc > 2 && !strcmp(argv[2], "own-handler");
    if (own) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = own_handler;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        CHECK(sigaction(sig, &sa, NULL) == 0);
    }
    for (int i = 0; i < 1000; i++) site_a[i] = touch(malloc(1000), 1000);
    fflush(stdout);
    raise(sig);
    expect("1", 1000, 1000);
    expect("1", 4000, 0);
    for (int i = 0; i < 500; i++) site_b[i] = touch(malloc(4000), 4000);
    for (int i = 0; i < 300; i++) free(site_a[i]);
    fflush(stdout);
    raise(sig);
    expect("2", 1000, 700);
    expect("2", 4000, 500);
    for (int i = 0; i < 500; i++) free(site_b[i]);
    void *last = touch(malloc(12345), 12345);
    KEEP(last);
    expect("exit", 1000, 700);
    expect("exit", 4000, 0);
    expect("exit", 12345, 1);
    if (own) printf("handler_calls=%d\n", (int)handler_calls);
    printf("done\n");
    return 0;
}
