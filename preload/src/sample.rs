//! Sampling (`MEMTRACE_SAMPLE=BYTES`): about one allocation per BYTES
//! allocated is recorded, the others skip the unwinder and record nothing.
//!
//! Which allocations: a Poisson process over allocated bytes with mean
//! interval BYTES, as tcmalloc and jemalloc do. Each thread counts down the
//! bytes to its next sample point; an allocation that reaches it is sampled
//! and a new interval −ln(U)·BYTES is drawn from the thread's own xorshift
//! generator (memoryless, so restarting at the end of the sampled block is
//! still the same process). A block of s bytes is therefore sampled with
//! probability p(s) = 1 − exp(−s/BYTES), independently of everything else,
//! and stands for 1/p(s) blocks and s/p(s) bytes (the analyzer's unbiased
//! estimator).
//!
//! Frees: only frees of sampled blocks are recorded, and those must be
//! matched exactly, so sampled live addresses sit in a lock-free set that
//! every free looks up (`remove`). The set is open addressing over
//! cache-line buckets (an overflow flag + 7 keys); a bucket's flag is set,
//! for good, when a key had to go on to the next bucket, so a lookup stops
//! at the first bucket without the flag and a removal can simply clear its
//! slot (no tombstones). It grows by levels: a new, twice larger table
//! takes the inserts once the newest is half full; lookups visit the
//! levels that hold keys (a count per level). All mmap'd, never malloc'd.
//!
//! Ordering: an address enters the set after the real malloc returned and
//! leaves it before the real free, like the sequence numbers (hooks.rs), so
//! glibc handing a freed sampled address to another thread at once is safe.

use crate::sys::{mmap_anon, SpinLock};
use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

thread_local! {
    /// xorshift64* state; 0 until seeded.
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// Bytes left until this thread's next sample point (≤ 0: not drawn yet).
/// Read on every allocation: kept in the thread's hot block (tls.rs).
mod left {
    #[inline(always)]
    pub fn get() -> i64 {
        crate::tls::hot().sample_left.get()
    }

    #[inline(always)]
    pub fn set(v: i64) {
        crate::tls::hot().sample_left.set(v)
    }
}

static SEEDS: AtomicU64 = AtomicU64::new(0);

/// True if an allocation of `size` bytes is to be sampled. Cheap unless it is.
#[inline(always)]
pub fn take(size: usize) -> bool {
    let v = left::get().wrapping_sub(size.min(i64::MAX as usize / 2) as i64);
    if v > 0 {
        left::set(v);
        false
    } else {
        crossed(size)
    }
}

#[cold]
#[inline(never)]
fn crossed(size: usize) -> bool {
    let size = size.min(i64::MAX as usize / 2) as i64;
    if RNG.with(|r| r.get()) == 0 {
        // First allocation of this thread: start the process here.
        seed();
        let v = draw() - size;
        if v > 0 {
            left::set(v);
            return false;
        }
    }
    left::set(draw());
    true
}

fn seed() {
    let n = SEEDS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: plain syscall.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u64;
    let mut x = crate::sys::now_ns(libc::CLOCK_MONOTONIC)
        ^ tid.rotate_left(32)
        ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (&SEEDS as *const AtomicU64 as u64);
    // splitmix64 finaliser, so that close seeds give unrelated streams.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    RNG.with(|r| r.set(if x == 0 { 0x2545_F491_4F6C_DD1D } else { x }));
}

/// An exponentially distributed interval with mean `rate` bytes, ≥ 1.
fn draw() -> i64 {
    let rate = crate::config::sample_rate().max(1) as f64;
    let r = RNG.with(|c| {
        let mut x = c.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        c.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    });
    // U uniform in (0, 1]: never ln(0).
    let u = ((r >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
    let v = -u.ln() * rate;
    if v >= (i64::MAX / 4) as f64 {
        i64::MAX / 4
    } else {
        (v as i64).max(1)
    }
}

// ---- the set of sampled live addresses.

const KEYS: usize = 7;
const MAX_PROBE: usize = 64;
const LEVEL0_BITS: u32 = 9; // 512 buckets, 32 KiB
const MAX_LEVELS: usize = 24;

#[repr(C, align(64))]
struct Bucket {
    /// Bit 0: some key that hashes here (or earlier) lives further on.
    overflow: AtomicU64,
    keys: [AtomicU64; KEYS],
}

static TABLES: [AtomicPtr<Bucket>; MAX_LEVELS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_LEVELS];
/// Keys per level, side by side so that a free checks them in one line.
static COUNTS: [AtomicUsize; MAX_LEVELS] = [const { AtomicUsize::new(0) }; MAX_LEVELS];
static NLEVELS: AtomicUsize = AtomicUsize::new(0);
static GROW: SpinLock = SpinLock::new();

#[inline(always)]
fn bits(level: usize) -> u32 {
    LEVEL0_BITS + level as u32
}

#[inline(always)]
fn home(addr: u64, level: usize) -> usize {
    ((addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits(level))) as usize
}

#[inline(always)]
fn bucket(t: *mut Bucket, level: usize, i: usize) -> &'static Bucket {
    let mask = (1usize << bits(level)) - 1;
    // SAFETY: tables are mapped with 2^bits buckets and never unmapped.
    unsafe { &*t.add(i & mask) }
}

/// Maps level `n` (under GROW) unless another thread did. errno is kept
/// (a failed mmap must not change what the program's call reports).
fn grow(seen: usize) -> bool {
    let e = crate::guard::errno();
    GROW.lock();
    let n = NLEVELS.load(Ordering::Acquire);
    let ok = if n != seen {
        true
    } else if n >= MAX_LEVELS {
        false
    } else {
        match mmap_anon(std::mem::size_of::<Bucket>() << bits(n)) {
            Some(p) => {
                TABLES[n].store(p.cast(), Ordering::Release);
                NLEVELS.store(n + 1, Ordering::Release);
                true
            }
            None => false,
        }
    };
    GROW.unlock();
    crate::guard::set_errno(e);
    ok
}

/// Fork child: the thread that held the growth lock did not survive; and
/// the child's thread draws its own intervals from now on (it would
/// otherwise repeat its parent thread's random stream).
pub fn fork_child() {
    GROW.reset();
    RNG.with(|r| r.set(0));
    left::set(0);
}

/// Adds a sampled block's address. False if no memory could be had: then
/// the caller records nothing (its free could not be matched).
pub fn insert(addr: usize) -> bool {
    let addr = addr as u64;
    loop {
        let n = NLEVELS.load(Ordering::Acquire);
        if n == 0 {
            if !grow(0) {
                return false;
            }
            continue;
        }
        let lv = n - 1;
        let cap = KEYS << bits(lv);
        if COUNTS[lv].load(Ordering::Relaxed) >= cap / 2 {
            if !grow(n) {
                return false;
            }
            continue;
        }
        let t = TABLES[lv].load(Ordering::Acquire);
        // Counted before the key is visible: a lookup that can see the key
        // (the block's pointer reached it) sees a non-zero count.
        COUNTS[lv].fetch_add(1, Ordering::SeqCst);
        let h = home(addr, lv);
        for i in 0..MAX_PROBE {
            let b = bucket(t, lv, h + i);
            for k in &b.keys {
                if k.load(Ordering::Relaxed) == 0
                    && k.compare_exchange(0, addr, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                {
                    return true;
                }
            }
            // Full: lookups for this home must go on past this bucket.
            b.overflow.fetch_or(1, Ordering::SeqCst);
        }
        COUNTS[lv].fetch_sub(1, Ordering::SeqCst);
        if !grow(n) {
            return false;
        }
    }
}

/// Removes `addr` if it is a sampled block; true if it was.
#[inline]
pub fn remove(addr: usize) -> bool {
    let addr = addr as u64;
    let n = NLEVELS.load(Ordering::Acquire);
    for lv in (0..n).rev() {
        if COUNTS[lv].load(Ordering::Acquire) == 0 {
            continue;
        }
        let t = TABLES[lv].load(Ordering::Acquire);
        let h = home(addr, lv);
        for i in 0..MAX_PROBE {
            let b = bucket(t, lv, h + i);
            for k in &b.keys {
                if k.load(Ordering::Acquire) == addr {
                    // Only the thread freeing the block removes its key.
                    k.store(0, Ordering::SeqCst);
                    COUNTS[lv].fetch_sub(1, Ordering::SeqCst);
                    return true;
                }
            }
            if b.overflow.load(Ordering::Acquire) == 0 {
                break;
            }
        }
    }
    false
}
