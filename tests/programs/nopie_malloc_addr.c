/* Built without PIE (build.rs: every `nopie_*` program gets -fno-pie
 * -no-pie). The program takes malloc's address, as node and Debian's
 * python3 do: in a non-PIE executable that makes the linker give malloc a
 * canonical PLT stub in the executable (`UND malloc` with a non-zero value
 * in its dynamic symbols), so dlsym(RTLD_DEFAULT, "malloc") answers an
 * address inside the executable. The calls still go through the GOT to the
 * first malloc in the search order — libtrace.so's — so every allocation
 * is traced and no "not glibc" warning may be printed (issue 11, point 1). */
#include "common.h"

typedef void *(*alloc_fn)(size_t);
/* Both forms: an address in initialised data and one taken in code. */
static alloc_fn volatile from_data = malloc;
static alloc_fn volatile from_code;
static void *volatile held[64];

int main(void) {
    from_code = malloc;
    printf("same=%d\n", from_code == from_data);
    for (int i = 0; i < 32; i++)
        held[i] = touch(from_data(3333), 3333); /* MARK: via data pointer */
    for (int i = 32; i < 64; i++)
        held[i] = touch(from_code(4444), 4444); /* MARK: via code pointer */
    expect("1", 3333, 32);
    expect("1", 4444, 32);
    snap_now();
    for (int i = 0; i < 64; i += 2)
        free(held[i]);
    expect("exit", 3333, 16);
    expect("exit", 4444, 16);
    printf("done\n");
    return 0;
}
