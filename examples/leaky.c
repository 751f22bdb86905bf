/* The memtrace demo: a small "server" that keeps a cache, leaks a little on
 * every request and takes two snapshots of itself (as `kill -USR2 <pid>`
 * would). `make demo` builds it -O2 without frame pointers and traces it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *key;
    char *value;
    struct entry *next;
};

static struct entry *cache[64];
static char *leaked[4096];
static int nleaked;

static char *copy_string(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void cache_put(int id)
{
    char key[32], value[900];
    int n = snprintf(key, sizeof key, "key-%d", id);
    memset(value, 'v', sizeof value);
    struct entry *e = malloc(sizeof *e);
    e->key = copy_string(key, (size_t)n);
    e->value = copy_string(value, sizeof value - 1);
    e->next = cache[id % 64];
    cache[id % 64] = e;
}

static size_t handle_request(int id)
{
    char *buf = malloc(4000);                 /* freed below */
    size_t n = (size_t)snprintf(buf, 4000, "response %d", id);
    char *session = calloc(1, 256);           /* the leak: never freed */
    memcpy(session, buf, n);
    leaked[nleaked++ % 4096] = session;
    if (id % 10 == 0)
        cache_put(id);
    free(buf);
    return n;
}

int main(void)
{
    for (int i = 0; i < 1000; i++)
        cache_put(100000 + i);
    raise(SIGUSR2);                           /* snapshot 1: the warm cache */

    size_t bytes = 0;
    for (int i = 0; i < 2000; i++)
        bytes += handle_request(i);
    raise(SIGUSR2);                           /* snapshot 2: after 2000 requests */

    /* Reading what was stored keeps gcc -O2 from deleting the allocations. */
    size_t sessions = 0;
    for (int i = 0; i < 4096; i++)
        sessions += leaked[i] != NULL && leaked[i][0] == 'r';
    printf("served 2000 requests (%zu bytes, %zu sessions)\n", bytes, sessions);
    return 0;
}
