/* memtrace.h — let memtrace see the objects of your own allocator.
 *
 * A pool, arena or free list that carves objects out of big malloc'd blocks
 * is seen by memtrace only as those big blocks. Report each object as it is
 * handed out and given back, and memtrace shows it as a block of its own, in
 * a domain of your choosing, at the stack that called memtrace_track (like
 * tracemalloc's PyTraceMalloc_Track, valgrind's VALGRIND_MALLOCLIKE_BLOCK):
 *
 *     #include "memtrace.h"            // lives beside libtrace.so
 *     #define POOL_DOMAIN 7
 *     void *pool_alloc(struct pool *p, size_t n) {
 *         void *obj = carve(p, n);
 *         MEMTRACE_TRACK(POOL_DOMAIN, obj, n);     // after it exists
 *         return obj;
 *     }
 *     void pool_free(struct pool *p, void *obj) {
 *         MEMTRACE_UNTRACK(POOL_DOMAIN, obj);      // before it is reused
 *         give_back(p, obj);
 *     }
 *
 * Then `memtrace top SNAP --domain 7` lists only the pool's objects, and
 * `--domain 0` only malloc's blocks. The objects' stacks start in the
 * function that called memtrace_track (pool_alloc above): `memtrace
 * traceback`, `top --key traceback`, or `--system pool_alloc` (drop that
 * frame) show the lines that called the pool.
 *
 * Domains: any number but 0, which is the malloc heap (memtrace records its
 * blocks itself): tracking in domain 0 is refused (-1). The same address may
 * be live in several domains at once (an object at the start of its pool's
 * chunk is one block of domain 0 and one of yours). The malloc'd chunk keeps
 * counting too: domain objects are not added to the heap's traced bytes,
 * peak, totals or history (they would count the same bytes twice).
 *
 * Return values (as PyTraceMalloc_Track): 0 recorded; -2 not recorded
 * (running without memtrace, not initialised yet, or MEMTRACE_SAMPLE set:
 * sampled estimates are for malloc's blocks only); -1 domain 0.
 *
 * Without memtrace the program runs unchanged: both functions are declared
 * weak, so where libtrace.so is not loaded they are NULL and the macros
 * below skip the call (one compare). Nothing to link against. Macros, not
 * inline functions: at -O0 a function would be a frame of its own, and the
 * innermost line of every object would be this header's.
 *
 * Build rule: compile the files that use these macros as position-
 * independent code, -fPIE or -fPIC (gcc's default on Debian 12 and most
 * distributions). The weak reference is then a load from the GOT with a
 * dynamic relocation, which the loader fills from libtrace.so under
 * LD_PRELOAD (also in an executable linked -no-pie). Code compiled with
 * -fno-pie references the function directly, and GNU ld resolves an
 * undefined weak function to 0 at link time without a dynamic relocation
 * (-z dynamic-undefined-weak does not change that): the macros then always
 * give -2, even under LD_PRELOAD (tests/programs/nopie_track.c).
 */
#ifndef MEMTRACE_H
#define MEMTRACE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported by libtrace.so. Use the macros below, not these: without
 * memtrace they are NULL. */
__attribute__((weak)) int memtrace_track(unsigned int domain, const void *ptr, size_t size);
__attribute__((weak)) int memtrace_untrack(unsigned int domain, const void *ptr);

/* `size` bytes at `ptr` are now a live object of `domain`, allocated here. */
#define MEMTRACE_TRACK(domain, ptr, size) \
    (memtrace_track ? memtrace_track((domain), (ptr), (size)) : -2)

/* The object at `ptr` of `domain` is no longer live. */
#define MEMTRACE_UNTRACK(domain, ptr) \
    (memtrace_untrack ? memtrace_untrack((domain), (ptr)) : -2)

#ifdef __cplusplus
}
#endif

#endif /* MEMTRACE_H */
