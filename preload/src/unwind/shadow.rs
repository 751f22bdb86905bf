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
#[derive(Clone, Copy, Default)]
pub struct Frame {
    pub sp: usize,
    pub bp: usize,
    pub pc: usize,
    pub bp_at: usize,
}

pub struct Frames {
    pub base: usize,
    pub valid: bool,
    /// The rule cache's generation the record was made under.
    pub gen: u64,
    pub f: [Frame; DEPTH + 1],
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
    /// Writes `states` at positions `from..` and gives them a new version.
    #[inline]
    pub fn write(&mut self, from: usize, states: &[Frame]) {
        let to = from + states.len();
        self.f[from..to].copy_from_slice(states);
        self.stamp += 1;
        self.ver[from..to].fill(self.stamp);
    }
}

impl Shadow {
    /// The key for `frames`, a stack whose first `n0` frames are the walk's
    /// own and the rest the record's from position `q` on; None if it
    /// cannot be cached. The key is taken at the record position INNER
    /// frames up (or the record's end): the same position for the same
    /// stack wherever the walk joined, and one that later joins rewrite
    /// less often than q itself.
    #[inline]
    pub fn key(&self, q: usize, n0: usize, frames: &[usize]) -> Option<IdKey> {
        if n0 > INNER || q > DEPTH {
            return None;
        }
        let at = (q + (INNER - n0)).min(DEPTH);
        let inner = frames.get(..n0 + (at - q))?;
        let mut e = IdEntry { ver: self.rec.ver[at], id: 0, q: at as u8, n0: inner.len() as u8, inner: [0; INNER] };
        e.inner[..inner.len()].copy_from_slice(inner);
        let mut h = (at as u64) << 8 | inner.len() as u64;
        for &f in inner {
            h = (h ^ f as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        Some(IdKey { slot: (h >> 58) as usize % ID_SLOTS, entry: e })
    }

    /// The id remembered for `key`, if the record above its join point is
    /// still the one it was made with.
    #[inline]
    pub fn id(&self, key: &IdKey) -> Option<u32> {
        let (e, k) = (&self.ids[key.slot], &key.entry);
        let same = e.id != 0 && e.ver == k.ver && e.q == k.q && e.n0 == k.n0 && e.inner == k.inner;
        same.then_some(e.id)
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
