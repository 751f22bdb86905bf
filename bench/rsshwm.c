/* librsshwm.so: reports a process's own peak RSS at exit, for the heaptrack
 * column of scripts/bench.
 *
 * Under `heaptrack ./prog` the traced program is a grandchild of the
 * benchmark (heaptrack is a shell script that also runs heaptrack_interpret
 * and zstd), so wait4's rusage would give the largest RSS of the whole
 * tree, not the traced program's. heaptrack keeps any LD_PRELOAD it is given
 * (it prepends its own library), so this library rides along: in its
 * destructor, late in exit, it appends "<pid> <comm> <VmHWM KiB>" to the
 * file named by BENCH_RSS_FILE. Every process of the tree writes a line; the
 * driver picks the program's by name. VmHWM, not getrusage's ru_maxrss: the
 * latter also keeps the high-water mark of the forking shell's memory from
 * before exec. No allocation, no stdio: only syscalls, so it disturbs
 * neither tracer. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *put_num(char *p, unsigned long v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

__attribute__((destructor)) static void rsshwm_report(void) {
    const char *path = getenv("BENCH_RSS_FILE");
    if (!path || !*path)
        return;
    unsigned long hwm = 0;
    char st[4096];
    int sfd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (sfd < 0)
        return;
    ssize_t sn = read(sfd, st, sizeof st - 1);
    close(sfd);
    if (sn <= 0)
        return;
    st[sn] = 0;
    const char *q = strstr(st, "VmHWM:");
    if (!q)
        return;
    for (q += 6; *q == ' ' || *q == '\t'; q++)
        ;
    while (*q >= '0' && *q <= '9')
        hwm = hwm * 10 + (unsigned long)(*q++ - '0');
    char comm[32];
    ssize_t n = 0;
    int cfd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
    if (cfd >= 0) {
        n = read(cfd, comm, sizeof comm - 1);
        close(cfd);
    }
    if (n <= 0) {
        memcpy(comm, "?", 1);
        n = 1;
    }
    while (n > 0 && (comm[n - 1] == '\n' || comm[n - 1] == '\r'))
        n--;
    for (ssize_t i = 0; i < n; i++)
        if (comm[i] == ' ')
            comm[i] = '_';
    char line[96], *p = line;
    p = put_num(p, (unsigned long)getpid());
    *p++ = ' ';
    memcpy(p, comm, (size_t)n);
    p += n;
    *p++ = ' ';
    p = put_num(p, hwm);
    *p++ = '\n';
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        ssize_t w = write(fd, line, (size_t)(p - line));
        (void)w;
        close(fd);
    }
}
