//! Totals per stack since the start: allocations, frees, and temporary
//! allocations — freed while still the most recent allocation of the thread
//! that made it (heaptrack's definition, kept per thread: a temporary
//! buffer on one thread is not spoiled by another thread allocating).
//!
//! Each thread's most recent allocation is one key, in an array indexed by
//! the writer's number for the thread's ring; a free knows the thread that
//! allocated its block, so its check is one load. Totals are an array
//! indexed by stack id: no hashing per event.

use super::{Allocated, Freed};
use memtrace_format::StackTotals;

/// Per stack id (stack ids are dense, intern.rs): the totals and whether
/// the stack allocated at all.
#[derive(Default)]
pub struct TotalsTracker {
    per_stack: Vec<StackTotals>,
    /// Per thread (the writer's number for its ring, dense): the key of its
    /// most recent allocation while that block is live, else 0.
    latest_of_thread: Vec<u64>,
}

/// `v[i]`, growing `v` to hold it. Stack ids and ring numbers are dense, so
/// the vectors stay as long as the number of stacks and rings.
#[inline]
fn slot<T: Default>(v: &mut Vec<T>, i: usize) -> &mut T {
    if i >= v.len() {
        grow(v, i);
    }
    &mut v[i]
}

#[cold]
fn grow<T: Default>(v: &mut Vec<T>, i: usize) {
    let n = (i + 1).max(2 * v.len()).max(64);
    v.resize_with(n, T::default);
}

impl TotalsTracker {
    #[inline]
    pub fn allocated(&mut self, a: Allocated) {
        let t = slot(&mut self.per_stack, a.stack as usize);
        t.allocs += 1;
        t.alloc_bytes += a.size;
        *slot(&mut self.latest_of_thread, a.thread as usize) = a.key;
    }

    #[inline]
    pub fn freed(&mut self, f: Freed) {
        let latest = slot(&mut self.latest_of_thread, f.thread as usize);
        let temporary = *latest == f.alloc_key;
        if temporary {
            *latest = 0;
        }
        let t = slot(&mut self.per_stack, f.stack as usize);
        t.frees += 1;
        t.freed_bytes += f.size;
        if temporary {
            t.temporary += 1;
            t.temporary_bytes += f.size;
        }
    }

    /// One stack's totals (the history's changed stacks).
    pub fn of(&self, stack: u32) -> StackTotals {
        let t = self
            .per_stack
            .get(stack as usize)
            .cloned()
            .unwrap_or_default();
        StackTotals {
            stack: stack as u64,
            ..t
        }
    }

    /// Every stack that allocated, sorted by stack id.
    pub fn totals(&self) -> Vec<StackTotals> {
        let with_id = |(id, t): (usize, &StackTotals)| StackTotals {
            stack: id as u64,
            ..t.clone()
        };
        self.per_stack
            .iter()
            .enumerate()
            .filter(|(_, t)| t.allocs > 0)
            .map(with_id)
            .collect()
    }

    /// The thread of ring `thread` is gone; `last_key` is the highest key it
    /// published, and every event up to it has been applied. Its latest
    /// allocation is no longer anyone's "most recent" (unless the ring's
    /// next thread has allocated since: its keys are higher).
    pub fn thread_gone(&mut self, thread: u32, last_key: u64) {
        if let Some(latest) = self.latest_of_thread.get_mut(thread as usize) {
            if *latest <= last_key {
                *latest = 0;
            }
        }
    }

    /// Threads with a live most recent allocation.
    pub fn threads(&self) -> usize {
        self.latest_of_thread.iter().filter(|&&k| k != 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(t: &mut TotalsTracker, key: u64, stack: u32, size: u64, thread: u32) {
        t.allocated(Allocated {
            key,
            stack,
            size,
            thread,
        });
    }
    fn free(t: &mut TotalsTracker, key: u64, alloc_key: u64, stack: u32, size: u64, thread: u32) {
        t.freed(Freed {
            key,
            alloc_key,
            stack,
            size,
            thread,
        });
    }
    fn row(t: &TotalsTracker, stack: u32) -> (u64, u64, u64, u64, u64, u64) {
        let s = t
            .totals()
            .into_iter()
            .find(|s| s.stack == stack as u64)
            .unwrap();
        (
            s.allocs,
            s.alloc_bytes,
            s.frees,
            s.freed_bytes,
            s.temporary,
            s.temporary_bytes,
        )
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
        assert_eq!(t.threads(), 0);
    }

    #[test]
    fn maps_stay_one_entry_per_thread() {
        let mut t = TotalsTracker::default();
        for k in 0..1000u64 {
            alloc(&mut t, 2 * k + 1, 1, 8, (k % 4) as u32);
        }
        assert_eq!(t.threads(), 4);
        t.thread_gone(2, 2000);
        assert_eq!(t.threads(), 3);
        t.thread_gone(3, 1); // its ring's next thread allocated since (key 1999)
        assert_eq!(t.threads(), 3);
    }
}
