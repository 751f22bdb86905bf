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
//! What makes a join cheap and safe: a frame is only recorded if the two
//! slots it reads (return address, saved rbp) lie within the frame itself,
//! between its sp and its CFA − 8, and the frame is under 1 MiB. Then the
//! slots of every frame above a join lie between the join's sp (the live
//! sp of the walk) and the record's last sp, which was in this thread's
//! stack: re-reading them needs no bounds check.
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
//! The shadow lives in the thread's ring scratch (ring.rs): zeroed memory is
//! an empty record (not valid) and an empty table (id 0 = no entry).

/// Frames kept from a thread's previous capture (the outermost DEPTH).
pub const DEPTH: usize = 64;
/// Own frames a cached id may have below its join point.
pub const INNER: usize = 6;
const ID_SLOTS: usize = 64;

/// A frame state on entry to a frame: sp, rbp, the pc its rule is looked up
/// at; and where its rule restores rbp from (0: not restored).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Frame {
    pub sp: usize,
    pub bp: usize,
    pub pc: usize,
    pub bp_at: usize,
}

/// Re-checking recorded frame k: `*ra_at == ra` and `*bp_at == bp`, kept
/// next to each other so the check loop reads one line per two frames. A
/// frame that restores no rbp checks its return address twice: no branch.
#[derive(Clone, Copy, Default)]
pub struct Check {
    pub ra_at: usize,
    pub ra: usize,
    pub bp_at: usize,
    pub bp: usize,
}

pub struct Frames {
    pub base: usize,
    pub valid: bool,
    /// Walking the last state (`f[DEPTH]`) ends the walk by its rule
    /// (return address or rbp undefined): no need to look the rule up.
    pub last_ends: bool,
    /// The rule cache's generation the record was made under.
    pub gen: u64,
    pub f: [Frame; DEPTH + 1],
    /// `chk[k]` re-checks frame k (made from `f[k]` and `f[k + 1]`).
    pub chk: [Check; DEPTH],
    /// Set to a new `stamp` on every write of position k.
    ver: [u64; DEPTH + 1],
    stamp: u64,
}

#[derive(Clone, Copy)]
struct IdEntry {
    ver: u64,
    id: u32,
    q: u8,
    n0: u8,
    inner: [usize; INNER],
}

/// Where a capture's id goes in the table, and what it must match.
#[derive(Clone, Copy)]
pub struct IdKey {
    slot: usize,
    entry: IdEntry,
}

pub struct Shadow {
    pub rec: Frames,
    /// Scratch: a walk's own frame states, innermost first, until it knows
    /// where they go in the record.
    pub tmp: [Frame; DEPTH + 1],
    ids: [IdEntry; ID_SLOTS],
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
            && (self.bp_at == 0 || (self.bp_at >= self.sp && self.bp_at <= ra_at))
    }
}

impl Frames {
    /// Writes `states` at positions `from..` and gives them all a new
    /// version (see the module doc: every position up to the highest one
    /// changed must get one). A frame equal to the one already there (a
    /// walk that joined below a change and went on: same depth, same inner
    /// frames) is not copied, and its check is remade only if the frame
    /// above it changed.
    #[inline]
    pub fn write(&mut self, from: usize, states: &[Frame]) {
        self.stamp += 1;
        let mut above_changed = false;
        for (i, s) in states.iter().enumerate().rev() {
            let k = from + i;
            let changed = self.f[k] != *s;
            if changed {
                self.f[k] = *s;
            }
            if (changed || above_changed) && k < DEPTH {
                self.chk[k] = Check::of(s, &self.f[k + 1]);
            }
            self.ver[k] = self.stamp;
            above_changed = changed;
        }
    }
}

impl Check {
    /// The check for the frame entered in state `e`, whose caller's state
    /// is `next`.
    #[inline(always)]
    fn of(e: &Frame, next: &Frame) -> Check {
        let (ra_at, ra) = (next.sp.wrapping_sub(8), next.pc + 1);
        if e.bp_at != 0 {
            Check { ra_at, ra, bp_at: e.bp_at, bp: next.bp }
        } else {
            Check { ra_at, ra, bp_at: ra_at, bp: ra }
        }
    }
}

impl Shadow {
    /// The key for `frames`, a stack whose first `n0` frames are the walk's
    /// own and the rest the record's from position `q` on; None if it
    /// cannot be cached. The key is taken at the record position INNER
    /// frames up (or the record's end): the same position for the same
    /// stack wherever the walk joined, and one that later joins rewrite
    /// less often than q itself.
    #[inline(always)]
    pub fn key(&self, q: usize, n0: usize, frames: &[usize]) -> Option<IdKey> {
        if n0 > INNER || q > DEPTH {
            return None;
        }
        let at = (q + (INNER - n0)).min(DEPTH);
        let len = n0 + (at - q);
        if len > frames.len() {
            return None;
        }
        let mut e = IdEntry { ver: self.rec.ver[at], id: 0, q: at as u8, n0: len as u8, inner: [0; INNER] };
        // Unused words stay 0 in both the key and the entry, so whole
        // arrays compare (no length-dependent loop, no memcmp call).
        for (i, (d, &f)) in e.inner.iter_mut().zip(frames).enumerate() {
            if i < len {
                *d = f;
            }
        }
        let h = (e.inner[0] ^ e.inner[1].rotate_left(21) ^ e.inner[2].rotate_left(42) ^ (at << 3 | len)) as u64;
        let slot = (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % ID_SLOTS;
        Some(IdKey { slot, entry: e })
    }

    /// The id remembered for `key`, if the record above its join point is
    /// still the one it was made with.
    #[inline(always)]
    pub fn id(&self, key: &IdKey) -> Option<u32> {
        let (e, k) = (&self.ids[key.slot], &key.entry);
        let mut diff = (e.ver ^ k.ver) as usize | (e.q ^ k.q) as usize | (e.n0 ^ k.n0) as usize;
        for i in 0..INNER {
            diff |= e.inner[i] ^ k.inner[i];
        }
        (e.id != 0 && diff == 0).then_some(e.id)
    }

    /// Remembers `id` for `key`. To be called after the record was updated
    /// by the walk that made the key (which leaves position q as it was).
    pub fn remember(&mut self, key: &IdKey, id: u32) {
        let mut e = key.entry;
        if self.rec.ver[e.q as usize] != e.ver {
            return;
        }
        e.id = id;
        self.ids[key.slot] = e;
    }
}
