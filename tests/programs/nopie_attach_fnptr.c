/* memtrace attach on a non-PIE executable that takes malloc's address
 * (tests/tests/attach.rs), as Debian's python3 does: `&malloc` is then the
 * executable's own PLT stub (the canonical address), while its calls go
 * through its GOT entry to libc's malloc; both must lead to libtrace.so
 * after the attach. Says "ready", waits for "go", allocates 4 blocks of
 * 5151 B directly and 2 of 5252 B through the pointer, says "quiet", waits
 * for "end", frees them, says "done". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

/* Assigned in code, not data: that is what makes the canonical PLT stub. */
void *(*volatile alloc_ptr)(size_t);

int main(void) {
    char line[64];
    void *direct[4], *through[2];
    /* Binds the executable's GOT entry for malloc now (lazy binding would
     * leave it pointing at its PLT until the first call). */
    alloc_ptr = malloc;
    void *first = malloc(10);
    KEEP(first);
    free(first);
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin) || strncmp(line, "go", 2))
        return 2;
    for (int i = 0; i < 4; i++)
        KEEP(direct[i] = malloc(5151));
    for (int i = 0; i < 2; i++)
        KEEP(through[i] = alloc_ptr(5252));
    printf("quiet\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin) || strncmp(line, "end", 3))
        return 2;
    for (int i = 0; i < 4; i++)
        free(direct[i]);
    for (int i = 0; i < 2; i++)
        free(through[i]);
    printf("done\n");
    return 0;
}
