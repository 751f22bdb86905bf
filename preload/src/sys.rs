//! Small pieces of plumbing shared by the other modules: a spin lock that
//! survives fork, cache-line padding, raw stderr logging, clocks, sleeping,
//! anonymous mappings, the writer's hasher.
//!
//! The bottom layer: it uses no other module of the crate (the thread's
//! re-entrancy guard and errno, which need the hot TLS block, are in
//! guard.rs; `verbose`, which needs the configuration, is in lib.rs).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// A static on cache lines of its own (128 bytes: Intel's adjacent-line
/// prefetcher fetches lines in pairs). What the writer thread writes often
/// must not share a line with what every hook touches: each write would
/// take the line away from the program's cores (measured: the writer's
/// state next to SEQ made every sequence number cost a cache miss).
#[repr(C, align(128))]
pub struct Line<T>(pub T);

/// The unwinder (another change in flight) still names the guard
/// `sys::NoTrace`; this alias goes once it imports `guard::NoTrace`.
pub use crate::guard::NoTrace;

impl<T> std::ops::Deref for Line<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A test-and-set lock. Not a pthread mutex because the fork child must be
/// able to reset it with a plain store, and because the writer holds it for
/// milliseconds at most while the other users (fork prepare, dlclose) are rare.
pub struct SpinLock {
    locked: AtomicBool,
}

impl SpinLock {
    pub const fn new() -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
        }
    }

    pub fn lock(&self) {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            backoff(&mut spins);
        }
    }

    pub fn unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }

    /// Only in a fork child, where the holder no longer exists.
    pub fn reset(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

/// Spin a little, then yield, then sleep briefly: waits here are short in the
/// common case but must not burn a core when the other side is descheduled.
pub fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else if *spins < 128 {
        // SAFETY: plain syscall wrapper.
        unsafe { libc::sched_yield() };
    } else {
        sleep_ns(50_000);
    }
}

pub fn sleep_ns(ns: u64) {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as _,
        tv_nsec: (ns % 1_000_000_000) as _,
    };
    // SAFETY: valid timespec; an early wake-up by a signal is harmless.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

/// Data guarded by a `SpinLock`.
pub struct Locked<T> {
    pub lock: SpinLock,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` only goes through `lock()`, which serialises it.
unsafe impl<T: Send> Sync for Locked<T> {}

impl<T> Locked<T> {
    pub const fn new(v: T) -> Self {
        Locked {
            lock: SpinLock::new(),
            data: UnsafeCell::new(v),
        }
    }

    pub fn lock(&self) -> LockedGuard<'_, T> {
        self.lock.lock();
        LockedGuard { l: self }
    }
}

pub struct LockedGuard<'a, T> {
    l: &'a Locked<T>,
}

impl<T> std::ops::Deref for LockedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the lock.
        unsafe { &*self.l.data.get() }
    }
}

impl<T> std::ops::DerefMut for LockedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we hold the lock.
        unsafe { &mut *self.l.data.get() }
    }
}

impl<T> Drop for LockedGuard<'_, T> {
    fn drop(&mut self) {
        self.l.lock.unlock();
    }
}

/// Writes `memtrace: <msg>\n` to stderr with one write(2): no std stderr
/// lock, no allocation beyond the message itself.
pub fn log(msg: &str) {
    let mut line = Vec::with_capacity(msg.len() + 11);
    line.extend_from_slice(b"memtrace: ");
    line.extend_from_slice(msg.as_bytes());
    line.push(b'\n');
    // errno through glibc, not the hot block's cached address (guard.rs):
    // a cold path, and this module stays below the thread state.
    // SAFETY: __errno_location always returns this thread's errno slot.
    let errno_at = unsafe { libc::__errno_location() };
    // SAFETY: as above, a valid i32 of this thread.
    let e = unsafe { *errno_at };
    // SAFETY: writing an initialised buffer to fd 2; failure is ignored.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    // SAFETY: as above.
    unsafe { *errno_at = e };
}

pub fn now_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer; clock_gettime is async-signal-safe.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Anonymous private mapping straight from the kernel: the interning table,
/// its arena and the rings never touch malloc. MAP_NORESERVE: we reserve
/// generously and only touched pages cost memory.
pub fn mmap_anon(bytes: usize) -> Option<*mut u8> {
    // SAFETY: a fresh anonymous mapping aliases nothing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        crate::leaks::own_mapping(p as u64, bytes as u64);
        Some(p.cast())
    }
}

/// A fast hasher for the writer's tables. Heap addresses are 16-aligned, so
/// the low bits must be mixed in from the high ones (FxHash would not).
#[derive(Default, Clone, Copy)]
pub struct MixHasher(u64);

impl std::hash::Hasher for MixHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51afd7ed558ccd);
        x ^= x >> 33;
        x
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v)
            .wrapping_mul(0x9E3779B97F4A7C15)
            .rotate_left(31);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64)
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64)
    }
}

pub type BuildMix = std::hash::BuildHasherDefault<MixHasher>;
