/* RSS and glibc's heap at a snapshot moment (issue 12): the program holds
 * 20 MB in arena blocks and 64 MiB in blocks glibc mmaps on their own, all
 * pages touched, then reads its own VmRSS and mallinfo2() just before
 * snapshot 1 and, once the file exists (MEMTRACE_OUT=<prefix>), VmRSS and
 * VmHWM again. Prints key=value lines: rss_before_kb, rss_after_kb,
 * hwm_after_kb, arena, fordblks, hblkhd. */
#include "common.h"

#include <malloc.h>

#define ARENA_BLOCKS 200
#define ARENA_SIZE 100000
#define MMAP_BLOCKS 64
#define MMAP_SIZE (1 << 20)

static void *volatile keep[ARENA_BLOCKS + MMAP_BLOCKS];

static long status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0) v = atol(line + n);
    if (f) fclose(f);
    return v;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int i = 0; i < ARENA_BLOCKS; i++) keep[i] = memset(malloc(ARENA_SIZE), 1, ARENA_SIZE);
    for (int i = 0; i < MMAP_BLOCKS; i++) keep[ARENA_BLOCKS + i] = memset(malloc(MMAP_SIZE), 1, MMAP_SIZE);
    long before = status_kb("VmRSS:");
    struct mallinfo2 mi = mallinfo2();
    snap_now();
    const char *prefix = getenv("MEMTRACE_OUT");
    char path[4096];
    snprintf(path, sizeof path, "%s.1.snap", prefix ? prefix : "");
    for (int i = 0; prefix && i < 20000 && access(path, F_OK) != 0; i++) usleep(1000);
    long after = status_kb("VmRSS:");
    long hwm = status_kb("VmHWM:");
    printf("rss_before_kb=%ld rss_after_kb=%ld hwm_after_kb=%ld\n", before, after, hwm);
    printf("arena=%zu fordblks=%zu hblkhd=%zu\n", mi.arena, mi.fordblks, mi.hblkhd);
    printf("EXPECT 1 %d %d\nEXPECT 1 %d %d\n", ARENA_SIZE, ARENA_BLOCKS, MMAP_SIZE, MMAP_BLOCKS);
    return 0;
}
