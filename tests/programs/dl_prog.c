/* dlopen a library (argv[1]) that allocates 100 x 7070 B, dlclose it,
 * snapshot. The blocks stay live; their stacks point into the unloaded
 * library. Prints unloaded=yes if the library is gone from the link map. */
#include "common.h"
#include <dlfcn.h>
#include <link.h>

static void *volatile k[100];
static int found;

static int seek(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, (const char *)data)) found = 1;
    return 0;
}

int main(int argc, char **argv) {
    CHECK(argc > 1);
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    void (*dl_alloc)(void **, int) = (void (*)(void **, int))dlsym(h, "dl_alloc");
    CHECK(dl_alloc != NULL);
    void *tmp[100];
    dl_alloc(tmp, 100);
    for (int i = 0; i < 100; i++) k[i] = tmp[i];
    CHECK(dlclose(h) == 0);
    found = 0;
    dl_iterate_phdr(seek, "libdlalloc");
    printf("unloaded=%s\n", found ? "no" : "yes");
    snap_now();
    expect("1", 7070, 100);
    for (int i = 0; i < 100; i++) free(k[i]);
    expect("exit", 7070, 0);
    return 0;
}
