/* The memtrace demo's custom allocator: a pool that carves fixed-size
 * objects out of one malloc'd chunk and reports each object to memtrace
 * (memtrace.h, beside libtrace.so). Without the two macros memtrace would
 * see one 64 KiB block; with them, each object at the line that asked the
 * pool for it, in domain 1. Tokens are dropped without being given back:
 * the leak check finds them definitely lost in domain 1, although the
 * chunk that holds them is still reachable. Runs unchanged without memtrace. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "memtrace.h"

#define POOL_DOMAIN 1
#define OBJECT_SIZE 64
#define CHUNK_SIZE (64 * 1024)

struct pool {
    char *chunk;
    size_t used;
    void *free_list; /* given-back objects, linked through their first word */
};

static struct pool pool;

static void *pool_alloc(size_t n)
{
    void *obj;
    if (pool.free_list) {
        obj = pool.free_list;
        pool.free_list = *(void **)obj;
    } else {
        if (!pool.chunk)
            pool.chunk = malloc(CHUNK_SIZE);
        if (pool.used + OBJECT_SIZE > CHUNK_SIZE)
            return NULL;
        obj = pool.chunk + pool.used;
        pool.used += OBJECT_SIZE;
    }
    MEMTRACE_TRACK(POOL_DOMAIN, obj, n);
    return obj;
}

static void pool_free(void *obj)
{
    MEMTRACE_UNTRACK(POOL_DOMAIN, obj);
    *(void **)obj = pool.free_list;
    pool.free_list = obj;
}

struct session { char user[40]; int id; };
struct token { unsigned char bytes[24]; };

static struct session *session_open(int id)
{
    struct session *s = pool_alloc(sizeof *s); /* the sessions' line */
    snprintf(s->user, sizeof s->user, "user-%d", id);
    s->id = id;
    return s;
}

static struct token *token_new(void)
{
    struct token *t = pool_alloc(sizeof *t); /* the tokens' line */
    memset(t->bytes, 0x5a, sizeof t->bytes);
    return t;
}

static struct session *open_sessions[100];
struct token *current_token; /* not static: a global the compiler must keep */

int main(void)
{
    for (int i = 0; i < 100; i++)
        open_sessions[i] = session_open(i);
    for (int i = 0; i < 100; i += 3) { /* close a third of them */
        pool_free(open_sessions[i]);
        open_sessions[i] = NULL;
    }
    for (int i = 0; i < 10; i++)
        current_token = token_new(); /* each older token is dropped: lost */
    printf("pool: %zu bytes of its chunk handed out\n", pool.used);
    return 0;
}
