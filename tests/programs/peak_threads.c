/* The exact peak across threads (issue 12): the main thread and two
 * workers each hold big blocks of their own size; when all of them hold
 * theirs (a barrier), traced bytes are at their highest. Then everybody
 * frees, waits for the others, and allocates smaller blocks of other sizes,
 * which never take traced bytes back up there.
 *
 * Prints, for snapshot 1 (taken after all that) and the exit snapshot:
 *   PEAK <size> <count>   the peak holds exactly <count> blocks of <size>
 *   NOTPEAK <size>        allocated after the peak: not in it
 * Sizes are unique to one thread and one phase. stdout is unbuffered: no
 * stdio buffer among the blocks. */
#include "common.h"

#include <pthread.h>

#define MAIN_SIZE 100001
#define W1_SIZE 200003
#define W1_COUNT 3
#define W2_SIZE 300007
#define W2_COUNT 2
#define AFTER_MAIN 50021
#define AFTER_W1 1009
#define AFTER_W2 1013

static pthread_barrier_t held, freed;
static void *volatile after[16];

struct worker {
    size_t size, count, after_size, after_count;
    void *blocks[8];
};

static void *work(void *arg) {
    struct worker *w = arg;
    for (size_t i = 0; i < w->count; i++) w->blocks[i] = touch(malloc(w->size), w->size);
    pthread_barrier_wait(&held); /* the peak: every thread holds its blocks */
    for (size_t i = 0; i < w->count; i++) free(w->blocks[i]);
    pthread_barrier_wait(&freed);
    for (size_t i = 0; i < w->after_count; i++) w->blocks[i] = touch(malloc(w->after_size), w->after_size);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    CHECK(pthread_barrier_init(&held, NULL, 3) == 0);
    CHECK(pthread_barrier_init(&freed, NULL, 3) == 0);
    struct worker w1 = {W1_SIZE, W1_COUNT, AFTER_W1, 4, {0}};
    struct worker w2 = {W2_SIZE, W2_COUNT, AFTER_W2, 5, {0}};
    pthread_t t1, t2;
    CHECK(pthread_create(&t1, NULL, work, &w1) == 0);
    CHECK(pthread_create(&t2, NULL, work, &w2) == 0);
    void *mine = touch(malloc(MAIN_SIZE), MAIN_SIZE);
    pthread_barrier_wait(&held);
    free(mine);
    pthread_barrier_wait(&freed);
    after[0] = touch(malloc(AFTER_MAIN), AFTER_MAIN);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    snap_now();
    printf("PEAK %d 1\nPEAK %d %d\nPEAK %d %d\n", MAIN_SIZE, W1_SIZE, W1_COUNT, W2_SIZE, W2_COUNT);
    printf("NOTPEAK %d\nNOTPEAK %d\nNOTPEAK %d\n", AFTER_MAIN, AFTER_W1, AFTER_W2);
    /* Still the peak at exit: the blocks above stay, nothing bigger comes. */
    return 0;
}
