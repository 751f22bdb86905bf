/* A program with its own malloc (tests/tests/attach.rs): memtrace attach
 * must refuse it (its allocations would bypass the hooks) and leave it
 * running. Says "ready", waits for a line, says "done". */
#include <stdio.h>
#include <string.h>

static char arena[1 << 20];
static size_t used;

void *malloc(size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (used + n > sizeof arena)
        return NULL;
    used += n;
    return arena + used - n;
}
void free(void *p) { (void)p; }
void *calloc(size_t n, size_t s) {
    void *p = malloc(n * s);
    if (p)
        memset(p, 0, n * s);
    return p;
}
void *realloc(void *p, size_t n) {
    void *q = malloc(n);
    if (p && q)
        memcpy(q, p, n); /* the arena is static: reading past p is harmless */
    return q;
}

int main(void) {
    char line[64];
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 2;
    printf("done\n");
    return 0;
}
