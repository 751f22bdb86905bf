/* A chart with known features (issue 13, `memtrace plot HISTORY`): a line
 * that grows (50 blocks of 20000 bytes over ≈ 1 s), a snapshot (SIGUSR2),
 * a spike (one block of 3000000 bytes held 400 ms: the peak, printed as
 * "SPIKE <ns>" before it is made and "UNSPIKE <ns>" before it is freed,
 * CLOCK_REALTIME), half the grown line freed, a second line that grows
 * (30 blocks of 10000 bytes), then SIGKILL: no exit snapshot. The peak is
 * the grown line and the spike together, and nothing else (stdout is
 * unbuffered: no stdio buffer). */
#include "common.h"
#include <time.h>

static void *grown[50], *second[30];

static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long long realtime_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int i = 0; i < 50; i++) {
        grown[i] = touch(malloc(20000), 20000);
        pause_ms(20);
    }
    raise(SIGUSR2);
    pause_ms(300);
    printf("SPIKE %lld\n", realtime_ns());
    void *spike = touch(malloc(3000000), 3000000);
    pause_ms(400);
    printf("UNSPIKE %lld\n", realtime_ns());
    free(spike);
    for (int i = 0; i < 25; i++) free(grown[i]);
    pause_ms(300);
    for (int i = 0; i < 30; i++) {
        second[i] = touch(malloc(10000), 10000);
        pause_ms(10);
    }
    pause_ms(300);
    printf("KILL\n");
    raise(SIGKILL);
    return 1;
}
