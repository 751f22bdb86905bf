//! A thread's record of its previous capture, and the stack ids of recent
//! captures that ended the same way.
//!
//! The record holds the frame states of the previous walk, aligned on its
//! outermost frame: `f[base..DEPTH]` are the states on entry to its frames,
//! innermost first, `f[DEPTH]` the state after the last. Frame i's return
//! address is `f[i+1].pc + 1`, read at `f[i+1].sp − 8`, and the rbp it
//! restores is `f[i+1].bp`. Aligned this way, the frames above the point
//! where the next walk joins keep their places: a capture that joins only
//! writes its own few inner frames.
//!
//! A thread keeps RECORDS records, one per recent entry point and path: the
//! stack address of the hook's caller, the return address into it, and
//! (when several records share those) the one whose first frame's return
//! address still checks out. A server that allocates from a few call sites
//! in turn, each reached through a few callers, walks each against the
//! record of the last capture from the same site and caller, not against
//! whatever allocated last.
//!
//! A walk joins a record where it reaches one of its frame states: same sp
//! and pc, and the same rbp unless no frame from there on reads rbp before
//! restoring it from the stack (`bp_free`). Compilers without frame pointers
//! keep program data in rbp, which would otherwise make most states differ
//! from one capture to the next. A recorded rbp may then be stale, but only
//! in states where it does not matter.
//!
//! What makes a join cheap and safe: a frame is only recorded if the two
//! slots it reads (return address, saved rbp) lie within the frame itself,
//! between its sp and its CFA − 8, and the frame is under 1 MiB. Then the
//! slots of every frame above a join lie between the join's sp (the live
//! sp of the walk) and the record's last sp, which was in this thread's
//! stack: re-reading them needs no bounds check.
//!
//! A record also knows the id of the stack it holds (`id`, 0: not known;
//! cleared by every write): a walk that joins at the record's base with no
//! frame of its own and verifies every frame to the end has exactly that
//! stack, and needs neither the id cache nor the buffer of return
//! addresses.
//!
//! Id cache: when a walk joins the record at position q and every frame
//! above checks out to the end of the stack, the stack is its first few
//! frames followed by the record's frames from some position at or above q
//! — the same as the last time this happened with the same first frames, as
//! long as that position and those above were not rewritten meanwhile.
//! Every write of a position gives it a new version, and a rewrite always
//! covers a range from the record's base upward, so an unchanged version at
//! a position means nothing above it changed. A small direct-mapped table
//! keyed by (position, version, first frames) keeps the ids:
//! a server answering the same requests under the same deep stack gets its
//! stack id without hashing or comparing the whole stack.
//!
//! The reads go through `Memory` (memory.rs): the live stack in the hooks,
//! a fake one in the unit tests below.
//!
//! The shadow lives in the thread's ring scratch (ring.rs): zeroed memory is
//! an empty record (not valid) and an empty table (id 0 = no entry).

use super::memory::Memory;

/// Frames kept from a thread's previous capture (the outermost DEPTH).
pub const DEPTH: usize = 64;
/// Own frames a cached id may have below its join point.
pub const INNER: usize = 6;
const ID_SLOTS: usize = 64;

/// Records kept per thread (see the module doc).
pub const RECORDS: usize = 8;

/// A frame state on entry to a frame: sp, rbp, the pc its rule is looked up
/// at; where its rule restores rbp from (0: not restored), and whether its
/// CFA is computed from rbp (the last state of a record, not walked yet,
/// counts as such: nothing is known of its rule). 32 bytes: the flag is the
/// top bit of the slot address (user-space addresses are below 2^47), so
/// the frames a walk copies stay two to a cache line.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Frame {
    pub sp: usize,
    pub bp: usize,
    pub pc: usize,
    bp_at: usize,
}

const CFA_RBP: usize = 1 << 63;

impl Frame {
    #[inline(always)]
    pub fn new(sp: usize, bp: usize, pc: usize, cfa_rbp: bool) -> Frame {
        Frame {
            sp,
            bp,
            pc,
            bp_at: if cfa_rbp { CFA_RBP } else { 0 },
        }
    }

    /// Where the frame's rule restores rbp from (0: it does not).
    #[inline(always)]
    pub fn bp_at(&self) -> usize {
        self.bp_at & !CFA_RBP
    }

    /// Sets the slot rbp is restored from (a user-space address, not 0).
    #[inline(always)]
    pub fn set_bp_at(&mut self, at: usize) {
        self.bp_at = (self.bp_at & CFA_RBP) | (at & !CFA_RBP);
    }

    #[inline(always)]
    pub fn cfa_rbp(&self) -> bool {
        self.bp_at & CFA_RBP != 0
    }
}

/// `from`, plus every bit below a bit of the result whose position is in
/// `through` (a downward occluded fill, in six steps instead of a loop
/// over the positions).
#[inline(always)]
fn fill_down(mut from: u64, mut through: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        from |= through & (from >> shift);
        through &= through >> shift;
    }
    from
}

/// Bits `lo..hi` of a u64 (hi ≤ 64).
#[inline(always)]
pub fn bits(lo: usize, hi: usize) -> u64 {
    let below = |x: usize| if x >= 64 { !0u64 } else { (1u64 << x) - 1 };
    below(hi) & !below(lo)
}

/// The frame states of one previous capture, with what the re-checks need
/// (see the module doc).
pub struct Record {
    pub base: usize,
    pub valid: bool,
    /// Walking the last state (`f[DEPTH]`) ends the walk by its rule
    /// (return address or rbp undefined): no need to look the rule up.
    pub last_ends: bool,
    /// The rule cache's generation the record was made under.
    pub gen: u64,
    /// The re-check of frame k reads `f[k + 1]`: its return address
    /// `f[k + 1].pc + 1` at `f[k + 1].sp − 8`, and the rbp it restores (if
    /// bit k of `bp_mask` is set) `f[k + 1].bp` at `f[k].bp_at()`. Nothing
    /// else is stored for the checks: a write stores each frame once.
    pub f: [Frame; DEPTH + 1],
    /// Bit k: frame k restores rbp from the stack.
    bp_mask: u64,
    /// Bit k: frame k computes its CFA from rbp.
    cfa_mask: u64,
    /// Bit k: the rbp frame k restores matters (some frame above reads it
    /// before another restores rbp: `!bp_free(k + 1)`). A run verified to
    /// its end checks only the return addresses and these: a frame that
    /// restores a register no frame reads gives the same stack whatever it
    /// held.
    need_mask: u64,
    /// Bit k: the walk from state k reads no rbp before some frame restores
    /// it from the stack, so state k's own rbp does not matter (`bp_free`).
    free_mask: u64,
    /// Set to a new `stamp` on every write of position k.
    ver: [u64; DEPTH + 1],
    stamp: u64,
    /// The id of the stack `f[base..]` holds, if known (see the module doc).
    pub id: u32,
}

#[derive(Clone, Copy)]
struct IdEntry {
    ver: u64,
    id: u32,
    rec: u8,
    /// The record position the key was taken at (see `Shadow::key`).
    at: u8,
    /// How many of `inner` are frames.
    len: u8,
    /// The stack's frames up to position `at`.
    inner: [usize; INNER],
}

/// Where a capture's id goes in the table, and what it must match.
#[derive(Clone, Copy)]
pub struct IdKey {
    slot: usize,
    entry: IdEntry,
}

#[repr(C)]
pub struct Shadow {
    /// Scratch: a walk's own frame states, innermost first, until it knows
    /// where they go in the record. (First: then the scratch and the first
    /// record do not lie a multiple of 4 KiB apart, where copies between
    /// them would stall on 4K aliasing.)
    pub scratch: [Frame; DEPTH + 1],
    ids: [IdEntry; ID_SLOTS],
    pub recs: [Record; RECORDS],
    /// The record of the current walk (`pick`), and when each was last
    /// picked.
    cur: usize,
    used: [u64; RECORDS],
    tick: u64,
    misses: u64,
    /// The key of the last walk that missed the id table, to be given its
    /// id (`remember`). Kept here rather than returned: a key copied through
    /// the return value field by field stalled its reload (store forwarding).
    pending: IdKey,
    /// Frames recently walked by rule, by entry state (`Step`).
    pub steps: [Step; STEPS],
}

/// Slots of the step table (direct-mapped).
pub const STEPS: usize = 256;

/// A frame walked by rule, remembered by its entry state: a frame entered
/// at the same sp and pc has the same rule, so if that rule computes the
/// CFA from rsp, the same CFA and the same slots (return address at
/// CFA − 8, saved rbp at `bp_at`, 0 if none). The next walk through it
/// skips the rule lookup and its checks: a fresh stack whose frames take
/// turns (churn) walks the same few states again and again. Only frames
/// that may go in a record (slots inside the frame) are kept. `gen`: the
/// rule cache's generation it was made under. All zero: no entry.
#[derive(Clone, Copy)]
pub struct Step {
    pub sp: usize,
    pub pc: usize,
    pub cfa: usize,
    pub bp_at: usize,
    pub gen: u64,
}

impl Step {
    /// The slot for entry state (sp, pc).
    #[inline(always)]
    pub fn slot(sp: usize, pc: usize) -> usize {
        ((sp ^ pc.rotate_left(20)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) % STEPS
    }
}

const _: () = assert!(std::mem::size_of::<Shadow>() <= crate::ring::SCRATCH_BYTES);

/// Largest frame recorded (see the module doc).
const MAX_FRAME_BYTES: usize = 1 << 20;

impl Frame {
    /// True if this frame, whose CFA is `cfa`, may go in a record: the
    /// slots it reads lie inside it (see the module doc).
    #[inline(always)]
    pub fn recordable(&self, cfa: usize) -> bool {
        let ra_at = cfa.wrapping_sub(8);
        ra_at >= self.sp
            && ra_at - self.sp < MAX_FRAME_BYTES
            && (self.bp_at() == 0 || (self.bp_at() >= self.sp && self.bp_at() <= ra_at))
    }
}

impl Record {
    /// Writes `states` at positions `from..` and gives them all a new
    /// version (see the module doc: every position up to the highest one
    /// changed must get one). Bit i of `in_place`: `states[i]` is not
    /// meaningful, the frame at `from + i` stays (a verified run the walk
    /// found where it goes). The re-checks need nothing else (they read the
    /// frames); the rbp masks are recomputed whole, a few bit operations.
    #[inline]
    pub fn write(&mut self, from: usize, states: &[Frame], in_place: u64) {
        self.stamp += 1;
        self.id = 0;
        let stamp = self.stamp;
        let len = states.len();
        let below = bits(0, from.min(DEPTH));
        let (mut bp, mut cfa) = (self.bp_mask & !below, self.cfa_mask & !below);
        let mut todo = bits(0, len.min(64)) & !in_place;
        while todo != 0 {
            let i = todo.trailing_zeros() as usize;
            todo &= todo - 1;
            let (k, s) = (from + i, states[i]);
            self.f[k] = s;
            if k < DEPTH {
                let b = 1u64 << k;
                bp = if s.bp_at() != 0 { bp | b } else { bp & !b };
                cfa = if s.cfa_rbp() { cfa | b } else { cfa & !b };
            }
        }
        if len > 64 {
            // A record 65 states deep: its last one, at DEPTH.
            self.f[from + 64] = states[64];
        }
        for v in &mut self.ver[from..from + len] {
            *v = stamp;
        }
        self.bp_mask = bp;
        self.cfa_mask = cfa;
        // State k's rbp is free if frame k restores it and does not read it
        // for its CFA, or reads it for nothing and state k + 1's is free.
        self.free_mask = fill_down(bp & !cfa, !(bp | cfa));
        self.need_mask = bp & !(self.free_mask >> 1);
    }

    /// `bp_free` of state k (see `free_mask`); the record's last state
    /// (DEPTH) is never free: nothing is known of its rule.
    #[inline(always)]
    pub fn bp_free(&self, k: usize) -> bool {
        k < DEPTH && (self.free_mask >> k) & 1 != 0
    }

    /// The return address frame k read (k < DEPTH).
    #[inline(always)]
    pub fn ra(&self, k: usize) -> usize {
        self.f[k + 1].pc + 1
    }

    /// The first frame in `from..end` whose slots no longer hold what they
    /// held, or `end` if the run from `from` gives the same stack as recorded.
    ///
    /// # Safety
    /// The slots of frames `from..end` must be readable in `mem`: the walk
    /// joined the record at `from` (see the module doc).
    #[inline(always)]
    pub unsafe fn first_changed<M: Memory>(&self, mem: &M, from: usize, end: usize) -> usize {
        let end = end.min(DEPTH);
        let mut changed = from;
        while changed < end {
            // SAFETY: the caller's: the return address slot of frame
            // `changed` lies inside it.
            if unsafe { mem.word(self.f[changed + 1].sp.wrapping_sub(8)) } != self.ra(changed) {
                break;
            }
            changed += 1;
            // The loop's own condition again, here: the compiler then keeps
            // a long run's loop (a server's ≈ 27 frames) in registers.
            if changed == end {
                break;
            }
        }
        // SAFETY: the caller's, for frames from..changed.
        changed = unsafe { self.first_bp_changed(mem, self.need_mask & bits(from, changed)) }
            .unwrap_or(changed);
        if changed < end {
            // The walk goes on from frame `changed` with the recorded rbp:
            // every rbp restored below it must hold, whether it mattered or not.
            // SAFETY: as above.
            changed = unsafe { self.first_bp_changed(mem, self.bp_mask & bits(from, changed)) }
                .unwrap_or(changed);
        }
        changed
    }

    /// The first frame in `frames` (a bit set) whose restored rbp changed.
    ///
    /// # Safety
    /// As `first_changed`, for the frames in `frames`.
    #[inline(always)]
    unsafe fn first_bp_changed<M: Memory>(&self, mem: &M, mut frames: u64) -> Option<usize> {
        while frames != 0 {
            let i = frames.trailing_zeros() as usize;
            // SAFETY: the caller's: frame i's saved-rbp slot lies inside it.
            if unsafe { mem.word(self.f[i].bp_at()) } != self.f[i + 1].bp {
                return Some(i);
            }
            frames &= frames - 1;
        }
        None
    }
}

impl Record {
    /// The entry point this record was made from: the stack address of the
    /// hook's caller and the return address into it.
    #[inline(always)]
    fn entry(&self) -> Option<(usize, usize)> {
        (self.valid && self.base < DEPTH).then(|| (self.f[self.base].sp, self.ra(self.base)))
    }

    /// Becomes a copy of `other` (its live part), with new versions.
    fn copy_from(&mut self, other: &Record) {
        let b = other.base.min(DEPTH);
        self.base = other.base;
        self.valid = other.valid;
        self.last_ends = other.last_ends;
        self.gen = other.gen;
        self.id = other.id;
        self.f[b..].copy_from_slice(&other.f[b..]);
        self.bp_mask = other.bp_mask;
        self.cfa_mask = other.cfa_mask;
        self.need_mask = other.need_mask;
        self.free_mask = other.free_mask;
        self.stamp += 1;
        self.ver[b..].fill(self.stamp);
    }
}

impl Shadow {
    /// Picks the record this walk uses, for a hook called at stack address
    /// `at` with return address `ra0` and rbp `bp` (rule cache generation
    /// `gen`): one made from the same entry point whose first frame still
    /// checks out (the same caller), else one from the same entry point,
    /// else the record last used (its outer frames are the likeliest to
    /// match). A record that does not check out is taken over, except every
    /// 4th time, when it is first copied over the record used longest ago:
    /// entry points and paths seen again and again get their own record, at
    /// the price of a copy now and then.
    ///
    /// # Safety
    /// `at` and `bp` must be the entry state of a hook running on the stack
    /// `mem` reads (the first check reads a slot above `at`).
    #[inline(always)]
    pub unsafe fn pick<M: Memory>(
        &mut self,
        mem: &M,
        at: usize,
        ra0: usize,
        bp: usize,
        gen: u64,
    ) -> usize {
        self.tick += 1;
        let mut same_entry = None;
        let mut found = None;
        for (i, r) in self.recs.iter().enumerate() {
            if r.gen == gen && r.entry() == Some((at, ra0)) {
                // The first check re-reads the return address the entry
                // matched already; the second tells the callers apart.
                let b = r.base;
                if (r.f[b].bp == bp || r.bp_free(b))
                    // SAFETY: the record's frames from its entry at `at` read
                    // only inside themselves (Frame::recordable): their slots
                    // lie in the stack above `at`.
                    && unsafe { r.first_changed(mem, b, b + 2) } == (b + 2).min(DEPTH)
                {
                    found = Some(i);
                    break;
                }
                same_entry = same_entry.or(Some(i));
            }
        }
        let i = match found {
            Some(i) => i,
            None => self.take_over(same_entry.unwrap_or(self.cur)),
        };
        self.used[i] = self.tick;
        self.cur = i;
        i
    }

    #[cold]
    fn take_over(&mut self, src: usize) -> usize {
        self.misses += 1;
        if !self.misses.is_multiple_of(4) || !self.recs[src].valid {
            return src;
        }
        let oldest = (0..RECORDS)
            .filter(|&i| i != src)
            .min_by_key(|&i| self.used[i])
            .unwrap_or(src);
        let (a, b) = if oldest < src {
            let (lo, hi) = self.recs.split_at_mut(src);
            (&mut lo[oldest], &hi[0])
        } else {
            let (lo, hi) = self.recs.split_at_mut(oldest);
            (&mut hi[0], &lo[src])
        };
        a.copy_from(b);
        oldest
    }

    /// Remembers `id` as the id of the stack the current record holds (the
    /// walk that just made or matched it returned it whole).
    pub fn remember_whole(&mut self, id: u32) {
        self.recs[self.cur].id = id;
    }

    /// The key for `frames`, a stack whose first `own` frames are the walk's
    /// own and the rest the record's from position `join_at` on; None if it
    /// cannot be cached. The key is taken at the record position INNER
    /// frames up (or the record's end): the same position for the same
    /// stack wherever the walk joined, and one that later joins rewrite
    /// less often than `join_at` itself.
    #[inline(always)]
    pub fn key(&self, join_at: usize, own: usize, frames: &[usize]) -> Option<IdKey> {
        if own > INNER || join_at > DEPTH {
            return None;
        }
        let at = (join_at + (INNER - own)).min(DEPTH);
        let len = own + (at - join_at);
        if len > frames.len() {
            return None;
        }
        let rec = &self.recs[self.cur];
        let mut e = IdEntry {
            ver: rec.ver[at],
            id: 0,
            rec: self.cur as u8,
            at: at as u8,
            len: len as u8,
            inner: [0; INNER],
        };
        // Unused words stay 0 in both the key and the entry, so whole
        // arrays compare (no length-dependent loop, no memcmp call).
        for (i, (d, &f)) in e.inner.iter_mut().zip(frames).enumerate() {
            if i < len {
                *d = f;
            }
        }
        let h = (e.inner[0]
            ^ e.inner[1].rotate_left(21)
            ^ e.inner[2].rotate_left(42)
            ^ (self.cur << 12 | at << 3 | len)) as u64;
        let slot = (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % ID_SLOTS;
        Some(IdKey { slot, entry: e })
    }

    /// The id remembered for `key`, if the record above its join point is
    /// still the one it was made with.
    #[inline(always)]
    pub fn id(&self, key: &IdKey) -> Option<u32> {
        let (e, k) = (&self.ids[key.slot], &key.entry);
        let mut diff = (e.ver ^ k.ver) as usize
            | (e.rec ^ k.rec) as usize
            | (e.at ^ k.at) as usize
            | (e.len ^ k.len) as usize;
        for i in 0..INNER {
            diff |= e.inner[i] ^ k.inner[i];
        }
        (e.id != 0 && diff == 0).then_some(e.id)
    }

    /// Holds `key` until its id is known (`remember`).
    #[inline(always)]
    pub fn hold(&mut self, key: IdKey) {
        self.pending = key;
    }

    /// Remembers `id` for the held key. To be called after the record was
    /// updated by the walk that made the key (which leaves position `at` as it
    /// was).
    pub fn remember(&mut self, id: u32) {
        let mut e = self.pending.entry;
        if self.recs[e.rec as usize].ver[e.at as usize] != e.ver {
            return;
        }
        e.id = id;
        self.ids[self.pending.slot] = e;
    }
}

#[cfg(test)]
mod tests {
    use super::super::rules::Rule;
    use super::super::testing::*;
    use super::*;

    /// Functions: 0 a leaf saving rbp, 1 an rsp frame, 2 a frame-pointer
    /// frame, 3 the outermost (its rule ends every walk), 4 and 5 rsp frames
    /// saving rbp, 6 and 7 two handlers of the same size.
    fn program() -> Program {
        Program {
            rules: vec![
                rsp_saving_rbp(32),
                rsp(48),
                RBP_FRAME,
                Rule::Last,
                rsp_saving_rbp(32),
                rsp_saving_rbp(32),
                rsp(64),
                rsp(64),
            ],
        }
    }

    const AT: usize = STACK + 0x200;

    /// A server's stack: leaf, a chain of ten frames of every kind, the
    /// outermost.
    fn deep() -> Vec<Call> {
        let mut c = vec![Call {
            func: 0,
            site: 0,
            size: 32,
        }];
        for i in 0..10 {
            c.push(match i % 4 {
                0 => Call {
                    func: 1,
                    site: i,
                    size: 48,
                },
                1 => Call {
                    func: 2,
                    site: i,
                    size: 80,
                },
                2 => Call {
                    func: 4,
                    site: i,
                    size: 32,
                },
                _ => Call {
                    func: 5,
                    site: i,
                    size: 32,
                },
            });
        }
        c
    }

    fn stack() -> FakeStack {
        FakeStack::new(STACK, 512)
    }

    fn first_changed(r: &Record, s: &FakeStack, from: usize, end: usize) -> usize {
        // SAFETY: the fake stack checks every read.
        unsafe { r.first_changed(s, from, end) }
    }

    /// The valid record (tests with one entry point have one).
    fn record(sh: &Shadow) -> &Record {
        let mut valid = sh.recs.iter().filter(|r| r.valid);
        let r = valid.next().expect("a valid record");
        assert!(valid.next().is_none());
        r
    }

    #[test]
    fn joined_at_the_base_and_verified_to_the_end_gives_the_records_id() {
        let (mut s, p, mut sh, mut ids) = (stack(), program(), new_shadow(), Interner::default());
        let laid = lay_out(&mut s, &p, AT, &deep(), ra_into(3, 0));
        let (first, from) = checked(&s, &p, laid.caller, 64, &mut sh, &mut ids);
        assert_eq!(from, Source::Walked);
        assert_eq!(ids.stack(first), &laid.ras[..]);
        assert_eq!(record(&sh).id, first);
        for _ in 0..3 {
            assert_eq!(
                checked(&s, &p, laid.caller, 64, &mut sh, &mut ids),
                (first, Source::Shadow)
            );
        }
    }

    #[test]
    fn the_buffers_end_is_not_the_stacks_end() {
        // Cut by the buffer, the record's frames are not the whole stack:
        // its id is never the stack's.
        let (mut s, p, mut sh, mut ids) = (stack(), program(), new_shadow(), Interner::default());
        let laid = lay_out(&mut s, &p, AT, &deep(), ra_into(3, 0));
        for _ in 0..3 {
            let (id, from) = checked(&s, &p, laid.caller, 5, &mut sh, &mut ids);
            assert_eq!((ids.stack(id), from), (&laid.ras[..5], Source::Walked));
        }
    }

    #[test]
    fn a_changed_frame_in_the_middle_is_walked_again() {
        let (mut s, p, mut sh, mut ids) = (stack(), program(), new_shadow(), Interner::default());
        let calls = deep();
        let laid = lay_out(&mut s, &p, AT, &calls, ra_into(3, 0));
        let (old, _) = checked(&s, &p, laid.caller, 64, &mut sh, &mut ids);
        assert_eq!(
            checked(&s, &p, laid.caller, 64, &mut sh, &mut ids),
            (old, Source::Shadow)
        );
        // Frame 5 (a frame-pointer frame) is now called from another site of
        // the same function: same addresses, same rules, one return address
        // changed. Then frame 3 (an rsp frame) too.
        for (frame, site) in [(5, 7), (3, 9)] {
            let mut c = calls.clone();
            c[frame].site = site;
            let laid = lay_out(&mut s, &p, AT, &c, ra_into(3, 0));
            let (new, from) = checked(&s, &p, laid.caller, 64, &mut sh, &mut ids);
            assert_ne!(new, old);
            assert_eq!(from, Source::Walked);
            assert_eq!(
                checked(&s, &p, laid.caller, 64, &mut sh, &mut ids),
                (new, Source::Shadow)
            );
        }
        // And back: the first stack again.
        let laid = lay_out(&mut s, &p, AT, &calls, ra_into(3, 0));
        assert_eq!(checked(&s, &p, laid.caller, 64, &mut sh, &mut ids).0, old);
    }

    #[test]
    fn a_changed_saved_rbp_that_a_frame_pointer_frame_reads_is_walked_again() {
        let (mut s, p, mut sh, mut ids) = (stack(), program(), new_shadow(), Interner::default());
        let calls = deep();
        let laid = lay_out(&mut s, &p, AT, &calls, ra_into(3, 0));
        let (old, _) = checked(&s, &p, laid.caller, 64, &mut sh, &mut ids);
        // Frame 1 (rsp) saves nothing; frame 0 (the leaf) saved rbp, which
        // frame 2 (frame pointer) reads through frame 1: point it 16 bytes
        // up, at a slot made to look like a frame.
        let bp_at = laid.cfas[0] - 16;
        let moved = s.get(bp_at) + 16;
        s.set(bp_at, moved);
        s.set(moved + 8, ra_into(4, 5));
        s.set(moved, s.get(moved - 16));
        let (new, _) = checked(&s, &p, laid.caller, 64, &mut sh, &mut ids);
        assert_ne!(new, old);
    }

    /// shadow_stress.c's moved frames (mv_*): the allocating frame at the
    /// same address, its caller (a frame-pointer frame with a VLA) bigger,
    /// everything above it moved up, and the caller's old return-address
    /// slot, now inside its VLA, holding the old value again. Every return
    /// address the record re-reads is as recorded; only the saved rbp the
    /// leaf restores (the caller's frame pointer) tells the stacks apart.
    #[test]
    fn a_moved_frame_with_the_same_return_address_slots_but_another_saved_rbp_is_walked_again() {
        let (mut s, p, mut sh, mut ids) = (stack(), program(), new_shadow(), Interner::default());
        let before = [
            Call {
                func: 0,
                site: 0,
                size: 32,
            },
            Call {
                func: 2,
                site: 0,
                size: 64,
            },
            Call {
                func: 1,
                site: 0,
                size: 48,
            },
        ];
        let laid = lay_out(&mut s, &p, AT, &before, ra_into(3, 0));
        let (old, _) = checked(&s, &p, laid.caller, 64, &mut sh, &mut ids);
        assert_eq!(
            checked(&s, &p, laid.caller, 64, &mut sh, &mut ids),
            (old, Source::Shadow)
        );
        let old_slots: Vec<(usize, usize)> = s
            .words
            .iter()
            .copied()
            .enumerate()
            .filter(|w| w.1 != 0)
            .collect();
        let after = [
            Call {
                func: 0,
                site: 0,
                size: 32,
            },
            Call {
                func: 2,
                site: 0,
                size: 96,
            },
            Call {
                func: 1,
                site: 1,
                size: 48,
            },
        ];
        let moved = lay_out(&mut s, &p, AT, &after, ra_into(3, 0));
        // The old return-address slots still hold what they held.
        for at in [laid.cfas[1] - 8, laid.cfas[2] - 8] {
            assert!(
                old_slots.contains(&((at - STACK) / 8, s.get(at))),
                "slot {at:#x} was overwritten"
            );
        }
        assert_ne!(
            s.get(laid.cfas[0] - 16),
            moved.cfas[0],
            "the saved rbp differs"
        );
        let (new, from) = checked(&s, &p, moved.caller, 64, &mut sh, &mut ids);
        assert_ne!(new, old);
        assert_eq!(from, Source::Walked);
        assert_eq!(ids.stack(new), &moved.ras[..]);
    }

    #[test]
    fn first_changed_reads_return_addresses_and_the_saved_rbps_that_matter() {
        let (mut s, p, mut sh, mut ids) = (stack(), program(), new_shadow(), Interner::default());
        // leaf (saves rbp) ← rsp ← frame pointer ← saver ← saver ← rsp.
        let calls = [
            Call {
                func: 0,
                site: 0,
                size: 32,
            },
            Call {
                func: 1,
                site: 0,
                size: 48,
            },
            Call {
                func: 2,
                site: 0,
                size: 64,
            },
            Call {
                func: 4,
                site: 0,
                size: 32,
            },
            Call {
                func: 5,
                site: 0,
                size: 32,
            },
            Call {
                func: 1,
                site: 1,
                size: 48,
            },
        ];
        let laid = lay_out(&mut s, &p, AT, &calls, ra_into(3, 0));
        checked(&s, &p, laid.caller, 64, &mut sh, &mut ids);
        let r = record(&sh);
        let base = r.base;
        assert_eq!(first_changed(r, &s, base, DEPTH), DEPTH);
        // Position base + k holds frame k − 1 (base: the entry state).
        let frame = |k: usize| base + 1 + k;
        // A return address: the frame that read it.
        let saved = s.get(laid.cfas[2] - 8);
        s.set(laid.cfas[2] - 8, saved + 0x10);
        assert_eq!(first_changed(r, &s, base, DEPTH), frame(2));
        assert_eq!(
            first_changed(r, &s, frame(3), DEPTH),
            DEPTH,
            "a run above it"
        );
        s.set(laid.cfas[2] - 8, saved);
        // The rbp the leaf restores: the frame-pointer frame above reads it.
        let saved = s.get(laid.cfas[0] - 16);
        s.set(laid.cfas[0] - 16, saved + 8);
        assert_eq!(first_changed(r, &s, base, DEPTH), frame(0));
        s.set(laid.cfas[0] - 16, saved);
        // The rbp frame 3 restores: frame 4 saves and restores rbp without
        // reading it, so over a run to the end it does not matter...
        let saved = s.get(laid.cfas[3] - 16);
        s.set(laid.cfas[3] - 16, saved + 8);
        assert_eq!(first_changed(r, &s, base, DEPTH), DEPTH);
        // ...but where a frame above it changed, the walk goes on from
        // there with the recorded rbp: every restored rbp below must hold.
        let saved_ra = s.get(laid.cfas[5] - 8);
        s.set(laid.cfas[5] - 8, saved_ra + 0x10);
        assert_eq!(first_changed(r, &s, base, DEPTH), frame(3));
        s.set(laid.cfas[3] - 16, saved);
        assert_eq!(first_changed(r, &s, base, DEPTH), frame(5));
    }

    #[test]
    fn a_stable_stack_under_changing_callers_is_known_by_the_shadow() {
        // The server pattern: one call site whose caller changes (two
        // handlers of the same size: the same addresses), under a stable
        // deep stack.
        let (mut s, p, mut sh, mut ids) = (stack(), program(), new_shadow(), Interner::default());
        let mut calls = deep();
        calls.insert(
            1,
            Call {
                func: 6,
                site: 0,
                size: 64,
            },
        );
        let mut from_shadow = Vec::new();
        for round in 0..16 {
            calls[1].func = 6 + round % 2;
            let laid = lay_out(&mut s, &p, AT, &calls, ra_into(3, 0));
            let (id, from) = checked(&s, &p, laid.caller, 64, &mut sh, &mut ids);
            assert_eq!(id, 1 + round as u32 % 2);
            from_shadow.push(from == Source::Shadow);
        }
        assert!(from_shadow[8..].iter().all(|&x| x), "{from_shadow:?}");
    }
}
