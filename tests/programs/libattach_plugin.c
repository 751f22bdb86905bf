/* The library attach_dlopen.c loads after memtrace attach. */
#include <stdlib.h>

void **plugin_alloc(int n) {
    void **v = calloc(n, sizeof *v); /* PLUGIN_TABLE */
    for (int i = 0; i < n; i++)
        v[i] = malloc(6161); /* PLUGIN_BLOCK */
    return v;
}

void plugin_free(void **v, int n) {
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}
