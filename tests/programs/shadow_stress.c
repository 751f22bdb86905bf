/* Stresses the unwinder's record of the previous capture and its stack-id
 * cache (preload/src/unwind/shadow.rs): stacks that are the same from one
 * allocation to the next except where it is hardest to notice.
 *
 * - A stable deep part (NEST frames) under an event loop whose last two or
 *   three frames change on every allocation (the server pattern, where the
 *   id cache answers most captures).
 * - Every ROUND allocations the deep part is rebuilt with another mix of
 *   two functions of the same frame size: frames at the same stack
 *   addresses, same pc below, different callers above — a stale record
 *   that only its re-checked return addresses can tell apart.
 * - Some rounds leave the deep part by longjmp instead of returning, and
 *   some allocate from one level deeper (a different sp for everything).
 * - Twelve more call sites in rotation: more entry points than the
 *   unwinder keeps records for, so records are taken over and copied.
 * - Moved frames (mv_*): the allocating frame at the same address, its
 *   caller's frame (rbp-based: a VLA) moved, and the caller's old return
 *   address slot, now inside its VLA, holding the old value again. Only
 *   the saved rbp tells the two stacks apart.
 *
 * Run under MEMTRACE_UNWIND=check: every capture is compared with
 * libunwind's. Each block's size names the path it came from; EXPECT lines
 * give the exit snapshot's live blocks. */
#include "common.h"

#include <setjmp.h>

#define NEST 20
#define ROUNDS 60
#define ROUND 500

static void *held[ROUNDS];
static jmp_buf escape;

__attribute__((noipa)) static void *leaf_small(unsigned i) {
    return touch(malloc(100 + (i & 3)), 100);
}

__attribute__((noipa)) static void *leaf_large(unsigned i) {
    return touch(malloc(200 + (i & 3)), 200);
}

__attribute__((noipa)) static void *handler(unsigned i) {
    void *p = (i & 4) ? leaf_small(i) : leaf_large(i);
    KEEP(p);
    return p;
}

__attribute__((noipa)) static void *direct(unsigned i) {
    return touch(malloc(300), 300);
}

/* Twelve allocating call sites of their own. */
#define SITE(k) \
    __attribute__((noipa)) static void *site_##k(unsigned i) { return touch(malloc(400 + k), 400 + k); }
SITE(0) SITE(1) SITE(2) SITE(3) SITE(4) SITE(5) SITE(6) SITE(7) SITE(8) SITE(9) SITE(10) SITE(11)
static void *(*const sites[12])(unsigned) = {
    site_0, site_1, site_2, site_3, site_4, site_5, site_6, site_7, site_8, site_9, site_10, site_11,
};

/* The event loop: ROUND allocations freed at once, one kept per round. */
__attribute__((noipa)) static void event_loop(unsigned round) {
    for (unsigned i = 0; i < ROUND; i++) {
        void *p = (i % 5 == 2) ? sites[(i / 5 + round) % 12](i)
                  : (i % 3 == 0) ? direct(i) : handler(i + round);
        KEEP(p);
        if (i == ROUND - 1) {
            held[round] = p;
        } else {
            free(p);
        }
    }
    if (round % 7 == 3)
        longjmp(escape, 1);
}

__attribute__((noipa)) static void deeper(unsigned round) {
    event_loop(round);
    KEEP(round);
}

__attribute__((noipa)) static long nest_a(int d, unsigned round, unsigned mask);
__attribute__((noipa)) static long nest_b(int d, unsigned round, unsigned mask);

/* nest_a and nest_b: the same frame, called at the same depths; they
 * differ only in what they return (so they stay two functions). */
#define NEST_FN(name, result)                                       \
    __attribute__((noipa)) static long name(int d, unsigned round,  \
                                            unsigned mask) {        \
        if (d == 0) {                                               \
            if (round % 5 == 1)                                     \
                deeper(round);                                      \
            else                                                    \
                event_loop(round);                                  \
        } else if ((mask >> d) & 1) {                               \
            nest_a(d - 1, round, mask);                             \
        } else {                                                    \
            nest_b(d - 1, round, mask);                             \
        }                                                           \
        KEEP(d);                                                    \
        return result;                                              \
    }
NEST_FN(nest_a, d + 1)
NEST_FN(nest_b, d ^ 1)

/* Moved frames. mv_h calls mv_f from two sites with VLA sizes that add up
 * to the same: mv_g, the allocating frame, is at the same address both
 * times, with the same return address, while mv_f's frame (and so the rbp
 * mv_g saved) moved up by MV_SHIFT. Called from the second site, mv_f
 * writes the return address it had when called from the first site into
 * the slot where it was then (inside its VLA now). Every return-address
 * slot the previous capture read then holds what it held; the saved rbp in
 * mv_g's frame is the one difference. */
#define MV_SHIFT 512
static uintptr_t mv_old_cfa, mv_old_ra;
static unsigned mv_planted;

__attribute__((noipa)) static void *mv_g(unsigned n) {
    volatile char pad[n]; /* a VLA: an rbp-based frame that saves rbp */
    pad[0] = 0;
    return touch(malloc(500), 500);
}

__attribute__((noipa)) static void *mv_f(unsigned n, int from_second_site) {
    volatile char vla[n];
    vla[0] = 0;
    uintptr_t cfa = (uintptr_t)__builtin_frame_address(0) + 16;
    if (!from_second_site) {
        mv_old_cfa = cfa;
        mv_old_ra = (uintptr_t)__builtin_return_address(0);
    } else {
        uintptr_t slot = mv_old_cfa - 8;
        if (slot >= (uintptr_t)vla && slot + 8 <= (uintptr_t)vla + n) {
            memcpy((char *)slot, &mv_old_ra, 8);
            mv_planted++;
        }
    }
    return mv_g(16);
}

__attribute__((noipa)) static void *mv_h(int second) {
    unsigned n = second ? MV_SHIFT : 2 * MV_SHIFT;
    volatile char vla[n];
    vla[0] = 0;
    void *p;
    if (second) {
        p = mv_f(32 + MV_SHIFT, 1);
        KEEP(p);
    } else {
        p = mv_f(32, 0);
        vla[1] = 1;
    }
    return p;
}

int main(void) {
    for (unsigned i = 0; i < 400; i++)
        free(mv_h(i & 1));
    if (!mv_planted) {
        fprintf(stderr, "shadow_stress: the moved-frame case never lined up\n");
        return 1;
    }
    for (unsigned round = 0; round < ROUNDS; round++) {
        /* One or two bits of the mix change from round to round. */
        unsigned mask = (round * 2654435761u) >> 7;
        if (setjmp(escape) == 0)
            nest_a(NEST - 1, round, mask);
    }
    /* What is held at exit: the last block of each round. */
    size_t count[400] = {0};
    for (unsigned round = 0; round < ROUNDS; round++) {
        unsigned i = ROUND - 1, j = i + round;
        size_t s = (i % 3 == 0) ? 300 : (j & 4) ? 100 + (j & 3) : 200 + (j & 3);
        count[s]++;
    }
    for (size_t s = 100; s < 400; s++)
        if (count[s] || s == 300)
            expect("exit", s, count[s]);
    return 0;
}
