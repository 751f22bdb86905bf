//! Stack interning: identical stacks get one id, shared by all threads.
//!
//! A global, insert-only, lock-free open-addressing hash table whose memory
//! comes from mmap (never malloc, so it works inside the malloc hook):
//! - `LEVELS`: slot arrays of `tag << 32 | arena word index + 1` (0 =
//!   empty), tag = high hash bits: a lookup goes straight to the entry (one
//!   memory access fewer than through the id). Level 0 has 2^15 slots;
//!   when a level is 3/4 full the next one, 4× larger, is mapped and new
//!   stacks go there; lookups try every level in order. Small programs thus touch 256 KiB, not a 32 MiB table whose
//!   pages a hash would spread every stack over. Two threads inserting the
//!   same new stack just as a level fills may get two ids for it: harmless
//!   (the analyzer merges by frames), and rare;
//! - the arena: append-only words, one entry per id: `[len | truncated <<
//!   32, id, frames...]`, in 16 MiB chunks mapped on demand;
//! - the offsets: id → arena word index + 1, so the writer can read a
//!   stack; in chunks of 2^16 ids mapped on demand.
//!
//! Nothing large is reserved up front, so a program started under a small
//! RLIMIT_AS is still traced.
//!
//! Insertion claims an id and arena space with fetch_add, writes the entry,
//! publishes its offset, then CASes the slot. Two threads inserting the same
//! new stack at once may both claim an id; one wins the slot and the other id
//! is simply never used (ids stay unique, not necessarily gap-free).
//! Id 0 means "unknown" (table full): written as an empty, truncated stack.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

const LEVEL0_BITS: u32 = 15;
const NLEVELS: usize = 5; // 2^15 .. 2^23 slots
const MAX_IDS: u32 = 1 << 23;
const ARENA_CHUNK_BITS: u32 = 21; // 2^21 words = 16 MiB
const ARENA_CHUNKS: usize = 64; // 1 GiB of stacks at most
const OFF_CHUNK_BITS: u32 = 16;
const OFF_CHUNKS: usize = (MAX_IDS >> OFF_CHUNK_BITS) as usize;

#[allow(clippy::declare_interior_mutable_const)]
const NO_LEVEL: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
static LEVELS: [AtomicPtr<AtomicU64>; NLEVELS] = [NO_LEVEL; NLEVELS];
/// Stacks inserted per level (to know when to open the next one).
#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU32 = AtomicU32::new(0);
static FILL: [AtomicU32; NLEVELS] = [ZERO; NLEVELS];

fn level_slots(k: usize) -> usize {
    1 << (LEVEL0_BITS as usize + 2 * k)
}
#[allow(clippy::declare_interior_mutable_const)]
const NO_CHUNK: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static ARENA: [AtomicPtr<u8>; ARENA_CHUNKS] = [NO_CHUNK; ARENA_CHUNKS];
static OFFSETS: [AtomicPtr<u8>; OFF_CHUNKS] = [NO_CHUNK; OFF_CHUNKS];

/// Chunk `i` of `table`, mapped on first use (`bytes` long). Lock-free: the
/// loser of a race unmaps its own mapping.
fn chunk(table: &[AtomicPtr<u8>], i: usize, bytes: usize) -> Option<*mut u8> {
    let p = table.get(i)?.load(Ordering::Acquire);
    if !p.is_null() {
        return Some(p);
    }
    let m = crate::sys::mmap_anon(bytes)?;
    match table[i].compare_exchange(std::ptr::null_mut(), m, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(m),
        Err(other) => {
            // SAFETY: our own mapping, never published.
            unsafe { libc::munmap(m.cast(), bytes) };
            Some(other)
        }
    }
}

/// The offset slot of `id` (mapping its chunk if needed).
fn offset_slot(id: u32, create: bool) -> Option<&'static AtomicU64> {
    let c = (id >> OFF_CHUNK_BITS) as usize;
    let base = if create {
        chunk(&OFFSETS, c, 8 << OFF_CHUNK_BITS)?
    } else {
        let p = OFFSETS.get(c)?.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        p
    };
    // SAFETY: the chunk holds 2^OFF_CHUNK_BITS slots; mappings are never removed.
    Some(unsafe { &*(base as *const AtomicU64).add((id as usize) & ((1 << OFF_CHUNK_BITS) - 1)) })
}

/// Pointer to arena word `pos`, whose chunk must exist.
fn arena_word(pos: usize) -> Option<*mut u64> {
    let p = ARENA.get(pos >> ARENA_CHUNK_BITS)?.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: inside the chunk.
    Some(unsafe { (p as *mut u64).add(pos & ((1 << ARENA_CHUNK_BITS) - 1)) })
}
static NEXT_ID: AtomicU32 = AtomicU32::new(1);
static ARENA_POS: AtomicUsize = AtomicUsize::new(0);

pub fn init() -> bool {
    let t = crate::sys::mmap_anon(level_slots(0) * 8);
    let a = chunk(&ARENA, 0, 8 << ARENA_CHUNK_BITS);
    let o = chunk(&OFFSETS, 0, 8 << OFF_CHUNK_BITS);
    match (t, a, o) {
        (Some(t), Some(_), Some(_)) => {
            LEVELS[0].store(t.cast(), Ordering::Release);
            true
        }
        _ => false,
    }
}

/// Four independent multiply chains (frame i feeds lane i % 4), so the
/// CPU overlaps them: a deep stack costs a quarter of one serial chain's
/// latency. Only equality of frames decides a match; the hash just spreads.
#[inline]
fn hash(frames: &[usize], truncated: bool) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut l = [
        0x243f_6a88_85a3_08d3u64,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    ];
    let chunks = frames.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..4 {
            l[i] = (l[i] ^ c[i] as u64).wrapping_mul(K).rotate_left(27);
        }
    }
    for (i, &f) in rest.iter().enumerate() {
        l[i] = (l[i] ^ f as u64).wrapping_mul(K).rotate_left(27);
    }
    let mut h = l[0] ^ l[1].rotate_left(16) ^ l[2].rotate_left(32) ^ l[3].rotate_left(48);
    h ^= (frames.len() as u64) ^ ((truncated as u64) << 40);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Looks `frames` up in level `k`; returns the id or None at the first
/// empty slot.
fn lookup(
    table: *mut AtomicU64,
    k: usize,
    h: u64,
    tag: u32,
    frames: &[usize],
    truncated: bool,
) -> Option<u32> {
    let mask = level_slots(k) - 1;
    let mut i = h as usize & mask;
    loop {
        // SAFETY: i <= mask, inside level k's mapping.
        let v = unsafe { &*table.add(i) }.load(Ordering::Acquire);
        if v == 0 {
            return None;
        }
        if (v >> 32) as u32 == tag {
            if let Some(id) = entry_id_if(v as u32, frames, truncated) {
                return Some(id);
            }
        }
        i = (i + 1) & mask;
    }
}

/// The level new stacks go to: the last one opened, or a new one if that
/// is 3/4 full. None if all are full (or mmap failed).
fn insert_level() -> Option<usize> {
    for k in 0..NLEVELS {
        let t = LEVELS[k].load(Ordering::Acquire);
        if t.is_null() {
            let m = crate::sys::mmap_anon(level_slots(k) * 8)?;
            match LEVELS[k].compare_exchange(
                std::ptr::null_mut(),
                m.cast(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(k),
                Err(_) => {
                    // Another thread opened it first.
                    // SAFETY: our own, unpublished mapping.
                    unsafe { libc::munmap(m.cast(), level_slots(k) * 8) };
                    return Some(k);
                }
            }
        }
        if (FILL[k].load(Ordering::Relaxed) as usize) < level_slots(k) / 4 * 3 {
            return Some(k);
        }
    }
    None
}

/// Returns the id of this stack, inserting it if new; 0 if the tables are
/// full (written as an empty, truncated stack).
pub fn intern(frames: &[usize], truncated: bool) -> u32 {
    let h = hash(frames, truncated);
    let tag = (h >> 32) as u32;
    for (k, level) in LEVELS.iter().enumerate() {
        let t = level.load(Ordering::Acquire);
        if t.is_null() {
            break;
        }
        if let Some(id) = lookup(t, k, h, tag, frames, truncated) {
            return id;
        }
    }
    let Some(k) = insert_level() else {
        return 0;
    };
    let table = LEVELS[k].load(Ordering::Acquire);
    let Some((new_id, pos)) = alloc_entry(frames, truncated) else {
        return 0;
    };
    let mask = level_slots(k) - 1;
    let mut i = h as usize & mask;
    loop {
        // SAFETY: i <= mask, inside level k's mapping.
        let slot = unsafe { &*table.add(i) };
        let mut v = slot.load(Ordering::Acquire);
        if v == 0 {
            let nv = (tag as u64) << 32 | (pos as u64 + 1);
            match slot.compare_exchange(0, nv, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    FILL[k].fetch_add(1, Ordering::Relaxed);
                    return new_id;
                }
                Err(cur) => v = cur,
            }
        }
        // Someone inserted the same stack meanwhile: use theirs (our id is
        // simply never used).
        if (v >> 32) as u32 == tag {
            if let Some(id) = entry_id_if(v as u32, frames, truncated) {
                return id;
            }
        }
        i = (i + 1) & mask;
    }
}

/// Claims an id and arena space for `frames` and writes the entry; its
/// offset is published for `get`, the slot is the caller's. (id, arena word
/// index), or None if the tables are full.
fn alloc_entry(frames: &[usize], truncated: bool) -> Option<(u32, usize)> {
    if NEXT_ID.load(Ordering::Relaxed) >= MAX_IDS {
        return None;
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if id >= MAX_IDS {
        return None;
    }
    let words = frames.len() + 2;
    let cw = 1usize << ARENA_CHUNK_BITS;
    // Claim words that do not straddle a chunk boundary (a straddling claim
    // is abandoned: at most 258 words lost per 16 MiB chunk).
    let pos = loop {
        let pos = ARENA_POS.fetch_add(words, Ordering::Relaxed);
        if (pos >> ARENA_CHUNK_BITS) >= ARENA_CHUNKS {
            return None;
        }
        if (pos & (cw - 1)) + words <= cw {
            break pos;
        }
    };
    chunk(&ARENA, pos >> ARENA_CHUNK_BITS, 8 << ARENA_CHUNK_BITS)?;
    let (e, slot) = (arena_word(pos)?, offset_slot(id, true)?);
    // SAFETY: [pos, pos+words) was claimed by us alone and lies inside one
    // mapped chunk.
    unsafe {
        *e = frames.len() as u64 | (truncated as u64) << 32;
        *e.add(1) = id as u64;
        for (k, &f) in frames.iter().enumerate() {
            *e.add(2 + k) = f as u64;
        }
    }
    slot.store(pos as u64 + 1, Ordering::Release);
    Some((id, pos))
}

/// The frames as u64s, to compare whole slices (one memcmp).
#[inline]
fn as_u64(frames: &[usize]) -> &[u64] {
    const _: () = assert!(std::mem::size_of::<usize>() == 8);
    // SAFETY: usize and u64 have the same size and alignment here (checked
    // above at compile time); the slice is only read.
    unsafe { std::slice::from_raw_parts(frames.as_ptr().cast(), frames.len()) }
}

/// The id of the arena entry a slot names (its word index + 1), if the
/// entry holds `frames`.
fn entry_id_if(slot: u32, frames: &[usize], truncated: bool) -> Option<u32> {
    let (f, t, id) = entry(slot as usize - 1)?;
    (t == truncated && f == as_u64(frames)).then_some(id)
}

/// The arena entry at word `pos`: its frames, whether it was truncated, its
/// id.
fn entry(pos: usize) -> Option<(&'static [u64], bool, u32)> {
    let e = arena_word(pos)?;
    // SAFETY: entries are published (offset, slot: Release) after they were
    // written, never modified afterwards, and lie in one chunk.
    unsafe {
        let len = (*e & 0xffff_ffff) as usize;
        let trunc = (*e >> 32) & 1 == 1;
        Some((
            std::slice::from_raw_parts(e.add(2), len),
            trunc,
            *e.add(1) as u32,
        ))
    }
}

/// The frames of stack `id` and whether it was truncated.
pub fn get(id: u32) -> Option<(&'static [u64], bool)> {
    if id == 0 || id >= MAX_IDS {
        return None;
    }
    let off = offset_slot(id, false)?.load(Ordering::Acquire);
    if off == 0 {
        return None;
    }
    let (f, t, _) = entry(off as usize - 1)?;
    Some((f, t))
}
