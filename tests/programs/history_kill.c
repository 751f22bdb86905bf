/* History that survives SIGKILL (issue 13): 10 blocks of 3001 bytes kept,
 * then a line that grows by one block of 1003 bytes every 5 ms for
 * about 2 s, printing "GREW <n>" after each (stdout unbuffered), and then
 * SIGKILL to itself: no exit snapshot, no exit point. The history must show
 * the 10 kept blocks exactly and between n − (blocks of a period and some)
 * and n blocks of 1003. */
#include "common.h"
#include <time.h>

static void *kept[10];
static void *grow[1000];

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int i = 0; i < 10; i++) kept[i] = touch(malloc(3001), 3001);
    printf("EXPECT last 3001 10\n");
    struct timespec ts = {0, 5000000};
    for (int i = 0; i < 400; i++) {
        grow[i] = touch(malloc(1003), 1003);
        printf("GREW %d\n", i + 1);
        nanosleep(&ts, NULL);
    }
    raise(SIGKILL);
    return 1;
}
