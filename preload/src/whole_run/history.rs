//! What changed since the history's previous point (`writer/history.rs`):
//! per live group (stack, size) the change of its count, and which stacks'
//! totals moved. Bounded by the groups touched between two points, not by
//! the events; nothing at all is kept while the history is off.

use super::{Allocated, Freed};

#[derive(Default)]
pub struct HistoryChanges {
    /// Follow the events (MEMTRACE_HISTORY is on and writing works).
    pub on: bool,
    /// No memory for a change: the history cannot be exact any more.
    pub lost: bool,
    /// (stack, size) → change of count since the last point; 0 entries stay
    /// until the point (their stack's totals changed).
    groups: std::collections::HashMap<(u32, u64), i64, crate::sys::BuildMix>,
}

impl HistoryChanges {
    #[inline]
    pub fn allocated(&mut self, a: &Allocated) {
        if self.on && self.room() {
            *self.groups.entry((a.stack, a.size)).or_insert(0) += 1;
        }
    }

    #[inline]
    pub fn freed(&mut self, f: &Freed) {
        if self.on && self.room() {
            *self.groups.entry((f.stack, f.size)).or_insert(0) -= 1;
        }
    }

    /// Room for one more group, else the history stops (`lost`) rather
    /// than the allocation failure aborting the program.
    #[inline]
    fn room(&mut self) -> bool {
        if self.groups.try_reserve(1).is_err() {
            self.on = false;
            self.lost = true;
            self.groups = Default::default();
            return false;
        }
        true
    }

    /// The changes since the last call, sorted by (stack, size); the map is
    /// emptied (and shrunk when a burst made it large).
    pub fn take(&mut self) -> Vec<((u32, u64), i64)> {
        let mut v: Vec<((u32, u64), i64)> = self.groups.drain().collect();
        if self.groups.capacity() > 4096 {
            self.groups.shrink_to(1024);
        }
        v.sort_unstable_by_key(|&(k, _)| k);
        v
    }

    /// Something changed since the last `take`.
    pub fn is_dirty(&self) -> bool {
        !self.groups.is_empty()
    }

    pub fn clear(&mut self) {
        self.groups.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nets_out_and_lists_touched_stacks() {
        let mut h = HistoryChanges {
            on: true,
            ..Default::default()
        };
        let a = Allocated {
            key: 1,
            stack: 3,
            size: 8,
            thread: 0,
        };
        h.allocated(&a);
        h.allocated(&a);
        h.freed(&Freed {
            key: 4,
            alloc_key: 1,
            stack: 3,
            size: 8,
            thread: 0,
        });
        h.allocated(&Allocated { stack: 1, ..a });
        h.freed(&Freed {
            key: 6,
            alloc_key: 5,
            stack: 1,
            size: 8,
            thread: 0,
        });
        assert_eq!(h.take(), vec![((1, 8), 0), ((3, 8), 1)]);
        assert!(h.take().is_empty());
    }
}
