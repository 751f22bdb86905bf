/* A statically linked program (built with -static): memtrace attach must
 * refuse it and leave it running. Says "ready", waits for a line, exits 0. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    char line[64];
    void *p = malloc(100);
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 2;
    free(p);
    printf("done\n");
    return 0;
}
