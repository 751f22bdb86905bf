/* memtrace attach, then a library dlopen()ed after it (tests/tests/attach.rs):
 * its allocations are seen. Waits on stdin for "go" (the test attaches
 * first), dlopens argv[1] and calls plugin_alloc(5): five blocks of 6161 B
 * allocated inside the library; says "quiet", waits for "end", frees them. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    char line[64];
    if (argc < 2)
        return 2;
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin) || strncmp(line, "go", 2))
        return 2;
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        printf("dlopen: %s\n", dlerror());
        return 1;
    }
    void **(*alloc)(int) = (void **(*)(int))dlsym(h, "plugin_alloc");
    void (*release)(void **, int) = (void (*)(void **, int))dlsym(h, "plugin_free");
    void **blocks = alloc(5);
    printf("quiet\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin) || strncmp(line, "end", 3))
        return 2;
    release(blocks, 5);
    printf("done\n");
    return 0;
}
