//! Stack interning: identical stacks get one id, shared by all threads.
//!
//! A global, insert-only, lock-free open-addressing hash table whose memory
//! comes from mmap (never malloc, so it works inside the malloc hook):
//! - `TABLE`: slots of `tag << 32 | id` (0 = empty), tag = high hash bits;
//! - `ARENA`: append-only words, one entry per id: `[len | truncated << 32,
//!   hash, frames...]`;
//! - `OFFSETS`: id → arena word index + 1, so the writer can read a stack.
//! Insertion claims an id and arena space with fetch_add, writes the entry,
//! publishes its offset, then CASes the slot. Two threads inserting the same
//! new stack at once may both claim an id; one wins the slot and the other id
//! is simply never used (ids stay unique, not necessarily gap-free).
//! Id 0 means "unknown" (table full): written as an empty, truncated stack.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

const SLOTS: usize = 1 << 22;
const MAX_IDS: u32 = (SLOTS as u32 / 4) * 3;
const ARENA_WORDS: usize = 1 << 27; // 1 GiB reserved, touched as used

static TABLE: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
static ARENA: AtomicPtr<u64> = AtomicPtr::new(std::ptr::null_mut());
static OFFSETS: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
static NEXT_ID: AtomicU32 = AtomicU32::new(1);
static ARENA_POS: AtomicUsize = AtomicUsize::new(0);

pub fn init() -> bool {
    let t = crate::sys::mmap_anon(SLOTS * 8);
    let a = crate::sys::mmap_anon(ARENA_WORDS * 8);
    let o = crate::sys::mmap_anon(MAX_IDS as usize * 8 + 8);
    match (t, a, o) {
        (Some(t), Some(a), Some(o)) => {
            TABLE.store(t.cast(), Ordering::Release);
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

/// # Safety-relevant invariant
/// Only called after `init()` succeeded (the hooks record only when Ready).
pub fn intern(frames: &[usize], truncated: bool) -> u32 {
    let table = TABLE.load(Ordering::Relaxed);
    if table.is_null() {
        return 0;
    }
    let h = hash(frames, truncated);
    let tag = (h >> 32) as u32;
    let mask = SLOTS - 1;
    let mut i = h as usize & mask;
    let mut new_id = 0u32;
    for _ in 0..SLOTS {
        // SAFETY: i < SLOTS, the table mapping holds SLOTS slots.
        let slot = unsafe { &*table.add(i) };
        let mut v = slot.load(Ordering::Acquire);
        if v == 0 {
            if new_id == 0 {
                new_id = alloc_entry(frames, truncated, h);
                if new_id == 0 {
                    return 0;
                }
            }
            let nv = (tag as u64) << 32 | new_id as u64;
            match slot.compare_exchange(0, nv, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return new_id,
                Err(cur) => v = cur,
            }
        }
        if (v >> 32) as u32 == tag && matches(v as u32, frames, truncated) {
            return v as u32;
        }
        i = (i + 1) & mask;
    }
    0
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
