/* Only memtrace_track/untrack, no malloc in between: 1M objects tracked and
 * untracked at once (more events than the writer lets wait before it
 * stops draining the rings), then 1000 left live. The writer must take
 * its cuts for these events alone, or the rings fill and the program
 * waits for ever (a bug the first version had). */
#include "common.h"
#include "memtrace.h"

static char g_arena[1000 * 16];

int main(void) {
    for (int i = 0; i < 1000000; i++) {
        char *p = g_arena + (i % 1000) * 16;
        CHECK(MEMTRACE_TRACK(3, p, 16) == 0);
        CHECK(MEMTRACE_UNTRACK(3, p) == 0);
    }
    for (int i = 0; i < 1000; i++)
        CHECK(MEMTRACE_TRACK(3, g_arena + i * 16, 12) == 0); /* SITE left */
    puts("done");
    return 0;
}
