/* posix_spawn and vfork+exec of /bin/true under the preload; longjmp out of
 * allocating frames. 10 x 2121 B live at exit. */
#include "common.h"
#include <setjmp.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;
static jmp_buf jb;
static void *volatile k[10];
static void *volatile jumped[200];
static int njumped;

__attribute__((noinline)) static void dive(int n) {
    void *p = touch(malloc(1919), 1919);
    jumped[njumped++] = p;
    if (n == 0) longjmp(jb, 1);
    dive(n - 1);
    KEEP(p);
}

int main(void) {
    for (int i = 0; i < 10; i++) k[i] = touch(malloc(2121), 2121);
    char *argv[] = {"/bin/true", NULL};
    pid_t pid;
    int st;
    CHECK(posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) == 0);
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    printf("posix_spawn=ok\n");
    pid = vfork();
    if (pid == 0) {
        execve("/bin/true", argv, environ);
        _exit(127);
    }
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    printf("vfork=ok\n");
    for (int r = 0; r < 10; r++) {
        if (setjmp(jb) == 0) dive(9);
    }
    CHECK(njumped == 100);
    for (int i = 0; i < 50; i++) free(jumped[i]);
    printf("longjmp=ok\n");
    expect("exit", 2121, 10);
    expect("exit", 1919, 50);
    return 0;
}
