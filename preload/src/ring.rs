//! Per-thread event rings: the transport from the hooks to the writer.
//!
//! Each thread owns one single-producer/single-consumer byte ring (mmap'd,
//! never malloc'd). All rings ever created sit in a global lock-free list;
//! they are never unmapped but recycled: when a thread exits, its ring is
//! marked FINISHED, the writer drains it and marks it FREE, and the next new
//! thread takes it. Memory is thus bounded by the peak number of threads.
//!
//! Events: a tag byte and varints. Alloc {seq, addr, size, stack},
//! Free {seq, addr}, Track {seq, addr, size, stack, domain} and Untrack
//! {seq, addr, domain} (`memtrace_track`, track.rs: an object of a custom
//! allocator, keyed by domain and address), where seq is the event's key
//! (seq.rs); seq and addr
//! are zigzag deltas against the previous event of the same ring (both
//! sides keep the previous values; they are reset together when the ring is
//! recycled).
//!
//! The producer publishes with a Release store of `head`; the consumer reads
//! with Acquire and frees space with a Release store of `tail`. A full ring
//! makes the producer wait for the writer: memory stays bounded and no event
//! is dropped.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

pub const RING_BYTES: usize = 256 << 10;
const MASK: u64 = RING_BYTES as u64 - 1;
/// The `Ring` itself, then the producer thread's scratch.
const HEADER_BYTES: usize = 64 << 10;
const SCRATCH_AT: usize = 1024;
/// Bytes of per-thread scratch that travel with a ring (`Ring::scratch`).
pub const SCRATCH_BYTES: usize = HEADER_BYTES - SCRATCH_AT;
const _: () = assert!(std::mem::size_of::<Ring>() <= SCRATCH_AT);

pub const FREE: u32 = 0;
pub const OWNED: u32 = 1;
pub const FINISHED: u32 = 2;

pub const TAG_ALLOC: u8 = 1;
pub const TAG_FREE: u8 = 2;
pub const TAG_TRACK: u8 = 3;
pub const TAG_UNTRACK: u8 = 4;

/// Each group of fields on its own cache line, by who writes it: a line
/// written by both threads would move between their cores on every event
/// (measured: this false sharing alone cost a traced allocation about as
/// much as unwinding its stack).
#[repr(C, align(64))]
pub struct Ring {
    /// Bytes published by the producer (monotonic).
    pub head: AtomicU64,
    _pad0: [u8; 56],
    /// Bytes consumed by the writer (monotonic).
    pub tail: AtomicU64,
    _pad1: [u8; 56],
    // Written by the producer on every event.
    /// Set by the producer before it takes its key (seq.rs) and cleared
    /// after it published the event: lets the writer know whether an event
    /// numbered below a snapshot point may still be on its way. Read by the
    /// writer only when it completes a snapshot.
    pub busy: AtomicU32,
    p_cached_tail: UnsafeCell<u64>,
    p_prev_seq: UnsafeCell<u64>,
    p_prev_addr: UnsafeCell<u64>,
    _pad2: [u8; 32],
    // Written by the writer thread, under its state lock.
    pub c_prev_seq: UnsafeCell<u64>,
    pub c_prev_addr: UnsafeCell<u64>,
    /// Highest key the writer has drained from this ring (keys of one ring
    /// never decrease).
    pub c_max_seq: UnsafeCell<u64>,
    /// The writer's number for the ring (1, 2, … in the order it first
    /// drained them; 0: not yet), carried by every drained `Event` as the
    /// thread that published it: a ring has one thread at a time, and the
    /// writer learns from `try_recycle` when it changes hands (temporaries
    /// are per thread, whole_run/totals.rs). Dense, so the writer indexes
    /// arrays with it.
    pub c_thread: UnsafeCell<u32>,
    /// The cut for which the writer found this ring's thread outside a hook
    /// (after the cut's barrier): its later events are all above that cut.
    pub c_done: UnsafeCell<u64>,
    /// 1 + the highest key drained when the writer gave up waiting for this
    /// ring's thread to leave a hook (0: never): while its thread stays
    /// inside that hook with nothing new published, cuts do not wait for it.
    pub c_stuck: UnsafeCell<u64>,
    _pad3: [u8; 16],
    // Rarely written.
    pub state: AtomicU32,
    pub next: AtomicPtr<Ring>,
    data: *mut u8,
}

const _: () = assert!(
    std::mem::offset_of!(Ring, busy) == 128 && std::mem::offset_of!(Ring, c_prev_seq) == 192
);
const _: () = assert!(std::mem::offset_of!(Ring, state) == 256);

// SAFETY: the atomics are shared; the producer-private cells are only touched
// by the owning thread (state OWNED, or the writer while the ring is FINISHED
// and drained), the consumer cells only by the writer under its lock.
unsafe impl Sync for Ring {}

static RINGS: AtomicPtr<Ring> = AtomicPtr::new(std::ptr::null_mut());
/// The next `c_thread` number (writer side only, under its lock).
static NEXT_RING_NUMBER: AtomicU32 = AtomicU32::new(1);

/// What a producer needs from whoever drains the rings (the writer, which
/// registers itself with `set_consumer` before the first event): this
/// module sits below the writer and does not name it.
pub struct Consumer {
    /// A ring is more than half full: wake the consumer if it sleeps.
    /// Must leave errno alone.
    pub nudge: fn(),
    /// A producer's ring is full: wait until `has_space()` (which re-reads
    /// the ring's tail) says the event fits; false to drop the event.
    pub wait_for_space: fn(has_space: &mut dyn FnMut() -> bool) -> bool,
    /// A thread that had a ring is exiting (its pthread key destructor).
    pub thread_exiting: fn(),
}

static CONSUMER: AtomicPtr<Consumer> = AtomicPtr::new(std::ptr::null_mut());

/// Registers the rings' consumer (once, at initialisation).
pub fn set_consumer(c: &'static Consumer) {
    CONSUMER.store(c as *const Consumer as *mut Consumer, Ordering::Release);
}

#[inline]
fn consumer() -> Option<&'static Consumer> {
    // SAFETY: null, or the `&'static Consumer` given to `set_consumer`.
    unsafe { CONSUMER.load(Ordering::Acquire).as_ref() }
}
static KEY: AtomicU32 = AtomicU32::new(u32::MAX);

/// Creates the pthread key whose destructor hands a thread's ring back.
pub fn init() -> bool {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: valid out pointer; the destructor is a plain extern fn.
    if unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) } != 0 {
        return false;
    }
    KEY.store(key, Ordering::Release);
    true
}

/// The pthread key's destructor: hands the thread's ring back (FINISHED;
/// the writer drains and recycles it) and tells the consumer. A thread's
/// ring pointer is in its hot block (`tls::Hot::ring`), and so is
/// `exiting`, set here: later events of this thread (from other TLS
/// destructors, glibc's thread teardown) use a ring only for the one event
/// and hand it back at once (`with_new_ring`).
extern "C" fn thread_exit(p: *mut libc::c_void) {
    let r = p as *mut Ring;
    let hot = crate::tls::hot();
    hot.ring.set(std::ptr::null_mut());
    hot.exiting.set(true);
    if !r.is_null() {
        // SAFETY: rings are never unmapped.
        unsafe { (*r).state.store(FINISHED, Ordering::SeqCst) };
    }
    if let Some(c) = consumer() {
        (c.thread_exiting)();
    }
}

/// Iterates over every ring ever created.
pub fn for_each(mut f: impl FnMut(&Ring)) {
    let mut r = RINGS.load(Ordering::SeqCst);
    while !r.is_null() {
        // SAFETY: rings are never unmapped; `next` is set before publication.
        unsafe {
            f(&*r);
            r = (*r).next.load(Ordering::Acquire);
        }
    }
}

fn acquire() -> *mut Ring {
    let mut found: *mut Ring = std::ptr::null_mut();
    for_each(|r| {
        if found.is_null()
            && r.state
                .compare_exchange(FREE, OWNED, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        {
            found = r as *const Ring as *mut Ring;
        }
    });
    if !found.is_null() {
        // SAFETY: we own the ring now (FREE -> OWNED); its scratch is ours
        // alone, and what the previous thread left there means nothing here.
        unsafe { std::ptr::write_bytes((found as *mut u8).add(SCRATCH_AT), 0, SCRATCH_BYTES) };
        return found;
    }
    let Some(mem) = crate::sys::mmap_anon(HEADER_BYTES + RING_BYTES) else {
        return std::ptr::null_mut();
    };
    let r = mem as *mut Ring;
    // SAFETY: fresh zeroed mapping, large enough, page-aligned.
    unsafe {
        std::ptr::write(
            r,
            Ring {
                head: AtomicU64::new(0),
                _pad0: [0; 56],
                tail: AtomicU64::new(0),
                _pad1: [0; 56],
                busy: AtomicU32::new(0),
                p_cached_tail: UnsafeCell::new(0),
                p_prev_seq: UnsafeCell::new(0),
                p_prev_addr: UnsafeCell::new(0),
                _pad2: [0; 32],
                c_prev_seq: UnsafeCell::new(0),
                c_prev_addr: UnsafeCell::new(0),
                c_max_seq: UnsafeCell::new(0),
                c_thread: UnsafeCell::new(0),
                c_done: UnsafeCell::new(0),
                c_stuck: UnsafeCell::new(0),
                _pad3: [0; 16],
                state: AtomicU32::new(OWNED),
                next: AtomicPtr::new(std::ptr::null_mut()),
                data: mem.add(HEADER_BYTES),
            },
        );
        let mut head = RINGS.load(Ordering::SeqCst);
        loop {
            (*r).next.store(head, Ordering::Release);
            match RINGS.compare_exchange(head, r, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
    }
    r
}

/// Runs `f` with this thread's ring (acquiring one on first use).
/// Returns None if no ring could be had (mmap failed): the event is lost,
/// which only happens when the process is out of memory anyway.
#[inline]
pub fn with_ring<R>(f: impl FnOnce(&Ring) -> R) -> Option<R> {
    let r = crate::tls::hot().ring.get();
    if !r.is_null() {
        // SAFETY: our own ring, never unmapped.
        return Some(f(unsafe { &*r }));
    }
    with_new_ring(f)
}

#[cold]
fn with_new_ring<R>(f: impl FnOnce(&Ring) -> R) -> Option<R> {
    // mmap and pthread_setspecific may set errno; the hooks count on
    // publishing leaving it alone.
    let e = crate::guard::errno();
    let v = with_new_ring_inner(f);
    crate::guard::set_errno(e);
    v
}

fn with_new_ring_inner<R>(f: impl FnOnce(&Ring) -> R) -> Option<R> {
    let r = acquire();
    if r.is_null() {
        return None;
    }
    // SAFETY: rings are never unmapped.
    let ring = unsafe { &*r };
    if crate::tls::hot().exiting.get() {
        let v = f(ring);
        ring.state.store(FINISHED, Ordering::SeqCst);
        return Some(v);
    }
    crate::tls::hot().ring.set(r);
    let key = KEY.load(Ordering::Acquire);
    if key != u32::MAX {
        // SAFETY: key was created by pthread_key_create. Our key is among the
        // first 32, so glibc stores it without allocating.
        unsafe { libc::pthread_setspecific(key, r as *const libc::c_void) };
    }
    Some(f(ring))
}

/// This thread's ring pointer (fork child keeps it).
pub fn current() -> *mut Ring {
    crate::tls::hot().ring.get()
}

#[inline]
fn put_varint(buf: &mut [u8; 64], n: &mut usize, mut v: u64) {
    while v >= 0x80 {
        buf[*n] = (v as u8) | 0x80;
        *n += 1;
        v >>= 7;
    }
    buf[*n] = v as u8;
    *n += 1;
}

/// Reads a varint (LEB128) byte by byte; bits past 64 are dropped.
#[inline]
fn get_varint(mut byte: impl FnMut() -> u8) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = byte();
        if shift < 64 {
            v |= ((b & 0x7f) as u64) << shift;
        }
        shift += 7;
        if b & 0x80 == 0 {
            return v;
        }
    }
}

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

impl Ring {
    /// `SCRATCH_BYTES` of zeroed, 64-aligned memory for the producer thread
    /// alone, kept with the ring (so it needs no allocation and no TLS
    /// destructor) and zeroed again when another thread takes the ring over.
    /// The unwinder keeps its record of the thread's previous capture there.
    #[inline(always)]
    pub fn scratch(&self) -> *mut u8 {
        // SAFETY: the ring's mapping is HEADER_BYTES + RING_BYTES long and
        // starts at the Ring itself.
        unsafe { (self as *const Ring as *mut u8).add(SCRATCH_AT) }
    }

    #[inline]
    fn encode_head(&self, buf: &mut [u8; 64], n: &mut usize, tag: u8, seq: u64, addr: u64) {
        // SAFETY: producer-private cells, touched only by the owning thread.
        let (ps, pa) = unsafe { (&mut *self.p_prev_seq.get(), &mut *self.p_prev_addr.get()) };
        buf[*n] = tag;
        *n += 1;
        put_varint(buf, n, zigzag(seq.wrapping_sub(*ps) as i64));
        put_varint(buf, n, zigzag(addr.wrapping_sub(*pa) as i64));
        *ps = seq;
        *pa = addr;
    }

    #[inline]
    pub fn enc_alloc(
        &self,
        buf: &mut [u8; 64],
        n: &mut usize,
        seq: u64,
        addr: usize,
        size: usize,
        stack: u32,
    ) {
        self.encode_head(buf, n, TAG_ALLOC, seq, addr as u64);
        put_varint(buf, n, size as u64);
        put_varint(buf, n, stack as u64);
    }

    #[inline]
    pub fn enc_free(&self, buf: &mut [u8; 64], n: &mut usize, seq: u64, addr: usize) {
        self.encode_head(buf, n, TAG_FREE, seq, addr as u64);
    }

    /// `memtrace_track`: at most 1 + 4 × 10 + 5 bytes, within the 64.
    pub fn enc_track(&self, buf: &mut [u8; 64], n: &mut usize, seq: u64, t: &Tracked) {
        self.encode_head(buf, n, TAG_TRACK, seq, t.addr);
        put_varint(buf, n, t.size);
        put_varint(buf, n, t.stack as u64);
        put_varint(buf, n, t.domain as u64);
    }

    /// `memtrace_untrack`.
    pub fn enc_untrack(&self, buf: &mut [u8; 64], n: &mut usize, seq: u64, domain: u32, addr: u64) {
        self.encode_head(buf, n, TAG_UNTRACK, seq, addr);
        put_varint(buf, n, domain as u64);
    }

    /// Publishes the bytes `enc` encodes (at most 64). Where the ring has
    /// 64 free bytes before its wrap point and is below half full (nearly
    /// always), `enc` writes straight into the ring: no staging buffer, no
    /// memcpy call, and no wide reload of bytes just stored one by one.
    /// Otherwise it encodes into a buffer and `push` takes over (waits,
    /// wraps, nudges the writer).
    #[inline(always)]
    pub fn publish(&self, enc: impl FnOnce(&mut [u8; 64], &mut usize)) {
        let head = self.head.load(Ordering::Relaxed);
        // SAFETY: producer-private cell.
        let cached = unsafe { *self.p_cached_tail.get() };
        let off = (head & MASK) as usize;
        if off + 64 <= RING_BYTES && head + 64 - cached <= (RING_BYTES / 2) as u64 {
            // SAFETY: [head, head+64) is free space of our ring (the cached
            // tail is at most the real one, which only grows) and inside the
            // mapping (no wrap before off + 64). Only this thread writes
            // there and the consumer reads below `head` only, so the
            // exclusive reference aliases nothing.
            let dst = unsafe { &mut *(self.data.add(off) as *mut [u8; 64]) };
            let mut n = 0;
            enc(dst, &mut n);
            // Still below half full by the cached tail: push() would not
            // nudge the writer either.
            self.head.store(head + n as u64, Ordering::Release);
            return;
        }
        let mut buf = [0u8; 64];
        let mut n = 0;
        enc(&mut buf, &mut n);
        if n > 0 {
            self.push(&buf[..n]);
        }
    }

    /// Copies `bytes` into the ring and publishes them. Waits while full.
    #[inline]
    pub fn push(&self, bytes: &[u8]) {
        let len = bytes.len() as u64;
        let head = self.head.load(Ordering::Relaxed);
        // SAFETY: producer-private cell.
        let cached = unsafe { &mut *self.p_cached_tail.get() };
        if head + len - *cached > RING_BYTES as u64 {
            *cached = self.tail.load(Ordering::Acquire);
            if head + len - *cached > RING_BYTES as u64 && !self.wait_for_space(head, len) {
                return;
            }
        }
        let off = (head & MASK) as usize;
        let first = bytes.len().min(RING_BYTES - off);
        // SAFETY: [head, head+len) is free space of our ring (checked above),
        // split at the wrap point; only we write there.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data.add(off), first);
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr().add(first),
                self.data,
                bytes.len() - first,
            );
        }
        self.head.store(head + len, Ordering::Release);
        if head + len - *cached > (RING_BYTES / 2) as u64 {
            // Refresh the cached tail so that we only nudge once per half ring.
            *cached = self.tail.load(Ordering::Acquire);
            if head + len - *cached > (RING_BYTES / 2) as u64 {
                if let Some(c) = consumer() {
                    (c.nudge)();
                }
            }
        }
    }

    /// Waits, by the consumer's policy, until `len` bytes fit after
    /// `head`. Returns false if the event is to be dropped (tracing got
    /// disabled meanwhile, or nobody consumes). Leaves errno alone.
    #[cold]
    fn wait_for_space(&self, head: u64, len: u64) -> bool {
        let e = crate::guard::errno();
        // SAFETY: producer-private cell.
        let cached = unsafe { &mut *self.p_cached_tail.get() };
        let mut has_space = || {
            *cached = self.tail.load(Ordering::Acquire);
            head + len - *cached <= RING_BYTES as u64
        };
        let got = match consumer() {
            Some(c) => (c.wait_for_space)(&mut has_space),
            None => false,
        };
        crate::guard::set_errno(e);
        got
    }

    /// Writer side: gives `sink` every complete event published since the
    /// last drain, then frees the space.
    ///
    /// # Safety
    /// Only the writer (holding its state lock) may call this.
    pub unsafe fn drain(&self, sink: &mut impl Sink) {
        // SAFETY: the caller's contract.
        unsafe { self.drain_until(u64::MAX, sink) }
    }

    /// `drain`, stopping after the first event whose key is at or above
    /// `stop_at`: completing a point needs each ring read only that far, and
    /// what lies beyond stays in the ring (its thread waits when it fills)
    /// instead of piling up in the writer while another thread is
    /// preempted inside a hook.
    ///
    /// # Safety
    /// Only the writer (holding its state lock) may call this.
    pub unsafe fn drain_until(&self, stop_at: u64, sink: &mut impl Sink) {
        let head = self.head.load(Ordering::Acquire);
        let mut pos = self.tail.load(Ordering::Relaxed);
        // SAFETY: the consumer cells are the writer's alone, and the caller
        // is the writer, holding its lock: nobody else references them.
        let (ps, pa, maxs, thread) = unsafe {
            (
                &mut *self.c_prev_seq.get(),
                &mut *self.c_prev_addr.get(),
                &mut *self.c_max_seq.get(),
                &mut *self.c_thread.get(),
            )
        };
        if *thread == 0 && pos < head {
            *thread = NEXT_RING_NUMBER.fetch_add(1, Ordering::Relaxed);
        }
        let thread = *thread;
        let byte = |p: &mut u64| -> u8 {
            // SAFETY: the offset is masked into the ring's data; the bytes
            // below `head` were published (Acquire above) and stay until we
            // move `tail`.
            let b = unsafe { *self.data.add((*p & MASK) as usize) };
            *p += 1;
            b
        };
        let varint = |p: &mut u64| -> u64 { get_varint(|| byte(p)) };
        while pos < head {
            let tag = byte(&mut pos);
            let ds = varint(&mut pos);
            let da = varint(&mut pos);
            let seq = ps.wrapping_add(unzigzag(ds) as u64);
            let addr = pa.wrapping_add(unzigzag(da) as u64);
            *ps = seq;
            *pa = addr;
            if seq > *maxs {
                *maxs = seq;
            }
            match tag {
                TAG_ALLOC => {
                    let size = varint(&mut pos);
                    let stack = varint(&mut pos) as u32;
                    sink.event(Event {
                        seq,
                        addr,
                        size,
                        stack,
                        thread,
                    });
                }
                TAG_TRACK => {
                    let size = varint(&mut pos);
                    let stack = varint(&mut pos) as u32;
                    let domain = varint(&mut pos) as u32;
                    sink.tracked(
                        seq,
                        Tracked {
                            addr,
                            size,
                            stack,
                            domain,
                        },
                    );
                }
                TAG_UNTRACK => {
                    let domain = varint(&mut pos) as u32;
                    sink.tracked(
                        seq,
                        Tracked {
                            addr,
                            size: 0,
                            stack: 0,
                            domain,
                        },
                    );
                }
                _ => sink.event(Event {
                    seq,
                    addr,
                    size: 0,
                    stack: 0,
                    thread,
                }),
            }
            if seq >= stop_at {
                break;
            }
        }
        self.tail.store(pos, Ordering::Release);
    }

    /// Writer side: a FINISHED ring with nothing left to read goes back to
    /// the pool. The delta state of both sides restarts from zero. Returns
    /// the ring's number (`c_thread`) and the highest key its thread
    /// published, if it published anything: that thread is gone.
    ///
    /// # Safety
    /// Only the writer may call this.
    pub unsafe fn try_recycle(&self) -> Option<(u32, u64)> {
        if self.state.load(Ordering::SeqCst) == FINISHED
            && self.tail.load(Ordering::Relaxed) == self.head.load(Ordering::Acquire)
        {
            // SAFETY: a FINISHED ring has no producer any more, and the
            // caller is the writer: nobody else touches either side's cells.
            let gone = unsafe {
                let t = *self.c_thread.get();
                (t != 0).then(|| (t, *self.c_max_seq.get()))
            };
            // SAFETY: as above.
            unsafe {
                *self.c_prev_seq.get() = 0;
                *self.c_prev_addr.get() = 0;
                *self.p_prev_seq.get() = 0;
                *self.p_prev_addr.get() = 0;
                *self.p_cached_tail.get() = self.tail.load(Ordering::Relaxed);
            }
            self.busy.store(0, Ordering::SeqCst);
            self.state.store(FREE, Ordering::SeqCst);
            return gone;
        }
        None
    }
}

#[inline]
fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Where `drain` puts the events: the malloc family's (`Event`) and the
/// custom allocators' (`Tracked`, with its key: odd for a track, even for
/// an untrack, as for allocations and frees) go their own ways in the
/// writer.
pub trait Sink {
    fn event(&mut self, e: Event);
    fn tracked(&mut self, seq: u64, t: Tracked);
}

/// An object of a custom allocator (`memtrace_track`): `size` bytes at
/// `addr` in `domain` (never 0: the malloc heap's), allocated at `stack`.
/// An untrack has size and stack 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub addr: u64,
    pub size: u64,
    pub stack: u32,
    pub domain: u32,
}

#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub seq: u64,
    pub addr: u64,
    pub size: u64,
    pub stack: u32,
    /// The ring's number (`Ring::c_thread`), standing for the thread that
    /// owns it: known to the writer at drain time, never written by the
    /// program's threads.
    pub thread: u32,
}

impl Event {
    /// An allocation (else a free): allocation keys are odd, frees' even
    /// (seq.rs). 32 bytes an event without a flag.
    #[inline]
    pub fn alloc(&self) -> bool {
        self.seq & 1 == 1
    }
}

/// Gives this thread a ring now, so that its thread-exit destructor runs
/// (the writer learns from it that the main thread called pthread_exit).
pub fn ensure_own() {
    with_ring(|_| ());
}

/// Fork child: rings of the threads that did not survive the fork are
/// handed to the writer to drain (their published events happened before
/// the fork) and recycle. Whatever they had not published is lost.
pub fn fork_child() {
    let mine = current();
    for_each(|r| {
        if !std::ptr::eq(r, mine) && r.state.load(Ordering::SeqCst) == OWNED {
            r.busy.store(0, Ordering::SeqCst);
            r.state.store(FINISHED, Ordering::SeqCst);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::{get_varint, put_varint};

    /// Four varints in a row (an event's worth), at every length: each
    /// decodes to its value and takes LEB128's length.
    #[test]
    fn varints_round_trip_back_to_back() {
        let mut vals = vec![
            0u64,
            1,
            127,
            128,
            300,
            16383,
            16384,
            u64::MAX,
            1 << 56,
            (1 << 56) - 1,
        ];
        for b in 0..64 {
            vals.push(1u64 << b);
            vals.push((1u64 << b).wrapping_sub(1));
        }
        for w in vals.windows(4) {
            let mut buf = [0xAAu8; 64];
            let mut n = 1;
            for &v in w {
                let before = n;
                put_varint(&mut buf, &mut n, v);
                let bits = 64 - (v | 1).leading_zeros() as usize;
                assert_eq!(n - before, bits.div_ceil(7), "length of {v:#x}");
            }
            let mut pos = 1;
            for &v in w {
                assert_eq!(
                    get_varint(|| {
                        pos += 1;
                        buf[pos - 1]
                    }),
                    v
                );
            }
            assert_eq!(pos, n);
        }
    }
}
