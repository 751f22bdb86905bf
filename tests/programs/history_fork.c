/* A fork child's own history (issue 13): the parent keeps 7 blocks of 2221
 * bytes and forks; the child adds 3 of 3331, waits 300 ms and exits; the
 * parent adds 5 of 4441 after the child is gone. Prints "CHILD <pid>". */
#include "common.h"
#include <sys/wait.h>
#include <time.h>

static void *a[16];

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int i = 0; i < 7; i++) a[i] = touch(malloc(2221), 2221);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        for (int i = 7; i < 10; i++) a[i] = touch(malloc(3331), 3331);
        struct timespec ts = {0, 300000000};
        nanosleep(&ts, NULL);
        exit(0);
    }
    printf("CHILD %d\n", (int)pid);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (int i = 7; i < 12; i++) a[i] = touch(malloc(4441), 4441);
    return 0;
}
