//! Totals per stack since the start: allocations, frees, and temporary
//! allocations — freed while still the most recent allocation of the thread
//! that made it (heaptrack's definition, kept per thread: a temporary
//! buffer on one thread is not spoiled by another thread allocating).
//!
//! Each thread's most recent allocation is one key (a map with one entry per
//! thread); a free knows the thread that allocated its block, so its check
//! is one lookup.

use super::{Allocated, Freed};
use memtrace_format::StackTotals;
use std::collections::HashMap;

#[derive(Default)]
pub struct TotalsTracker {
    per_stack: HashMap<u32, StackTotals, crate::sys::BuildMix>,
    /// Thread (the writer's number for it) → the key of its most recent
    /// allocation, while that block is live.
    latest_of_thread: HashMap<u32, u64, crate::sys::BuildMix>,
}

impl TotalsTracker {
    #[inline]
    pub fn allocated(&mut self, a: Allocated) {
        let t = self.per_stack.entry(a.stack).or_insert_with(|| StackTotals { stack: a.stack as u64, ..Default::default() });
        t.allocs += 1;
        t.alloc_bytes += a.size;
        self.latest_of_thread.insert(a.thread, a.key);
    }

    #[inline]
    pub fn freed(&mut self, f: Freed) {
        let temporary = match self.latest_of_thread.entry(f.thread) {
            std::collections::hash_map::Entry::Occupied(o) if *o.get() == f.alloc_key => {
                o.remove();
                true
            }
            _ => false,
        };
        // A block allocated before tracing knew its stack still has an entry
        // (made by its allocation); `or_insert` only guards the invariant.
        let t = self.per_stack.entry(f.stack).or_insert_with(|| StackTotals { stack: f.stack as u64, ..Default::default() });
        t.frees += 1;
        t.freed_bytes += f.size;
        if temporary {
            t.temporary += 1;
            t.temporary_bytes += f.size;
        }
    }

    /// Every stack that allocated, sorted by stack id.
    pub fn totals(&self) -> Vec<StackTotals> {
        let mut v: Vec<StackTotals> = self.per_stack.values().cloned().collect();
        v.sort_unstable_by_key(|t| t.stack);
        v
    }

    /// A ring was handed to a new thread: its predecessor's latest
    /// allocation is no longer anyone's "most recent".
    pub fn thread_gone(&mut self, thread: u32) {
        self.latest_of_thread.remove(&thread);
    }

    /// Threads with a live most recent allocation.
    pub fn threads(&self) -> usize {
        self.latest_of_thread.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(t: &mut TotalsTracker, key: u64, stack: u32, size: u64, thread: u32) {
        t.allocated(Allocated { key, stack, size, thread });
    }
    fn free(t: &mut TotalsTracker, key: u64, alloc_key: u64, stack: u32, size: u64, thread: u32) {
        t.freed(Freed { key, alloc_key, stack, size, thread });
    }
    fn row(t: &TotalsTracker, stack: u32) -> (u64, u64, u64, u64, u64, u64) {
        let s = t.totals().into_iter().find(|s| s.stack == stack as u64).unwrap();
        (s.allocs, s.alloc_bytes, s.frees, s.freed_bytes, s.temporary, s.temporary_bytes)
    }

    #[test]
    fn alloc_then_free_is_temporary() {
        let mut t = TotalsTracker::default();
        alloc(&mut t, 1, 1, 10, 0);
        free(&mut t, 2, 1, 1, 10, 0);
        assert_eq!(row(&t, 1), (1, 10, 1, 10, 1, 10));
    }

    #[test]
    fn another_allocation_in_between_on_the_same_thread_is_not() {
        let mut t = TotalsTracker::default();
        alloc(&mut t, 1, 1, 10, 0);
        alloc(&mut t, 3, 2, 20, 0); // the helper's block: its caller's still lives
        free(&mut t, 4, 3, 2, 20, 0); // temporary
        free(&mut t, 6, 1, 1, 10, 0); // not: thread 0 allocated since
        assert_eq!(row(&t, 1), (1, 10, 1, 10, 0, 0));
        assert_eq!(row(&t, 2), (1, 20, 1, 20, 1, 20));
    }

    #[test]
    fn other_threads_do_not_spoil_it() {
        let mut t = TotalsTracker::default();
        alloc(&mut t, 1, 1, 10, 0);
        alloc(&mut t, 3, 2, 20, 1);
        free(&mut t, 4, 1, 1, 10, 0); // still thread 0's latest
        assert_eq!(row(&t, 1).4, 1);
        free(&mut t, 6, 3, 2, 20, 1); // thread 1's latest, freed elsewhere: per thread of the allocation
        assert_eq!(row(&t, 2).4, 1);
    }

    #[test]
    fn a_free_counts_once() {
        let mut t = TotalsTracker::default();
        alloc(&mut t, 1, 1, 10, 0);
        free(&mut t, 2, 1, 1, 10, 0);
        alloc(&mut t, 3, 1, 10, 0);
        free(&mut t, 4, 3, 1, 10, 0);
        free(&mut t, 6, 99, 1, 10, 0); // a block the thread allocated long ago
        assert_eq!(row(&t, 1), (2, 20, 3, 30, 2, 20));
        assert_eq!(t.latest_of_thread.len(), 0);
    }

    #[test]
    fn maps_stay_one_entry_per_thread() {
        let mut t = TotalsTracker::default();
        for k in 0..1000u64 {
            alloc(&mut t, 2 * k + 1, 1, 8, (k % 4) as u32);
        }
        assert_eq!(t.latest_of_thread.len(), 4);
        t.thread_gone(2);
        assert_eq!(t.threads(), 3);
    }
}
