/* fork: the child is traced into its own files, from the live set it
 * inherited. usage: forker [exec PATH [ARGS...]]
 *
 * Parent: 1000 x 1000 B, fork.
 *   Child (no exec): 300 x 3003 B, frees 200 of the inherited 1000 B
 *     blocks, snapshot 1, exit(0) -> its exit snapshot.
 *   Child (exec): execv(PATH, ARGS) right away.
 * Parent: waits, 50 x 5005 B, snapshot 1, exit.
 * Prints child_pid=N and parent_pid=N; EXPECT lines name parent.<tag> or
 * child.<tag>. */
#include "common.h"
#include <sys/wait.h>

static void *volatile a[1000];
static void *volatile c[300];
static void *volatile p5[50];

int main(int argc, char **argv) {
    for (int i = 0; i < 1000; i++) a[i] = touch(malloc(1000), 1000);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (argc > 2 && !strcmp(argv[1], "exec")) {
            execv(argv[2], argv + 2);
            _exit(127);
        }
        for (int i = 0; i < 300; i++) c[i] = touch(malloc(3003), 3003);
        for (int i = 0; i < 200; i++) free(a[i]);
        snap_now();
        expect("child.1", 1000, 800);
        expect("child.1", 3003, 300);
        expect("child.1", 5005, 0);
        for (int i = 0; i < 100; i++) free(c[i]);
        expect("child.exit", 1000, 800);
        expect("child.exit", 3003, 200);
        fflush(stdout);
        exit(0);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    printf("child_status=%d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    printf("child_pid=%d\n", (int)pid);
    printf("parent_pid=%d\n", (int)getpid());
    for (int i = 0; i < 50; i++) p5[i] = touch(malloc(5005), 5005);
    snap_now();
    expect("parent.1", 1000, 1000);
    expect("parent.1", 3003, 0);
    expect("parent.1", 5005, 50);
    expect("parent.exit", 1000, 1000);
    expect("parent.exit", 5005, 50);
    printf("done\n");
    return 0;
}
