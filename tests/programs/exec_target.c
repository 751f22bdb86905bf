/* Started by exec from forker: holds 50 x 6006 B to exit and says whether it
 * was started with libtrace.so in LD_PRELOAD. */
#include "common.h"

static void *volatile k[50];

int main(void) {
    for (int i = 0; i < 50; i++) k[i] = touch(malloc(6006), 6006);
    const char *pre = getenv("LD_PRELOAD");
    printf("exec_target_pid=%d\n", (int)getpid());
    printf("exec_target_preload=%s\n", pre && strstr(pre, "libtrace") ? "yes" : "no");
    expect("exec.exit", 6006, 50);
    return 0;
}
