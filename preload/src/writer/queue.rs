//! Drained events waiting to be applied, one queue per ring (by the ring's
//! number, `Event::thread`). A ring's keys never decrease (seq.rs: each
//! thread takes its keys in program order and publishes in that order), so
//! every queue is sorted, and the events below a cut come out in key order
//! by merging the queues' heads: no sort. With many rings holding events
//! the merge's scan of the heads would cost more than a sort, so then the
//! events below the cut are gathered and sorted (stable: the queues are
//! runs, which the sort merges).
//!
//! Plain data: no rings, no globals (unit tests below).

use crate::ring::Event;
use std::collections::{TryReserveError, VecDeque};

/// Above this many queues with events below the cut, sort instead of
/// scanning the heads for each event.
const MERGE_AT_MOST: usize = 16;

/// An emptied queue holding room for more events than this gives it back
/// (a backlog while a thread was preempted inside a hook is not kept).
const SHRINK_ABOVE: usize = 1 << 16;

#[derive(Default)]
pub struct Deferred {
    queues: Vec<VecDeque<Event>>,
    len: usize,
    /// Scratch: queues with events below the cut being merged.
    active: Vec<usize>,
    /// Scratch: the events below the cut, when there are too many queues
    /// to merge.
    sorted: Vec<Event>,
}

impl Deferred {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room for the first rings' queues (the writer's first allocation,
    /// writer_main).
    pub fn prepare(&mut self) -> Result<(), TryReserveError> {
        self.queues.try_reserve(8)?;
        self.active.try_reserve(8)
    }

    /// Queues `e` behind the events of its ring; fails without aborting
    /// when there is no memory.
    #[inline]
    pub fn push(&mut self, e: Event) -> Result<(), TryReserveError> {
        let i = e.thread as usize;
        if i >= self.queues.len() {
            self.queues.try_reserve(i + 1 - self.queues.len())?;
            self.queues.resize_with(i + 1, VecDeque::new);
        }
        let q = &mut self.queues[i];
        if q.len() == q.capacity() {
            q.try_reserve(q.capacity().max(1024))?;
        }
        debug_assert!(
            q.back().is_none_or(|b| b.seq <= e.seq),
            "a ring's keys never decrease"
        );
        q.push_back(e);
        self.len += 1;
        Ok(())
    }

    /// How many events have a key below `s` (the tests' check).
    #[cfg(test)]
    pub fn count_below(&self, s: u64) -> usize {
        self.queues
            .iter()
            .map(|q| q.partition_point(|e| e.seq < s))
            .sum()
    }

    /// Calls `f` with every event with a key below `s`, in key order, and
    /// drops them from the queues. Returns how many there were.
    pub fn take_below(
        &mut self,
        s: u64,
        mut f: impl FnMut(&Event),
    ) -> Result<usize, TryReserveError> {
        let queues = &mut self.queues;
        self.active.clear();
        let mut n = 0;
        for (i, q) in queues.iter().enumerate() {
            if q.front().is_some_and(|e| e.seq < s) {
                self.active.try_reserve(1)?;
                self.active.push(i);
                n += q.partition_point(|e| e.seq < s);
            }
        }
        self.len -= n;
        if self.active.len() > MERGE_AT_MOST {
            let sorted = &mut self.sorted;
            sorted.clear();
            sorted.try_reserve(n)?;
            for &i in &self.active {
                let k = queues[i].partition_point(|e| e.seq < s);
                sorted.extend(queues[i].drain(..k));
            }
            sorted.sort_by_key(|e| e.seq);
            sorted.iter().for_each(f);
            sorted.clear();
            return Ok(n);
        }
        let active = &mut self.active;
        while !active.is_empty() {
            // The queue with the lowest head, and the second lowest head:
            // the first queue's events below that go out in one run.
            let (mut best, mut lowest, mut second) = (0, u64::MAX, s);
            for (j, &i) in active.iter().enumerate() {
                let k = queues[i].front().map_or(u64::MAX, |e| e.seq);
                if k < lowest {
                    second = second.min(lowest);
                    lowest = k;
                    best = j;
                } else if k < second {
                    second = k;
                }
            }
            let q = &mut queues[active[best]];
            // Ties go to the first queue found: equal keys are frees of
            // different addresses (seq.rs), in either order.
            while let Some(e) = q.front().filter(|e| e.seq < second || e.seq == lowest) {
                f(e);
                q.pop_front();
            }
            if q.front().is_none_or(|e| e.seq >= s) {
                if q.is_empty() && q.capacity() > SHRINK_ABOVE {
                    q.shrink_to(1024);
                }
                active.swap_remove(best);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, thread: u32) -> Event {
        Event {
            seq,
            addr: seq * 16,
            size: 1,
            stack: 1,
            thread,
        }
    }

    fn merged(d: &mut Deferred, s: u64) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        let below = d.count_below(s);
        let n = d.take_below(s, |e| out.push((e.seq, e.thread))).unwrap();
        assert_eq!(n, below);
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn merges_rings_in_key_order_below_the_cut_only() {
        let mut d = Deferred::default();
        for (seq, t) in [
            (1, 1),
            (4, 1),
            (4, 1),
            (9, 1),
            (3, 2),
            (5, 2),
            (6, 2),
            (7, 3),
            (8, 3),
            (11, 3),
        ] {
            d.push(ev(seq, t)).unwrap();
        }
        assert_eq!(d.len(), 10);
        assert_eq!(
            merged(&mut d, 8),
            [(1, 1), (3, 2), (4, 1), (4, 1), (5, 2), (6, 2), (7, 3)]
        );
        assert_eq!(d.len(), 3);
        d.push(ev(13, 2)).unwrap();
        assert_eq!(merged(&mut d, 100), [(8, 3), (9, 1), (11, 3), (13, 2)]);
        assert!(d.is_empty());
        assert!(merged(&mut d, 100).is_empty());
    }

    #[test]
    fn many_rings_are_sorted_instead() {
        let mut d = Deferred::default();
        let mut want = Vec::new();
        for t in 1..=40u32 {
            for k in 0..5u64 {
                let seq = 2 * (k * 40 + t as u64) + 1;
                d.push(ev(seq, t)).unwrap();
                if seq < 301 {
                    want.push((seq, t));
                }
            }
        }
        want.sort();
        assert_eq!(merged(&mut d, 301), want);
        assert_eq!(d.len(), 200 - want.len());
    }
}
