/* memtrace.h in code compiled -fno-pie (build.rs: nopie_*): GNU ld
 * resolves the undefined weak memtrace_track to 0 at link time, with no
 * dynamic relocation, so even under LD_PRELOAD the macro finds NULL and
 * gives -2 (the header's build rule). */
#include "common.h"
#include "memtrace.h"

int main(void) {
    static char obj[32];
    printf("track=%d\n", MEMTRACE_TRACK(3, obj, sizeof obj));
    return 0;
}
