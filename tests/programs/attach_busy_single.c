/* memtrace attach on a single thread that never waits (tests/tests/attach.rs):
 * it allocates and frees without pause and only looks at stdin between
 * rounds with a poll() that does not block, so the attach must catch it as
 * it enters a system call. After "go" it frees every block it holds (from
 * before the attach and after), allocates 9 blocks of 7373 B in busy_block(),
 * says "quiet", waits for "end", frees them and says "done". */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")
#define SLOTS 64

static void *busy_block(void) {
    return malloc(7373); /* ATTACH_BUSY_BLOCK */
}

/* A line from stdin by read(2): stdio would allocate its buffer (inside libc,
 * after the attach: seen). */
static int read_word(char *line, size_t size, const char *word) {
    ssize_t n = read(0, line, size - 1);
    return n > 0 && strncmp(line, word, strlen(word)) == 0;
}

static int input_ready(void) {
    struct pollfd p = {.fd = 0, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

int main(void) {
    void *slot[SLOTS];
    char line[64];
    for (int i = 0; i < SLOTS; i++)
        KEEP(slot[i] = malloc(64 + i));
    printf("ready\n");
    fflush(stdout);
    for (unsigned long n = 0;; n++) {
        void **s = &slot[n % SLOTS];
        free(*s);
        KEEP(*s = malloc(16 + (n * 31) % 3000));
        if (n % 4096 == 0 && input_ready())
            break;
    }
    if (!read_word(line, sizeof line, "go"))
        return 2;
    for (int i = 0; i < SLOTS; i++)
        free(slot[i]);
    void *kept[9];
    for (int i = 0; i < 9; i++)
        KEEP(kept[i] = busy_block());
    printf("quiet\n");
    fflush(stdout);
    if (!read_word(line, sizeof line, "end"))
        return 2;
    for (int i = 0; i < 9; i++)
        free(kept[i]);
    printf("done\n");
    return 0;
}
