//! The fast unwinder: a walk by x86-64 `.eh_frame` rules (pre-digested per
//! return address into one word and cached: rules.rs).
//!
//! A capture walks the stack itself while every frame's rule is "simple" —
//! CFA = rsp|rbp + N, return address at CFA − 8, rbp unchanged or saved at
//! CFA + k — which is what compilers emit for nearly all code. It gives up
//! (the caller then runs libunwind for the whole stack, so the result is
//! libunwind's by construction) on anything else: DWARF expressions, signal
//! frames (an S-augmented FDE, or a return address at glibc's sigreturn
//! code), a pc in no module or without an FDE, a read outside the thread's
//! stack, a walk that starts on another stack (sigaltstack, makecontext).
//! The frames accepted here are a subset of what libunwind 1.6's own fast
//! path (`tdep_trace`, "standard" frames) accepts, and on those we compute
//! what it computes: the same CFA, return address and rbp, the same return
//! address recorded per frame (rules looked up at RA − 1), the same stop
//! rules (RA or rbp rule undefined = outermost frame; RA < 0x4000 = end).
//! `MEMTRACE_UNWIND=check` compares the two on every capture.
//!
//! The walk starts at the hook's caller (`Caller`, from the entry stub), as
//! if in a frame whose rule is the ABI's at a call. Each thread also keeps
//! its previous capture (`shadow.rs`, in its ring's scratch): where the walk
//! reaches one of its frame states, the frames above are verified by
//! re-reading the slots they were read from instead of being unwound, and a
//! stack verified to its end may have its id in the thread's id cache.
//!
//! Where the rules come from: `rules.rs` (the rule cache); where the stack
//! is read from: `memory.rs` (the live stack here, a fake one in the unit
//! tests at the end of this file). The walk is generic over both and
//! inlined into `backtrace`, so the hooks run plain loads.

use super::memory::{LiveStack, Memory};
use super::rules::{self, Rule, RuleCache, ENTRY_PC};
use super::shadow::{bits, Frame, Record, Shadow, Step, DEPTH, INNER, STEPS};

extern "C" {
    /// ld.so's record of the initial stack pointer (the address of argc):
    /// the main thread's frames all lie below it.
    static __libc_stack_end: *mut libc::c_void;
}

/// The top of the calling thread's stack, found without locks or malloc.
/// Not pthread_getattr_np: glibc holds the thread's lock while that calls
/// realloc (and fopen on the main thread), so calling it from inside a
/// malloc made by the program's own pthread_getattr_np deadlocks (Rust's
/// runtime does exactly that on every thread).
/// - A glibc thread's descriptor (pthread_self) sits at the top of its
///   stack block, above its static TLS, which is above its stack (x86-64
///   TLS variant II; also for stacks given with pthread_attr_setstack):
///   every frame lies below it.
/// - The main thread's descriptor is allocated elsewhere; its frames lie
///   below `__libc_stack_end`.
///
/// Either bound must lie above `sp` and within 1 GiB of it, else the
/// bounds are unknown (1): this capture goes to libunwind, the next asks
/// again (cheap: no system call).
#[cold]
fn find_stack_hi(sp: usize) -> usize {
    const NEAR: usize = 1 << 30;
    let near = |top: usize| top > sp && top - sp <= NEAR;
    // SAFETY: pthread_self only reads the thread pointer.
    let this = unsafe { libc::pthread_self() } as usize;
    if near(this) {
        return this;
    }
    // SAFETY: a plain read of ld.so's exported variable.
    let end = unsafe { __libc_stack_end } as usize;
    if near(end) {
        return end;
    }
    1
}

#[inline(always)]
fn stack_hi(sp: usize) -> usize {
    let h = &crate::tls::hot().stack_hi;
    let v = h.get();
    if v != 0 {
        return v;
    }
    let v = find_stack_hi(sp);
    // Unknown is not kept: the first capture may run on a signal stack.
    if v != 1 {
        h.set(v);
    }
    v
}

/// Where a walk starts: the state on entry to the hook the program called,
/// handed over by the hook's entry stub (hooks.rs). `at` is the stack
/// pointer there, i.e. the address of the return address into the program,
/// and `bp` the program's rbp at the call.
#[derive(Clone, Copy)]
pub struct Caller {
    pub at: usize,
    pub bp: usize,
}

/// What a walk found.
#[derive(Debug, PartialEq, Eq)]
pub enum Walk {
    /// `n` return addresses in `buf`; `keyed`: the shadow holds the key
    /// their id is to be remembered under (`Shadow::remember`); `whole`:
    /// the thread's current record now holds exactly this stack, so its id
    /// goes there too (`Shadow::remember_whole`).
    Frames { n: usize, keyed: bool, whole: bool },
    /// The stack is one the thread interned recently: its id.
    Id(u32),
}

/// Unwinds the stack of the hook's caller into `buf[..cap]` as libunwind's
/// `unw_backtrace` (1.6) does, minus our own frames: the return address of
/// each frame (rules are looked up at RA − 1), starting with the one into
/// the program. `None` if some frame is not simple (or the cache is not
/// mapped): then nothing in `buf` is meaningful and the caller must use
/// libunwind. `sh`: the thread's shadow, or null.
///
/// # Safety
/// `buf` must have room for `cap` entries; `caller` must be the entry state
/// of a hook on this thread's stack, still running; `sh` null or this
/// thread's own shadow.
#[inline(never)]
pub unsafe fn backtrace(
    buf: *mut usize,
    cap: usize,
    caller: Caller,
    sh: *mut Shadow,
) -> Option<Walk> {
    let cache = RuleCache::get()?;
    let hi = stack_hi(caller.at);
    // SAFETY: the live stack lies between the hook's entry sp and `hi`, the
    // top of this thread's stack (or `walk` declines); the rest is ours.
    unsafe { walk(LiveStack, |pc| cache.rule(pc), caller, hi, buf, cap, sh) }
}

/// `backtrace` over the stack `mem` (whose top is `hi`) with the rules of
/// `rules`.
///
/// # Safety
/// As `backtrace`, with `mem` holding the stack from `caller.at` to `hi`.
#[inline(always)]
pub(super) unsafe fn walk<M: Memory, R: Fn(usize) -> Rule>(
    mem: M,
    rules: R,
    caller: Caller,
    hi: usize,
    buf: *mut usize,
    cap: usize,
    sh: *mut Shadow,
) -> Option<Walk> {
    let sp = caller.at;
    if hi < 16 || sp >= hi || hi - sp < 16 {
        // Unknown bounds, or running on another stack (sigaltstack,
        // coroutine): libunwind decides.
        return None;
    }
    // SAFETY: the caller's.
    let mut w = unsafe { Walker::start(mem, rules, caller, hi, buf, cap, sh) };
    // Frame by frame: where the walk reaches one of the record's states it
    // re-checks the record's frames from there instead (try_join); other
    // frames come from the step table or their rule (walk_frame).
    while w.n < w.cap {
        // SAFETY: the walker's reads stay in the stack (`in_stack`, or
        // recorded frames' own slots); its writes in buf[..cap]; n < cap.
        match unsafe { w.try_join() } {
            Flow::WalkFrame => {}
            Flow::Next => continue,
            Flow::Stop | Flow::Decline => break,
        }
        // SAFETY: as above (a join that leaves n = cap stops the walk).
        match unsafe { w.walk_frame() } {
            Flow::WalkFrame | Flow::Next => {}
            Flow::Stop => break,
            // A frame libunwind must take.
            Flow::Decline => return None,
        }
    }
    // SAFETY: buf[..w.n] is written; `sh` as given.
    unsafe { w.finish() }
}

/// What the walk does next.
enum Flow {
    /// Walk the current state's frame (from the step table or by rule).
    WalkFrame,
    /// A frame was added: go on from the new state.
    Next,
    /// The walk ends here.
    Stop,
    /// The capture goes to libunwind.
    Decline,
}

/// The parts of the thread's shadow a walk uses.
struct Thread<'a> {
    /// The record picked for this entry point (`Shadow::pick`).
    rec: &'a mut Record,
    /// The walk's own frame states, innermost first, until it knows where
    /// they go in the record.
    scratch: &'a mut [Frame; DEPTH + 1],
    /// Frames recently walked by rule, by entry state.
    steps: &'a mut [Step; STEPS],
}

/// A join that verified every frame of the record from `at` to its end (or
/// to the buffer's end), after `own` frames the walk found itself: unless the
/// walk goes on, those frames stay where they are in the record and only
/// scratch[..own] is placed below.
#[derive(Clone, Copy)]
struct Joined {
    at: usize,
    own: usize,
}

/// One walk's state.
struct Walker<'a, M: Memory, R: Fn(usize) -> Rule> {
    mem: M,
    rules: R,
    /// The hook's entry sp (the lowest address the walk reads).
    lo: usize,
    /// The highest offset from `lo` a word may be read at: the stack's top
    /// − 8.
    span: usize,
    /// The rule cache's generation.
    gen: u64,
    /// Where the return addresses go, and its room.
    buf: *mut usize,
    cap: usize,
    /// The state on entry to the frame walked next: sp, rbp, and the pc its
    /// rule is looked up at (a return address − 1, or ENTRY_PC).
    sp: usize,
    bp: usize,
    pc: usize,
    /// Return addresses written to buf so far.
    n: usize,
    /// The thread's shadow (null: none), for its id cache at the end.
    shadow: *mut Shadow,
    /// The parts of it the walk uses (None with a null shadow).
    thread: Option<Thread<'a>>,
    /// The next record position to try a join at (its sp is not below ours).
    next_join: usize,
    /// The record position of scratch entry 0 when the walk began: scratch
    /// entry i may be the record's frame `origin + i`, left in place.
    origin: usize,
    /// Scratch entries not copied (bit i: scratch[i] is the record's
    /// `origin + i`): runs verified where the walk's frame count matches the
    /// record's (`origin + n` = position), which the final write finds in
    /// place if the walk ends at the record's depth. Else they are copied
    /// then.
    in_place: u64,
    /// The walk joined the record and verified every frame above.
    joined: Option<Joined>,
    /// The walk ended at a frame whose rule ends every walk (Rule::Last).
    ended_by_rule: bool,
    /// Every frame walked here may go in the record (Frame::recordable).
    recordable: bool,
}

impl<'a, M: Memory, R: Fn(usize) -> Rule> Walker<'a, M, R> {
    /// A walk from `caller` (whose stack's top `hi` is at least 16 bytes
    /// above it), with the record this entry point picks from `sh`.
    ///
    /// # Safety
    /// As `walk`.
    #[inline(always)]
    unsafe fn start(
        mem: M,
        rules: R,
        caller: Caller,
        hi: usize,
        buf: *mut usize,
        cap: usize,
        sh: *mut Shadow,
    ) -> Self {
        let (sp, bp) = (caller.at, caller.bp);
        let gen = rules::generation();
        // The record for this entry point (stack address, return address).
        // SAFETY: sp + 8 <= hi - 8 (checked by `walk`): a slot of the stack.
        let ra0 = unsafe { mem.word(sp) };
        // SAFETY: `sh` is null or this thread's shadow, not otherwise
        // borrowed during the walk.
        let thread = unsafe { sh.as_mut() }.map(|s| {
            // SAFETY: (sp, bp) is the entry state of our hook (the caller's).
            let i = unsafe { s.pick(&mem, sp, ra0, bp, gen) };
            Thread {
                rec: &mut s.recs[i],
                scratch: &mut s.scratch,
                steps: &mut s.steps,
            }
        });
        let next_join = match &thread {
            Some(t) if t.rec.valid && t.rec.gen == gen => t.rec.base,
            _ => DEPTH,
        };
        Walker {
            mem,
            rules,
            lo: sp,
            span: hi - 8 - sp,
            gen,
            buf,
            cap,
            sp,
            bp,
            pc: ENTRY_PC,
            n: 0,
            shadow: sh,
            thread,
            next_join,
            origin: next_join,
            in_place: 0,
            joined: None,
            ended_by_rule: false,
            recordable: true,
        }
    }

    /// True if the word at `at` lies in the thread's stack, above the
    /// hook's entry sp.
    #[inline(always)]
    fn in_stack(&self, at: usize) -> bool {
        at.wrapping_sub(self.lo) <= self.span
    }

    /// Appends a return address to buf.
    ///
    /// # Safety
    /// `self.n < self.cap`.
    #[inline(always)]
    unsafe fn push_ra(&mut self, ra: usize) {
        // SAFETY: n < cap (the caller's) and buf has room for cap entries.
        unsafe { *self.buf.add(self.n) = ra };
        self.n += 1;
    }

    /// Joins the previous capture where this walk reaches one of its frame
    /// states (same sp, rbp and pc): from there every frame is the same as
    /// long as the slots it read still hold the same values, so only those
    /// are re-read, no rule is looked up.
    ///
    /// # Safety
    /// As `walk`; `self.n < self.cap`.
    #[inline(always)]
    unsafe fn try_join(&mut self) -> Flow {
        let Some(t) = self.thread.as_ref() else {
            return Flow::WalkFrame;
        };
        let rec = &*t.rec;
        while self.next_join < DEPTH && rec.f[self.next_join].sp < self.sp {
            self.next_join += 1;
        }
        let at = self.next_join;
        if !(at < DEPTH
            && rec.f[at].sp == self.sp
            && rec.f[at].pc == self.pc
            && (rec.f[at].bp == self.bp || rec.bp_free(at)))
        {
            return Flow::WalkFrame;
        }
        let own = self.n;
        let end = DEPTH.min(at + (self.cap - own));
        // Frame k read its return address just below the next frame's sp,
        // and maybe the rbp it restores.
        // SAFETY: recorded frames read only inside themselves, so these
        // slots lie between our sp (= f[at].sp) and the record's last sp, in
        // this thread's stack (shadow.rs).
        let changed = unsafe { rec.first_changed(&self.mem, at, end) };
        self.n = own + (changed - at);
        if changed == end && (self.n == self.cap || end == DEPTH) {
            self.verified_to_end(Joined { at, own })
        } else {
            // SAFETY: the caller's.
            unsafe { self.changed_frame(Joined { at, own }, changed) }
        }
    }

    /// Verified up to the buffer's end or the record's. Their return
    /// addresses go to buf only if needed (not when the id cache knows the
    /// stack). The record's last state (f[DEPTH]) is walked as usual next,
    /// which normally ends the walk there; the record knows if it does.
    #[inline(always)]
    fn verified_to_end(&mut self, joined: Joined) -> Flow {
        self.joined = Some(joined);
        let Some(t) = self.thread.as_ref() else {
            return Flow::Stop;
        };
        if self.n >= self.cap || t.rec.last_ends {
            return Flow::Stop;
        }
        let last = t.rec.f[DEPTH];
        (self.sp, self.bp, self.pc) = (last.sp, last.bp, last.pc);
        self.next_join = DEPTH;
        Flow::WalkFrame
    }

    /// Frame `changed`'s slots changed: keep the verified frames in buf and
    /// the scratch, walk frame `changed`, look for a later join (never at
    /// `changed` again: that would loop).
    ///
    /// # Safety
    /// As `walk`; frames `joined.at..changed` were verified.
    #[inline(always)]
    unsafe fn changed_frame(&mut self, joined: Joined, changed: usize) -> Flow {
        let Joined { at, own } = joined;
        let Some(t) = self.thread.as_mut() else {
            return Flow::Stop;
        };
        // SAFETY: own + (changed - at) = n <= cap.
        unsafe { fill_ras(self.buf, own, t.rec, at..changed) };
        if at == self.origin + own {
            self.in_place |= bits(own, own + (changed - at));
        } else {
            copy_frames(t.scratch, own, &t.rec.f[at..changed]);
        }
        let state = t.rec.f[changed];
        // rbp at `changed`: the recorded one, unless the join ignored a
        // different recorded rbp and no frame since restored it from the
        // stack (then it is still ours).
        if t.rec.f[at].bp == self.bp || t.rec.f[at..changed].iter().any(|f| f.bp_at() != 0) {
            self.bp = state.bp;
        }
        (self.sp, self.pc) = (state.sp, state.pc);
        self.next_join = changed + 1;
        if self.n >= self.cap {
            return Flow::Stop;
        }
        // The frame itself is the recorded one (same sp and pc: same rule),
        // only its slots changed: unless its CFA comes from rbp (then the
        // rule walk recomputes it), its caller's sp is the recorded one and
        // its slots are known. No rule lookup.
        if state.cfa_rbp() {
            return Flow::WalkFrame;
        }
        let cfa = t.rec.f[changed + 1].sp;
        // SAFETY: the frame's slots lie inside it (recorded frames), in the
        // live stack above our sp.
        let Some((ra, frame)) = (unsafe {
            known_frame(
                &self.mem,
                self.sp,
                &mut self.bp,
                self.pc,
                cfa,
                state.bp_at(),
            )
        }) else {
            return Flow::Stop;
        };
        if changed == self.origin + self.n && frame == state {
            self.in_place |= 1 << self.n;
        } else if self.n <= DEPTH {
            t.scratch[self.n] = frame;
        }
        // SAFETY: n < cap (checked above).
        unsafe { self.push_ra(ra) };
        (self.sp, self.pc) = (cfa, ra - 1);
        Flow::Next
    }

    /// Walks the current state's frame: from the step table if the thread
    /// walked this state by rule recently, else by its rule.
    ///
    /// # Safety
    /// As `walk`; `self.n < self.cap`.
    #[inline(always)]
    unsafe fn walk_frame(&mut self) -> Flow {
        let slot = Step::slot(self.sp, self.pc);
        let known = self
            .thread
            .as_ref()
            .map(|t| t.steps[slot])
            .filter(|m| m.sp == self.sp && m.pc == self.pc && m.gen == self.gen);
        let walked = match known {
            // SAFETY: the step's slots lie inside its frame, which starts at
            // our sp, and were checked to lie in this thread's stack (whose
            // top does not move) when it was walked by rule.
            Some(step) => match unsafe {
                known_frame(
                    &self.mem,
                    self.sp,
                    &mut self.bp,
                    self.pc,
                    step.cfa,
                    step.bp_at,
                )
            } {
                Some((ra, frame)) => Walked::Frame {
                    cfa: step.cfa,
                    ra,
                    frame,
                },
                None => Walked::End,
            },
            // SAFETY: the caller's.
            None => unsafe { self.by_rule(slot) },
        };
        let (cfa, ra, frame) = match walked {
            Walked::Frame { cfa, ra, frame } => (cfa, ra, frame),
            Walked::End => return Flow::Stop,
            Walked::Decline => return Flow::Decline,
        };
        self.sp = cfa;
        self.leave_joined_run();
        if let Some(t) = self.thread.as_mut() {
            if self.n <= DEPTH {
                t.scratch[self.n] = frame;
            }
        }
        // SAFETY: the caller's.
        unsafe { self.push_ra(ra) };
        self.pc = ra - 1;
        Flow::Next
    }

    /// Walks the current state's frame by its rule, and remembers it in the
    /// step table if the next walk through it may skip the rule.
    ///
    /// # Safety
    /// As `walk`.
    #[inline(always)]
    unsafe fn by_rule(&mut self, slot: usize) -> Walked {
        let (cfa_rbp, cfa_off, rbp_off) = match (self.rules)(self.pc) {
            Rule::Simple {
                cfa_rbp,
                cfa_off,
                rbp_off,
            } => (cfa_rbp, cfa_off, rbp_off),
            Rule::Last => {
                self.ended_by_rule = true;
                return Walked::End;
            }
            Rule::Other => return Walked::Decline,
        };
        let cfa = if cfa_rbp { self.bp } else { self.sp }.wrapping_add(cfa_off as usize);
        let ra_at = cfa.wrapping_sub(8);
        if !self.in_stack(ra_at) {
            return Walked::Decline;
        }
        // SAFETY: ra_at..ra_at+8 lies between our caller's rsp and the top
        // of this thread's stack, which is mapped.
        let ra = unsafe { self.mem.word(ra_at) };
        if ra < 0x4000 {
            return Walked::End;
        }
        let mut frame = Frame::new(self.sp, self.bp, self.pc, cfa_rbp);
        if let Some(k) = rbp_off {
            let bp_at = cfa.wrapping_add(k as usize);
            if !self.in_stack(bp_at) {
                return Walked::Decline;
            }
            // SAFETY: as above, `bp_at` was checked to lie in the live stack.
            self.bp = unsafe { self.mem.word(bp_at) };
            frame.set_bp_at(bp_at);
        }
        let inside = frame.recordable(cfa);
        self.recordable &= inside;
        if let Some(t) = self.thread.as_mut().filter(|_| inside && !cfa_rbp) {
            t.steps[slot] = Step {
                sp: frame.sp,
                pc: frame.pc,
                cfa,
                bp_at: frame.bp_at(),
                gen: self.gen,
            };
        }
        Walked::Frame { cfa, ra, frame }
    }

    /// The stack goes on past a joined record's end (rare: it was cut
    /// there): the joined frames move to the scratch like any others.
    #[inline(always)]
    fn leave_joined_run(&mut self) {
        let Some(Joined { at, own }) = self.joined.take() else {
            return;
        };
        if let Some(t) = self.thread.as_mut() {
            // SAFETY: buf holds n >= own + (DEPTH - at) entries' room: the
            // joined run was counted in n.
            unsafe { fill_ras(self.buf, own, t.rec, at..DEPTH) };
            if at == self.origin + own {
                self.in_place |= bits(own, own + (DEPTH - at));
            } else {
                copy_frames(t.scratch, own, &t.rec.f[at..DEPTH]);
            }
        }
    }

    /// The walk's result, and the record updated with what it walked.
    ///
    /// # Safety
    /// As `walk`: buf[..n] is written but for a joined run, `shadow` as
    /// given.
    #[inline(always)]
    unsafe fn finish(self) -> Option<Walk> {
        let Some(t) = self.thread else {
            return Some(Walk::Frames {
                n: self.n,
                keyed: false,
                whole: false,
            });
        };
        let end = WalkEnd {
            buf: self.buf,
            cap: self.cap,
            n: self.n,
            gen: self.gen,
            origin: self.origin,
            in_place: self.in_place,
            recordable: self.recordable,
        };
        match self.joined {
            // SAFETY: the caller's.
            Some(joined) => unsafe { end.finish_joined(t, joined, self.shadow) },
            None => Some(end.finish_new_record(t, self.sp, self.bp, self.pc, self.ended_by_rule)),
        }
    }
}

/// What walking one frame gave.
enum Walked {
    /// The frame's CFA (its caller's sp), return address and entry state.
    Frame { cfa: usize, ra: usize, frame: Frame },
    /// The walk ends before this frame.
    End,
    /// The capture goes to libunwind.
    Decline,
}

/// A finished walk, for the record's update.
struct WalkEnd {
    buf: *mut usize,
    cap: usize,
    n: usize,
    gen: u64,
    origin: usize,
    in_place: u64,
    recordable: bool,
}

impl WalkEnd {
    /// The walk ended in a run of the record verified to its end.
    ///
    /// # Safety
    /// As `Walker::finish`.
    #[inline(always)]
    unsafe fn finish_joined(self, t: Thread<'_>, joined: Joined, sh: *mut Shadow) -> Option<Walk> {
        let Joined { at, own } = joined;
        let (r, n) = (t.rec, self.n);
        // Joined at the record's base with no frame of its own, everything
        // verified to the record's end: the record's own stack.
        if own == 0 && at == r.base && n < self.cap && r.id != 0 {
            return Some(Walk::Id(r.id));
        }
        // The joined run (record positions at..at + len) is not in buf yet:
        // first what the id-cache key reads (writing the record below
        // changes only positions under `at`).
        let len = n - own;
        let first = len.min(INNER);
        // SAFETY: own + len = n <= cap.
        unsafe { fill_ras(self.buf, own, r, at..at + first) };
        let mut keyed = false;
        let whole = self.recordable && own <= at && n < self.cap;
        if self.recordable && own <= at {
            r.gen = self.gen;
            write_back(r, t.scratch, at - own, own, self.origin, self.in_place);
            r.base = at - own;
            r.valid = true;
            // The walk ended at the record's end (not cut by the buffer):
            // the stack may be one whose id this thread already knows.
            if n < self.cap {
                // SAFETY: buf[..own + first] is written: all the key reads
                // (at most INNER frames).
                let frames = unsafe { std::slice::from_raw_parts(self.buf, own + first) };
                // SAFETY: `sh` is this thread's shadow (it gave `t`); the id
                // table and the held key are fields the walk does not borrow.
                let sh = unsafe { &mut *sh };
                if let Some(key) = sh.key(at, own, frames) {
                    match sh.id(&key) {
                        Some(i) => {
                            // The record holds this stack now (whole).
                            if whole {
                                r.id = i;
                            }
                            return Some(Walk::Id(i));
                        }
                        None => {
                            sh.hold(key);
                            keyed = true;
                        }
                    }
                }
            }
        } else {
            r.valid = false;
        }
        // SAFETY: as above.
        unsafe { fill_ras(self.buf, own + first, r, at + first..at + len) };
        Some(Walk::Frames { n, keyed, whole })
    }

    /// The walk found its own frames to the end: they become the record,
    /// closed by the state after the last frame (sp, bp, pc).
    #[inline(always)]
    fn finish_new_record(
        self,
        t: Thread<'_>,
        sp: usize,
        bp: usize,
        pc: usize,
        ended_by_rule: bool,
    ) -> Walk {
        let (r, n) = (t.rec, self.n);
        r.gen = self.gen;
        let whole = self.recordable && n <= DEPTH && n < self.cap;
        if self.recordable && n <= DEPTH {
            // A new record, outermost-aligned: the state after the last
            // frame closes it (frame i's return address and restored rbp are
            // read from entry i + 1).
            t.scratch[n] = Frame::new(sp, bp, pc, true);
            write_back(r, t.scratch, DEPTH - n, n + 1, self.origin, self.in_place);
            r.base = DEPTH - n;
            r.valid = true;
            r.last_ends = ended_by_rule;
        } else {
            r.valid = false;
        }
        Walk::Frames {
            n,
            keyed: false,
            whole,
        }
    }
}

/// A frame entered in state (sp, bp, pc) whose rule is known to compute its
/// CFA `cfa` from rsp and to restore rbp from `bp_at` (0: it does not): its
/// return address and its state, with `bp` moved to the caller's state.
/// None where the return address ends the walk.
///
/// # Safety
/// `cfa − 8` and `bp_at` must be readable slots of the stack `mem` reads.
#[inline(always)]
unsafe fn known_frame<M: Memory>(
    mem: &M,
    sp: usize,
    bp: &mut usize,
    pc: usize,
    cfa: usize,
    bp_at: usize,
) -> Option<(usize, Frame)> {
    // SAFETY: the caller's.
    let ra = unsafe { mem.word(cfa.wrapping_sub(8)) };
    if ra < 0x4000 {
        return None;
    }
    let mut frame = Frame::new(sp, *bp, pc, false);
    if bp_at != 0 {
        frame.set_bp_at(bp_at);
        // SAFETY: the caller's.
        *bp = unsafe { mem.word(bp_at) };
    }
    Some((ra, frame))
}

/// Writes the return addresses of the record's frames `range` to
/// `buf[at..]`.
///
/// # Safety
/// `buf` must have room for `at + range.len()` entries.
#[inline(always)]
unsafe fn fill_ras(buf: *mut usize, at: usize, r: &Record, range: std::ops::Range<usize>) {
    for (i, k) in range.enumerate() {
        // SAFETY: the caller's.
        unsafe { *buf.add(at + i) = r.ra(k) };
    }
}

/// Writes the walk's `len` frame states to the record from position `from`:
/// the scratch, except the entries `in_place` (found at `origin + i`), which
/// are already there if `from == origin` and copied into the scratch first
/// if not.
#[inline(always)]
fn write_back(
    r: &mut Record,
    scratch: &mut [Frame; DEPTH + 1],
    from: usize,
    len: usize,
    origin: usize,
    in_place: u64,
) {
    if from == origin {
        r.write(from, &scratch[..len], in_place);
        return;
    }
    let mut m = in_place;
    while m != 0 {
        let i = m.trailing_zeros() as usize;
        scratch[i] = r.f[origin + i];
        m &= m - 1;
    }
    r.write(from, &scratch[..len], 0);
}

/// Copies `src` into the scratch from index `at`, as far as it has room.
#[inline(always)]
fn copy_frames(scratch: &mut [Frame; DEPTH + 1], at: usize, src: &[Frame]) {
    let room = (DEPTH + 1).saturating_sub(at).min(src.len());
    // A plain loop: a few frames, where a memmove call costs more.
    for (d, s) in scratch[at..at + room].iter_mut().zip(src) {
        *d = *s;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    /// Functions: 0 an rsp frame, 1 an rsp frame saving rbp, 2 a
    /// frame-pointer frame, 3 the outermost (its rule ends every walk), 4
    /// another rsp frame; 5 has no rule.
    fn program() -> Program {
        Program {
            rules: vec![
                rsp(32),
                rsp_saving_rbp(48),
                RBP_FRAME,
                Rule::Last,
                rsp(16),
                Rule::Other,
            ],
        }
    }

    const AT: usize = STACK + 0x100;

    /// leaf (0) ← saver (1) ← fp frame (2) ← rsp (4) ← outermost (3).
    fn calls() -> Vec<Call> {
        vec![
            Call {
                func: 0,
                site: 0,
                size: 32,
            },
            Call {
                func: 1,
                site: 1,
                size: 48,
            },
            Call {
                func: 2,
                site: 2,
                size: 64,
            },
            Call {
                func: 4,
                site: 0,
                size: 16,
            },
        ]
    }

    fn stack() -> FakeStack {
        FakeStack::new(STACK, 128)
    }

    #[test]
    fn frames_by_rule_rsp_and_rbp_based_cfa_and_a_saved_rbp() {
        let (mut s, p) = (stack(), program());
        let laid = lay_out(&mut s, &p, AT, &calls(), ra_into(3, 0));
        // The frame-pointer frame's CFA comes from the rbp frame 1 restored.
        let (walked, frames) = capture(&s, &p, laid.caller, 64, None);
        assert_eq!(
            walked,
            Some(Walk::Frames {
                n: 5,
                keyed: false,
                whole: false
            })
        );
        assert_eq!(frames, laid.ras);
        assert_eq!(
            frames[4],
            ra_into(3, 0),
            "the outermost frame's return address, then its rule ends the walk"
        );
    }

    #[test]
    fn a_wrong_saved_rbp_sends_the_frame_pointer_frame_elsewhere() {
        let (mut s, p) = (stack(), program());
        let laid = lay_out(&mut s, &p, AT, &calls(), ra_into(3, 0));
        // Frame 1 restores rbp from CFA − 16: point it at frame 3's frame
        // instead, so the fp frame's CFA lands on the wrong return address.
        s.set(laid.cfas[1] - 16, laid.cfas[3] - 16);
        let (_, frames) = capture(&s, &p, laid.caller, 64, None);
        assert_ne!(frames, laid.ras);
        assert_eq!(frames[..2], laid.ras[..2]);
    }

    #[test]
    fn a_return_address_below_0x4000_ends_the_walk() {
        let (mut s, p) = (stack(), program());
        let laid = lay_out(&mut s, &p, AT, &calls(), 0);
        let (walked, frames) = capture(&s, &p, laid.caller, 64, None);
        assert_eq!(
            walked,
            Some(Walk::Frames {
                n: 4,
                keyed: false,
                whole: false
            })
        );
        assert_eq!(frames, laid.ras);
    }

    #[test]
    fn the_buffer_cuts_the_walk() {
        let (mut s, p) = (stack(), program());
        let laid = lay_out(&mut s, &p, AT, &calls(), ra_into(3, 0));
        let (walked, frames) = capture(&s, &p, laid.caller, 2, None);
        assert_eq!(
            walked,
            Some(Walk::Frames {
                n: 2,
                keyed: false,
                whole: false
            })
        );
        assert_eq!(frames, laid.ras[..2]);
    }

    #[test]
    fn a_pc_without_a_simple_rule_hands_the_capture_to_libunwind() {
        let (mut s, p) = (stack(), program());
        let mut c = calls();
        c[2].func = 5; // no rule
        let laid = lay_out(&mut s, &p, AT, &c, ra_into(3, 0));
        assert_eq!(capture(&s, &p, laid.caller, 64, None).0, None);
        // Unknown code outside every function, too.
        s.set(laid.cfas[0] - 8, 0x10_0000);
        assert_eq!(capture(&s, &p, laid.caller, 64, None).0, None);
    }

    #[test]
    fn a_slot_above_the_stack_top_hands_the_capture_to_libunwind() {
        let (mut s, p) = (stack(), program());
        let laid = lay_out(&mut s, &p, AT, &calls(), ra_into(3, 0));
        // The top just below frame 2's return address: the walk must not
        // read it (the fake stack would panic on a read past its end).
        let short = FakeStack {
            base: s.base,
            words: s.words[..(laid.cfas[2] - 8 - STACK) / 8].to_vec(),
        };
        assert_eq!(capture(&short, &p, laid.caller, 64, None).0, None);
        // Nor may a slot straddle the top.
        let top = laid.cfas[1] - 1;
        assert_eq!(capture_to(&s, &p, laid.caller, top, 64, None).0, None);
    }

    #[test]
    fn a_walk_not_below_the_stack_top_hands_the_capture_to_libunwind() {
        let (mut s, p) = (stack(), program());
        let laid = lay_out(&mut s, &p, AT, &calls(), ra_into(3, 0));
        // Unknown bounds (1), or the hook running on another stack.
        for hi in [1, AT, AT + 8] {
            assert_eq!(
                capture_to(&s, &p, laid.caller, hi, 64, None).0,
                None,
                "hi {hi:#x}"
            );
        }
    }
}
