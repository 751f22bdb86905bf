//! The writer thread: drains the rings, keeps the live table, writes the
//! snapshot files.
//!
//! - `mod.rs` (here): the thread, its loop (`State::step`), and how a
//!   snapshot point is completed;
//! - `requests.rs`: what reaches the thread from other threads and signal
//!   handlers (snapshot slots, wake-ups, the heartbeat);
//! - `lifecycle.rs`: the last thread, exit, fork;
//! - `live.rs`: the live table, order-independent (why it may apply events
//!   in any order is argued there);
//! - `dump.rs`: building and writing a snapshot file;
//! - `domains.rs`: the custom allocators' objects (`memtrace_track`), a
//!   live table per domain, fed below the same cuts.
//!
//! A point (signal, exit, or one of the writer's own) is complete when
//! every ring has shown an event with a key at or above its cut, or is
//! empty while its thread is not inside a hook (`busy`, read after
//! `seq::barrier` and before draining). Then exactly the events below the
//! cut are applied and, for a snapshot point, the file is written; later
//! events wait in `deferred`.
//!
//! Exact order. Events are applied only below a completed cut, sorted: each
//! batch holds every event between the previous cut and this one, so the
//! live table and the whole-run trackers (`whole_run`: the exact peak,
//! totals, temporaries) see events in the global key order. Besides the
//! snapshot points the writer takes points of its own (`Kind::Cut`): at most
//! one every `CUT_EVERY_NS` of the writer's time, sooner when `deferred`
//! is large. A thread preempted inside a hook holds a point back; nobody
//! waits for the writer's own point, so it is not waited for long
//! (`Patience::Briefly`): the events below the last key that thread's ring
//! showed are applied (its pending event comes after them), the rest at a
//! later step.
//!
//! All of the writer's state lives in `STATE` (not on its stack) under a
//! lock, so that the fork child can take it over consistent.
//!
//! The rings do not know the writer: it registers itself as their consumer
//! (`ring::Consumer`) with what a producer needs from it (a wake-up, the
//! policy for a full ring, the news of a thread's exit).

mod domains;
mod dump;
mod history;
mod lifecycle;
mod live;
mod queue;
mod requests;

pub use lifecycle::{at_exit, find_thread_count, fork_child, fork_parent, fork_prepare};

use crate::ring::{self, Event};
use crate::seq;
use crate::sys::{self, Locked};
use crate::whole_run::{self, Allocated, Freed, WholeRun};
use dump::Moment;
use live::{Block, Change, LiveTable, Op};
use memtrace_format::SnapshotKind;
use queue::Deferred;
use requests::{beat, Kind, Pending, Watch};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

struct State {
    live: LiveTable,
    /// The objects of custom allocators (`memtrace_track`), by domain.
    domains: domains::Domains,
    /// Drained events not yet applied (at or above the last cut applied),
    /// per ring.
    deferred: Deferred,
    /// Points collected from the slots (and sync points), by number.
    pending: Vec<Pending>,
    /// The next signal snapshot's number.
    next_index: u64,
    /// A failure to write a file was reported (once per process).
    error_reported: bool,
    /// The writer could not get memory: events were dropped, tracing is
    /// off, no more snapshots (see `out_of_memory`).
    oom: bool,
    /// The peak, totals and timeline, fed in key order (`apply_below`).
    run: WholeRun,
    /// CLOCK_MONOTONIC when the writer last took a point of its own.
    last_cut_ns: u64,
    /// Threads whose ring was recycled, with the highest key they
    /// published: `TotalsTracker::thread_gone` once a cut passed it.
    gone: Vec<(u32, u64)>,
    /// The history file (MEMTRACE_HISTORY).
    history: history::HistoryWriter,
}

static STATE: sys::Line<Locked<Option<State>>> = sys::Line(Locked::new(None));

/// 0 none, 1 starting, 2 running.
static WRITER: AtomicU32 = AtomicU32::new(0);
/// Set by the writer thread once it has allocated (its glibc arena exists).
static WRITER_ARENA: AtomicBool = AtomicBool::new(false);

/// Tombstones piling up beyond this (and beyond half the table) are purged
/// at the next completed cut.
const TOMBSTONES_BEFORE_PURGE: usize = 65_536;

/// At most one point of the writer's own per this much time. Its cost is
/// the `membarrier(PRIVATE_EXPEDITED)` that completing it needs: an IPI to
/// each CPU running a thread of the process, each of which executes a full
/// barrier in the interrupt (≈ 1–2 µs a CPU, measured as the cost of a
/// context-switch-free interrupt), plus the syscall on the writer (a few
/// µs). At 1,000 a second that is ≤ 0.2 % of each program thread's CPU;
/// the exact order needs only that a cut is completed before the events
/// below it are applied, so a longer interval costs nothing but a larger
/// `deferred` (≈ 1 ms of events: 32 bytes each, ≤ 320 KB at 10M events/s,
/// more while a thread preempted inside a hook holds them back).
const CUT_EVERY_NS: u64 = 1_000_000;
/// So many events waiting make the writer take a point of its own after a
/// quarter of `CUT_EVERY_NS` (a burst).
const CUT_NOW_EVENTS: usize = 1 << 18;
/// Drained events waiting beyond this many (a thread preempted inside a
/// hook holds them back: 4 MB) make the writer stop draining the rings
/// that have passed the current point: their threads wait for ring space,
/// and give the preempted thread the CPU, instead of the writer's memory
/// growing with the time it is preempted. Rings the point still needs are
/// always drained (`progress`), so the held-back thread can always publish.
const BACKLOG_LIMIT: usize = 1 << 17;
/// A thread inside a hook for this long (since the point was taken) is
/// given up on (`progress`): preemption, even on a loaded machine, is far
/// shorter; a thread that left a hook by longjmp, or was stopped inside
/// one, is not. Snapshots waited 5 s before; 2 s bounds how long the
/// program's other threads can be held up by the backlog limit.
const STUCK_NS: u64 = 2_000_000_000;
/// How long the writer waits for a thread inside a hook to publish, for a
/// point of its own that no snapshot waits for: a hook's worth of work many
/// times over. A thread preempted there holds back only the events above
/// the last key its ring showed (`progress`); it is checked on again at the
/// next step.
const BRIEF_WAIT_NS: u64 = 20_000;

/// How long `complete` waits for a thread inside a hook.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Patience {
    /// A snapshot waits: up to 5 s, then write it anyway (and say so).
    Block,
    /// The writer's own point: `BRIEF_WAIT_NS`, then try again later.
    Briefly,
}

/// What the rings get from the writer (see `ring::Consumer`).
static AS_CONSUMER: ring::Consumer = ring::Consumer {
    nudge: requests::nudge,
    wait_for_space: wait_for_ring_space,
    thread_exiting: lifecycle::thread_exiting,
};

/// Before the first event: the writer's state exists (its thread starts
/// later, `ensure_started`) and the rings know their consumer.
pub fn init() {
    *STATE.lock() = Some(State::new());
    ring::set_consumer(&AS_CONSUMER);
}

/// The signal handler's part: marks the moment (async-signal-safe).
pub fn snapshot_requested_from_signal() {
    if !crate::is_ready() || lifecycle::exit_started() {
        return;
    }
    requests::mark(false);
}

/// Starts the writer thread if it is not running.
pub fn ensure_started() {
    if WRITER.load(Ordering::Acquire) != 0 {
        return;
    }
    if WRITER
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    let _g = crate::guard::NoTrace::new();
    // SAFETY: standard pthread calls with valid pointers to locals. All
    // signals are blocked in the new thread (inherited mask) so that the
    // program's signal handlers never run on our thread.
    let ok = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, 1 << 20);
        let mut tid: libc::pthread_t = 0;
        let r = libc::pthread_create(&mut tid, &attr, writer_main, std::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r == 0
    };
    if ok {
        WRITER.store(2, Ordering::Release);
        // Wait (at most a second) for the writer's first allocation: it
        // must get its glibc arena before the program can go on to set a
        // tight RLIMIT_AS (see writer_main).
        let start = sys::now_ns(libc::CLOCK_MONOTONIC);
        let mut spins = 0;
        while !WRITER_ARENA.load(Ordering::Acquire)
            && sys::now_ns(libc::CLOCK_MONOTONIC) - start < 1_000_000_000
        {
            sys::backoff(&mut spins);
        }
    } else {
        sys::log("cannot start the writer thread; tracing disabled");
        crate::disable();
    }
}

/// Fork child, after `lifecycle::fork_child` reset the rest: the parent's
/// writer thread did not survive the fork.
fn restart_in_fork_child() {
    WRITER.store(0, Ordering::Release);
    ensure_started();
}

extern "C" fn writer_main(_: *mut libc::c_void) -> *mut libc::c_void {
    crate::tls::hot().in_hook.set(true);
    lifecycle::mark_writer_thread();
    // Allocate now: a thread's first malloc makes glibc map it an arena
    // (a 64 MiB reservation), which fails if the program has meanwhile
    // set a tight RLIMIT_AS. The queues' first blocks come with it.
    if let Some(st) = STATE.lock().as_mut() {
        let _ = st.deferred.prepare();
        let _ = st.pending.try_reserve(16);
    }
    WRITER_ARENA.store(true, Ordering::Release);
    // SAFETY: naming our own thread; the name fits in 16 bytes.
    unsafe {
        libc::prctl(
            libc::PR_SET_NAME,
            c"memtrace".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    let mut last_thread = lifecycle::LastThread::new();
    loop {
        if last_thread.alone() && !lifecycle::exit_started() {
            // Every other thread is gone: end, so that glibc's last-thread
            // logic calls exit(0) here.
            lifecycle::become_last_thread();
            return std::ptr::null_mut();
        }
        beat();
        requests::wait_for_work();
        lifecycle::let_fork_take_the_lock();
        let mut g = STATE.lock();
        if let Some(st) = g.as_mut() {
            st.step();
        }
    }
}

/// The writer's policy for a producer whose ring is full (`ring::Consumer`):
/// wake the writer (starting it if need be) and wait for `has_space`. Gives
/// up (false: the event is dropped) once tracing is disabled, or disables
/// it when the writer stands still for seconds. On the writer thread itself
/// (running the program's exit handlers as the last thread) nobody else
/// will drain: it drains its own ring.
fn wait_for_ring_space(has_space: &mut dyn FnMut() -> bool) -> bool {
    let mut spins = 0u32;
    let mut watch = Watch::new();
    loop {
        if !crate::is_ready() {
            return false;
        }
        if lifecycle::on_writer_thread() {
            lifecycle::drain_inline();
        } else if watch.stalled() {
            sys::log("the writer thread does not respond (process made without fork()?); tracing disabled");
            crate::disable();
            return false;
        }
        ensure_started();
        requests::nudge();
        sys::backoff(&mut spins);
        if has_space() {
            return true;
        }
    }
}

/// Where drained events go: the heap's to `deferred`, the custom
/// allocators' to `domains`. No memory for one drops it and sets `oom`
/// (the allocation failure would otherwise abort the program).
struct Defer<'a> {
    deferred: &'a mut Deferred,
    domains: &'a mut domains::Domains,
    oom: &'a mut bool,
}

impl ring::Sink for Defer<'_> {
    #[inline(always)]
    fn event(&mut self, e: Event) {
        if self.deferred.push(e).is_err() {
            *self.oom = true;
        }
    }

    fn tracked(&mut self, seq: u64, t: ring::Tracked) {
        if self.domains.push(seq, t).is_err() {
            *self.oom = true;
        }
    }
}

/// What one applied event changed, passed on to the whole-run trackers.
#[inline]
fn follow(run: &mut WholeRun, key: u64, change: Change, time_ns: u64) {
    let allocated = |b: Block| Allocated {
        key,
        stack: b.stack,
        size: b.size,
        thread: b.thread,
    };
    let freed = |b: Block, alloc_key| Freed {
        key,
        alloc_key,
        stack: b.stack,
        size: b.size,
        thread: b.thread,
    };
    match change {
        Change::Nothing => {}
        Change::Allocated(b) => run.allocated(allocated(b), || time_ns),
        Change::Freed {
            freed: b,
            alloc_key,
        } => run.freed(freed(b, alloc_key)),
        // Only out of key order (never here): the old block's free came
        // first.
        Change::Replaced {
            freed: b,
            alloc_key,
            allocated: a,
        } => {
            run.freed(freed(b, alloc_key));
            run.allocated(allocated(a), || time_ns);
        }
    }
}

impl State {
    fn new() -> Self {
        let mut run = WholeRun::default();
        run.timeline.start(sys::now_ns(libc::CLOCK_REALTIME));
        let history = history::HistoryWriter::new();
        run.history.on = history.on();
        run.peak.set_history(history.on());
        State {
            history,
            live: LiveTable::new(),
            domains: domains::Domains::default(),
            deferred: Deferred::default(),
            pending: Vec::new(),
            next_index: 1,
            error_reported: false,
            oom: false,
            run,
            last_cut_ns: 0,
            gone: Vec::new(),
        }
    }

    /// Fork child: the parent's pending points are not the child's, its
    /// snapshots are numbered from 1 again; the live set and the whole run
    /// so far are inherited (docs/FORMAT.md, "The whole run").
    fn fork_child(&mut self) {
        self.pending.clear();
        self.next_index = 1;
        self.error_reported = false;
        self.run.fork_child();
        self.last_cut_ns = 0;
        // SAFETY: getppid has no preconditions.
        let parent = unsafe { libc::getppid() } as u32;
        self.history.fork_child(&mut self.run, parent);
    }

    /// Drained events not applied yet: the heap's and the custom
    /// allocators'. Both wait for a cut, so both make the writer take one
    /// (a program that only tracks objects would otherwise never see its
    /// events applied, and its rings would fill for good).
    fn waiting(&self) -> usize {
        self.deferred.len() + self.domains.pending()
    }

    fn step(&mut self) {
        if self.oom {
            return;
        }
        if self.waiting() < BACKLOG_LIMIT {
            self.drain_all();
        }
        requests::collect(&mut self.pending);
        let now = sys::now_ns(libc::CLOCK_MONOTONIC);
        let since = now.saturating_sub(self.last_cut_ns);
        let backlog = self.waiting() >= BACKLOG_LIMIT;
        // Over the backlog limit, a point of our own still pending is not
        // superseded: a new one would drain every ring again.
        let own_pending = self.pending.iter().any(|p| p.kind == Kind::Cut);
        if self.waiting() > 0
            && (!backlog || !own_pending)
            && (since >= CUT_EVERY_NS
                || (self.waiting() >= CUT_NOW_EVENTS && since >= CUT_EVERY_NS / 4))
        {
            // Everything drained so far is below the new point. Snapshot
            // points below it have claimed their slot already (claim before
            // number, requests.rs): collect them too, so that the points are
            // completed in order.
            let s = seq::point();
            self.last_cut_ns = now;
            // A point of our own still incomplete (a thread preempted inside
            // a hook) is superseded: the new one covers it, and its barrier
            // is taken afresh.
            self.pending.retain(|p| p.kind != Kind::Cut);
            let time_ns = sys::now_ns(libc::CLOCK_REALTIME);
            requests::collect(&mut self.pending);
            self.pending.push(Pending {
                seq: s,
                time_ns,
                kind: Kind::Cut,
                fenced: false,
                since_ns: now,
            });
            self.pending.sort_by_key(|p| p.seq);
        }
        while let Some(&p) = self.pending.first() {
            let cut = seq::cut(p.seq);
            if !p.fenced {
                seq::barrier();
                self.pending[0].fenced = true;
            }
            // The writer's own point, alone: nobody waits for it. Behind it,
            // a snapshot waits for a higher point anyway.
            let patience = if p.kind == Kind::Cut && self.pending.len() == 1 {
                Patience::Briefly
            } else {
                Patience::Block
            };
            let bound = self.complete(cut, patience, p.since_ns);
            if bound < cut {
                // Every event below `bound` is here: apply those now, the
                // rest when the point is complete (a later step).
                self.apply_below(bound, p.time_ns);
                break;
            }
            self.pending.remove(0);
            self.apply_below(cut, p.time_ns);
            let (live, run) = (&self.live, &mut self.run);
            self.history
                .at_cut(live, run, p.seq, p.time_ns, p.kind == Kind::Exit);
            match p.kind {
                Kind::Signal => {
                    let index = self.next_index;
                    self.next_index += 1;
                    self.write_snapshot(SnapshotKind::Signal, index, p);
                    self.run.timeline.mark_snapshot(index, p.time_ns);
                    self.history.snapshot_written(index, p.time_ns);
                }
                Kind::Exit => {
                    self.write_snapshot(SnapshotKind::Exit, 0, p);
                    lifecycle::exit_done();
                }
                Kind::Cut => {}
            }
            if p.kind != Kind::Cut
                || self.live.tombstones() > TOMBSTONES_BEFORE_PURGE.max(self.live.entries() / 2)
            {
                self.live.purge_tombstones(cut);
                self.domains.purge_tombstones(cut);
            }
            let run = &mut self.run;
            self.gone.retain(|&(thread, last_key)| {
                let pending = last_key >= cut;
                if !pending {
                    run.totals.thread_gone(thread, last_key);
                }
                pending
            });
        }
        if self.pending.is_empty() && self.waiting() == 0 {
            self.history.idle(&self.live, &mut self.run);
        }
        self.recycle();
        self.timeline_tick();
        if self.oom {
            self.out_of_memory();
        }
    }

    /// A point of the timeline when one is due. Traced bytes are those after
    /// the last completed cut: the live set at that point of the global order.
    fn timeline_tick(&mut self) {
        let now = sys::now_ns(libc::CLOCK_REALTIME);
        if self.run.timeline.due(now) {
            self.run
                .timeline
                .record(now, self.live.traced_bytes(), whole_run::rss_now());
        }
    }

    fn write_snapshot(&mut self, kind: SnapshotKind, index: u64, p: Pending) {
        let moment = Moment {
            kind,
            index,
            seq: p.seq,
            time_ns: p.time_ns,
        };
        dump::write_snapshot(
            &self.live,
            &self.domains,
            &self.run,
            &moment,
            &mut self.error_reported,
        );
    }

    /// The writer ran out of memory (a program under a tight RLIMIT_AS, or
    /// truly out of memory): its state can no longer be exact. Tracing
    /// stops (the hooks pass through; a hook waiting for ring space gives
    /// up) rather than abort the program, and an exit handler waiting for
    /// the exit snapshot is released.
    #[cold]
    fn out_of_memory(&mut self) {
        sys::log("out of memory in the writer thread: events were lost; tracing stopped, no more snapshots");
        crate::disable();
        self.deferred = Deferred::default();
        self.live = LiveTable::new();
        self.domains = domains::Domains::default();
        self.run = WholeRun::default();
        self.pending.clear();
        lifecycle::exit_done();
    }

    /// The rings' sink: borrows the queues apart from the rest of the state.
    fn sink(&mut self) -> Defer<'_> {
        Defer {
            deferred: &mut self.deferred,
            domains: &mut self.domains,
            oom: &mut self.oom,
        }
    }

    fn drain_all(&mut self) {
        let mut sink = self.sink();
        // SAFETY: we are the writer and hold the state lock.
        ring::for_each(|r| unsafe { r.drain(&mut sink) });
    }

    fn recycle(&mut self) {
        let gone = &mut self.gone;
        ring::for_each(|r| {
            // SAFETY: as above.
            if let Some(g) = unsafe { r.try_recycle() } {
                if gone.try_reserve(1).is_ok() {
                    gone.push(g);
                }
            }
        });
    }

    /// One pass over the rings for cut `s` (`seq::barrier` was called since
    /// its point was taken): drains them and returns a bound b ≤ s such that
    /// every event with a key below b is in `deferred`. That is s once every
    /// ring has shown an event at or above s or was found with its thread
    /// outside a hook (`busy` = 0; read before draining); else the lowest of
    /// the highest keys shown by the rings whose thread is still inside a
    /// hook: the event it is publishing comes after those (a ring's keys
    /// never decrease). With `give_up`, those rings are marked stuck
    /// instead: until their thread publishes again, no cut waits for them
    /// (a thread that left a hook by longjmp from a signal handler, or was
    /// stopped inside one, would otherwise hold every cut back for ever).
    fn progress(&mut self, s: u64, give_up: bool) -> u64 {
        let mut bound = s;
        let mut sink = self.sink();
        ring::for_each(|r| {
            // SAFETY: c_max_seq, c_done and c_stuck are the writer's own
            // fields; we hold the lock.
            if unsafe { *r.c_max_seq.get() >= s || *r.c_done.get() == s } {
                return;
            }
            let busy = r.busy.load(Ordering::SeqCst);
            // SAFETY: we are the writer and hold the state lock.
            // Only up to the point: see `Ring::drain_until`.
            unsafe { r.drain_until(s, &mut sink) };
            // SAFETY: as for the first read.
            let seen = unsafe { *r.c_max_seq.get() };
            if seen >= s {
                return;
            }
            // SAFETY: as above.
            let (done, stuck) = unsafe { (&mut *r.c_done.get(), &mut *r.c_stuck.get()) };
            if busy == 0 {
                *done = s;
            } else if *stuck == seen + 1 {
                // Still inside the hook it was given up on.
            } else if give_up {
                *stuck = seen + 1;
                sys::log("a thread stayed inside an allocation call for seconds; the snapshots and whole-run figures may miss or misplace its event");
            } else {
                bound = bound.min(seen);
            }
        });
        bound
    }

    /// Drains until every event with a key below `s` is in `deferred`, and
    /// returns `s`; or, for `Patience::Briefly`, returns what `progress`
    /// reached after a short wait (a thread may be preempted inside a hook).
    /// A thread inside a hook since long before the point was taken
    /// (`since_ns`, CLOCK_MONOTONIC) is not waited for any more (`progress`).
    fn complete(&mut self, s: u64, patience: Patience, since_ns: u64) -> u64 {
        let start = sys::now_ns(libc::CLOCK_MONOTONIC);
        let mut spins = 0u32;
        loop {
            let now = sys::now_ns(libc::CLOCK_MONOTONIC);
            let give_up = match patience {
                Patience::Block => now - start > STUCK_NS,
                Patience::Briefly => now.saturating_sub(since_ns) > STUCK_NS,
            };
            let bound = self.progress(s, give_up);
            if bound >= s {
                return s;
            }
            beat();
            if patience == Patience::Briefly {
                if now - start > BRIEF_WAIT_NS {
                    return bound;
                }
                std::hint::spin_loop();
                continue;
            }
            sys::backoff(&mut spins);
        }
    }

    /// Applies, in key order, the deferred events with keys below `s` (a
    /// completed cut taken at `time_ns`, CLOCK_REALTIME), and passes what
    /// they changed to the whole-run trackers.
    fn apply_below(&mut self, s: u64, time_ns: u64) {
        if self.domains.apply_below(s).is_err() {
            self.oom = true;
            return;
        }
        if self.deferred.is_empty() {
            return;
        }
        // Room for new addresses is reserved a chunk at a time, not for the
        // whole batch at once: a batch holds up to a cut's worth of events
        // (hundreds of thousands under load), and reserving for all of them
        // doubled the table's capacity past what the live blocks need (the
        // python3 benchmark's peak RSS: 59 → 97 MB). A chunk that gets no
        // memory drops the rest of the batch: tracing stops (`out_of_memory`).
        const RESERVE_CHUNK: usize = 4096;
        let mut reserved = 0usize;
        let mut no_memory = false;
        // Borrowed apart: the compiler then knows that updating the table
        // leaves the queues alone.
        let (live, run) = (&mut self.live, &mut self.run);
        let mut i = 0u32;
        let taken = self.deferred.take_below(s, |e| {
            if no_memory {
                return;
            }
            if reserved == 0 {
                if live.reserve(RESERVE_CHUNK).is_err() {
                    no_memory = true;
                    return;
                }
                reserved = RESERVE_CHUNK;
            }
            reserved -= 1;
            if i.is_multiple_of(65_536) {
                beat();
            }
            i = i.wrapping_add(1);
            let op = if e.alloc() {
                Op::Alloc(Block {
                    stack: e.stack,
                    size: e.size,
                    thread: e.thread,
                })
            } else {
                Op::Free
            };
            let change = live.apply(e.seq, e.addr, op);
            follow(run, e.seq, change, time_ns);
        });
        if taken.is_err() || no_memory {
            self.oom = true;
            return;
        }
        debug_assert_eq!(self.run.peak.traced(), self.live.traced_bytes());
    }
}
