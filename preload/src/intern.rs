//! Stack interning: identical stacks get one id, shared by all threads.
//!
//! A global, insert-only, lock-free open-addressing hash table whose memory
//! comes from mmap (never malloc, so it works inside the malloc hook):
//! - `LEVELS`: slot arrays of `tag << 32 | id` (0 = empty), tag = high hash
//!   bits. Level 0 has 2^15 slots; when a level is 3/4 full the next one,
//!   4× larger, is mapped and new stacks go there; lookups try every level
//!   in order. Small programs thus touch 256 KiB, not a 32 MiB table whose
//!   pages a hash would spread every stack over. Two threads inserting the
//!   same new stack just as a level fills may get two ids for it: harmless
//!   (the analyzer merges by frames), and rare;
//! - `ARENA`: append-only words, one entry per id: `[len | truncated << 32,
//!   hash, frames...]`;
//! - `OFFSETS`: id → arena word index + 1, so the writer can read a stack.
//! Insertion claims an id and arena space with fetch_add, writes the entry,
//! publishes its offset, then CASes the slot. Two threads inserting the same
//! new stack at once may both claim an id; one wins the slot and the other id
//! is simply never used (ids stay unique, not necessarily gap-free).
//! Id 0 means "unknown" (table full): written as an empty, truncated stack.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

const LEVEL0_BITS: u32 = 15;
const NLEVELS: usize = 5; // 2^15 .. 2^23 slots
const MAX_IDS: u32 = 1 << 23;
const ARENA_WORDS: usize = 1 << 27; // 1 GiB reserved, touched as used

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
static ARENA: AtomicPtr<u64> = AtomicPtr::new(std::ptr::null_mut());
static OFFSETS: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
static NEXT_ID: AtomicU32 = AtomicU32::new(1);
static ARENA_POS: AtomicUsize = AtomicUsize::new(0);

pub fn init() -> bool {
    let t = crate::sys::mmap_anon(level_slots(0) * 8);
    let a = crate::sys::mmap_anon(ARENA_WORDS * 8);
    let o = crate::sys::mmap_anon(MAX_IDS as usize * 8 + 8);
    match (t, a, o) {
        (Some(t), Some(a), Some(o)) => {
            LEVELS[0].store(t.cast(), Ordering::Release);
            ARENA.store(a.cast(), Ordering::Release);
            OFFSETS.store(o.cast(), Ordering::Release);
            true
        }
        _ => false,
    }
}

#[inline]
fn hash(frames: &[usize], truncated: bool) -> u64 {
    let mut h: u64 = 0x243f_6a88_85a3_08d3 ^ (frames.len() as u64) ^ ((truncated as u64) << 40);
    for &f in frames {
        h = (h ^ f as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(27);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// Looks `frames` up in level `k`; returns the id or None at the first
/// empty slot.
fn lookup(table: *mut AtomicU64, k: usize, h: u64, tag: u32, frames: &[usize], truncated: bool) -> Option<u32> {
    let mask = level_slots(k) - 1;
    let mut i = h as usize & mask;
    loop {
        // SAFETY: i <= mask, inside level k's mapping.
        let v = unsafe { &*table.add(i) }.load(Ordering::Acquire);
        if v == 0 {
            return None;
        }
        if (v >> 32) as u32 == tag && matches(v as u32, frames, truncated) {
            return Some(v as u32);
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
            let Some(m) = crate::sys::mmap_anon(level_slots(k) * 8) else {
                return None;
            };
            match LEVELS[k].compare_exchange(std::ptr::null_mut(), m.cast(), Ordering::AcqRel, Ordering::Acquire) {
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
    for k in 0..NLEVELS {
        let t = LEVELS[k].load(Ordering::Acquire);
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
    let new_id = alloc_entry(frames, truncated, h);
    if new_id == 0 {
        return 0;
    }
    let mask = level_slots(k) - 1;
    let mut i = h as usize & mask;
    loop {
        // SAFETY: i <= mask, inside level k's mapping.
        let slot = unsafe { &*table.add(i) };
        let mut v = slot.load(Ordering::Acquire);
        if v == 0 {
            let nv = (tag as u64) << 32 | new_id as u64;
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
        if (v >> 32) as u32 == tag && matches(v as u32, frames, truncated) {
            return v as u32;
        }
        i = (i + 1) & mask;
    }
}

fn alloc_entry(frames: &[usize], truncated: bool, h: u64) -> u32 {
    if NEXT_ID.load(Ordering::Relaxed) >= MAX_IDS {
        return 0;
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if id >= MAX_IDS {
        return 0;
    }
    let words = frames.len() + 2;
    let pos = ARENA_POS.fetch_add(words, Ordering::Relaxed);
    if pos + words > ARENA_WORDS {
        return 0;
    }
    let arena = ARENA.load(Ordering::Relaxed);
    // SAFETY: [pos, pos+words) was claimed by us alone and lies inside the
    // arena mapping; id < MAX_IDS lies inside OFFSETS.
    unsafe {
        let e = arena.add(pos);
        *e = frames.len() as u64 | (truncated as u64) << 32;
        *e.add(1) = h;
        for (k, &f) in frames.iter().enumerate() {
            *e.add(2 + k) = f as u64;
        }
        (*OFFSETS.load(Ordering::Relaxed).add(id as usize)).store(pos as u64 + 1, Ordering::Release);
    }
    id
}

fn matches(id: u32, frames: &[usize], truncated: bool) -> bool {
    match get(id) {
        Some((f, t)) => t == truncated && f.len() == frames.len() && f.iter().zip(frames).all(|(a, &b)| *a == b as u64),
        None => false,
    }
}

/// The frames of stack `id` and whether it was truncated.
pub fn get(id: u32) -> Option<(&'static [u64], bool)> {
    if id == 0 || id >= MAX_IDS {
        return None;
    }
    let offs = OFFSETS.load(Ordering::Acquire);
    if offs.is_null() {
        return None;
    }
    // SAFETY: id < MAX_IDS; the offset was published with Release after the
    // entry was written, and entries are never modified afterwards.
    unsafe {
        let off = (*offs.add(id as usize)).load(Ordering::Acquire);
        if off == 0 {
            return None;
        }
        let e = ARENA.load(Ordering::Relaxed).add(off as usize - 1);
        let len = (*e & 0xffff_ffff) as usize;
        let trunc = (*e >> 32) & 1 == 1;
        Some((std::slice::from_raw_parts(e.add(2), len), trunc))
    }
}
