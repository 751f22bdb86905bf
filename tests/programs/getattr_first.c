/* pthread_getattr_np() as the very first thing on the main thread and on a
 * new thread, as Rust's runtime does: glibc holds the thread's lock while
 * its fopen (main thread) or realloc (every thread) calls malloc, so the
 * preload must not call pthread_getattr_np from inside that malloc.
 * Deliberately without common.h: its constructor would allocate first. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static void *volatile kept[3];

static void getattr_self(void) {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        abort();
    pthread_attr_destroy(&attr);
}

static void *thread_main(void *arg) {
    (void)arg;
    getattr_self();
    kept[1] = malloc(4321);
    return NULL;
}

int main(void) {
    getattr_self();
    kept[0] = malloc(1234);
    pthread_t t;
    if (pthread_create(&t, NULL, thread_main, NULL) != 0 || pthread_join(t, NULL) != 0)
        abort();
    printf("EXPECT exit 1234 1\nEXPECT exit 4321 1\n");
    return 0;
}
