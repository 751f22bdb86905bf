//! The exact peak: the live groups (stack, size) × count at the moment
//! traced bytes reached their highest value.
//!
//! Copying every group at each new maximum (heapprofd's way) costs O(groups)
//! per new peak, and a growing program reaches a new peak at every
//! allocation. Instead each group keeps its count now and its count at the
//! last peak, and the groups changed since that peak are listed: a new peak
//! copies only those. Each event adds at most one entry to the list, so the
//! copying is O(1) amortized per event; memory is bounded by the groups live
//! now or at the peak.
//!
//! For the history file (`writer/history.rs`) the peak is written the same
//! way: each group also keeps its count at the peak as last written, and the
//! groups whose peak count moved since are listed, so a point carries only
//! the peak's changes since the previous point (`take_history`). Off (and
//! costing nothing) unless the history is on.

use super::{Allocated, Freed};
use memtrace_format::history::PeakChange;
use memtrace_format::{Peak, TraceGroup};
use std::collections::HashMap;

type GroupKey = (u32, u64);

#[derive(Clone, Copy, Default)]
struct GroupCounts {
    now: u64,
    at_peak: u64,
    /// Listed in `changed_since_peak`.
    listed: bool,
    /// `at_peak` as the history file last recorded it.
    at_written: u64,
    /// Listed in `changed_since_written`.
    written_listed: bool,
}

#[derive(Default)]
pub struct PeakTracker {
    groups: HashMap<GroupKey, GroupCounts, crate::sys::BuildMix>,
    changed_since_peak: Vec<GroupKey>,
    traced: u64,
    peak: Peak,
    /// `groups.len()` after the last `compact`: compacting again once it has
    /// doubled keeps the map bounded at O(1) amortized per event.
    compacted_at: usize,
    /// Follow the peak's changes for the history file.
    history: bool,
    /// Groups whose `at_peak` moved since the history's last point.
    changed_since_written: Vec<GroupKey>,
    /// The peak's event as the history last recorded it.
    written_event: u64,
}

impl PeakTracker {
    #[inline]
    pub fn allocated(&mut self, a: Allocated, now_ns: impl Fn() -> u64) {
        self.change((a.stack, a.size), true);
        self.traced += a.size;
        if self.traced > self.peak.traced_bytes {
            self.capture(a.key, now_ns());
        }
    }

    #[inline]
    pub fn freed(&mut self, f: Freed) {
        self.change((f.stack, f.size), false);
        self.traced = self.traced.saturating_sub(f.size);
    }

    fn change(&mut self, key: GroupKey, up: bool) {
        if up
            && self.groups.len() >= 2 * self.compacted_at.max(1024)
            && !self.groups.contains_key(&key)
        {
            self.compact();
        }
        let g = self.groups.entry(key).or_default();
        if up {
            g.now += 1;
        } else {
            g.now = g.now.saturating_sub(1);
        }
        if !g.listed {
            g.listed = true;
            self.changed_since_peak.push(key);
        }
    }

    /// Traced bytes are at a new high: the groups changed since the last
    /// peak take their current counts; the others have not moved.
    fn capture(&mut self, event: u64, time_ns: u64) {
        for key in self.changed_since_peak.drain(..) {
            if let Some(g) = self.groups.get_mut(&key) {
                if self.history && !g.written_listed && g.at_peak != g.now {
                    g.written_listed = true;
                    self.changed_since_written.push(key);
                }
                g.at_peak = g.now;
                g.listed = false;
                // A group the history still has to write as gone stays.
                if g.now == 0 && !g.written_listed {
                    self.groups.remove(&key);
                }
            }
        }
        self.peak.traced_bytes = self.traced;
        self.peak.event = event;
        self.peak.time_ns = time_ns;
    }

    /// Traced bytes now (after the events applied so far).
    pub fn traced(&self) -> u64 {
        self.traced
    }

    /// The peak so far, its groups sorted by (stack, size); None before
    /// any allocation.
    pub fn peak(&self) -> Option<Peak> {
        if self.peak.traced_bytes == 0 {
            return None;
        }
        let mut groups: Vec<TraceGroup> = self
            .groups
            .iter()
            .filter(|(_, g)| g.at_peak > 0)
            .map(|(&(stack, size), g)| TraceGroup {
                stack: stack as u64,
                size,
                count: g.at_peak,
            })
            .collect();
        groups.sort_unstable_by_key(|g| (g.stack, g.size));
        Some(Peak {
            groups,
            ..self.peak.clone()
        })
    }

    /// Drops groups that are empty now and were empty at the peak (made
    /// and emptied since the last peak), and their places in the list of
    /// changed groups (a group made again is listed again). Called by
    /// `change` when the map has doubled since the last time.
    pub fn compact(&mut self) {
        self.groups
            .retain(|_, g| g.now > 0 || g.at_peak > 0 || g.written_listed);
        let groups = &self.groups;
        self.changed_since_peak.retain(|k| groups.contains_key(k));
        self.compacted_at = self.groups.len();
    }

    /// Groups held (live now, at the peak, or changed since).
    pub fn groups_held(&self) -> usize {
        self.groups.len()
    }

    /// Follow the peak's changes for the history file (`on`), or stop and
    /// forget them. Turned on before any event, or with `whole` next.
    pub fn set_history(&mut self, on: bool) {
        self.history = on;
        if !on {
            for key in self.changed_since_written.drain(..) {
                if let Some(g) = self.groups.get_mut(&key) {
                    g.written_listed = false;
                }
            }
            self.compact();
        }
    }

    /// The peak's changes since the last call (`None`: the peak has not
    /// moved); what they give is then the peak as written.
    pub fn take_history(&mut self) -> Option<PeakChange> {
        if self.peak.event == self.written_event || self.peak.traced_bytes == 0 {
            return None;
        }
        let mut groups = Vec::with_capacity(self.changed_since_written.len());
        for key in self.changed_since_written.drain(..) {
            if let Some(g) = self.groups.get_mut(&key) {
                let delta = g.at_peak as i64 - g.at_written as i64;
                if delta != 0 {
                    groups.push((key.0 as u64, key.1, delta));
                }
                g.at_written = g.at_peak;
                g.written_listed = false;
                if g.now == 0 && g.at_peak == 0 && !g.listed {
                    self.groups.remove(&key);
                }
            }
        }
        groups.sort_unstable();
        Some(self.written(groups))
    }

    /// The whole peak as changes from nothing (a fork child's first point:
    /// its file starts empty); what they give is then the peak as written.
    pub fn whole_history(&mut self) -> Option<PeakChange> {
        for key in self.changed_since_written.drain(..) {
            if let Some(g) = self.groups.get_mut(&key) {
                g.written_listed = false;
            }
        }
        let mut groups = Vec::new();
        for (&(stack, size), g) in self.groups.iter_mut() {
            g.at_written = g.at_peak;
            if g.at_peak > 0 {
                groups.push((stack as u64, size, g.at_peak as i64));
            }
        }
        self.compact();
        if self.peak.traced_bytes == 0 {
            return None;
        }
        groups.sort_unstable();
        Some(self.written(groups))
    }

    fn written(&mut self, groups: Vec<(u64, u64, i64)>) -> PeakChange {
        self.written_event = self.peak.event;
        PeakChange {
            traced_bytes: self.peak.traced_bytes,
            event: self.peak.event,
            time_ns: self.peak.time_ns,
            groups,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(t: &mut PeakTracker, key: u64, stack: u32, size: u64) {
        t.allocated(
            Allocated {
                key,
                stack,
                size,
                thread: 0,
            },
            || key * 10,
        );
    }
    fn free(t: &mut PeakTracker, key: u64, stack: u32, size: u64) {
        t.freed(Freed {
            key,
            alloc_key: 0,
            stack,
            size,
            thread: 0,
        });
    }
    fn groups(t: &PeakTracker) -> Vec<(u64, u64, u64)> {
        t.peak()
            .unwrap()
            .groups
            .iter()
            .map(|g| (g.stack, g.size, g.count))
            .collect()
    }

    #[test]
    fn peak_holds_what_was_live_then_not_later() {
        let mut t = PeakTracker::default();
        alloc(&mut t, 1, 1, 100);
        alloc(&mut t, 3, 2, 50);
        alloc(&mut t, 5, 1, 100); // 250: the peak
        free(&mut t, 6, 1, 100);
        alloc(&mut t, 7, 3, 60); // 210
        free(&mut t, 8, 2, 50);
        let p = t.peak().unwrap();
        assert_eq!((p.traced_bytes, p.event, p.time_ns), (250, 5, 50));
        assert_eq!(groups(&t), [(1, 100, 2), (2, 50, 1)]);
        assert_eq!(t.traced(), 160);
    }

    #[test]
    fn a_later_higher_peak_replaces_it() {
        let mut t = PeakTracker::default();
        alloc(&mut t, 1, 1, 100);
        free(&mut t, 2, 1, 100);
        alloc(&mut t, 3, 2, 70);
        alloc(&mut t, 5, 2, 70); // 140 > 100
        assert_eq!(groups(&t), [(2, 70, 2)]);
        assert_eq!(t.peak().unwrap().event, 5);
    }

    #[test]
    fn equal_is_not_a_new_peak() {
        let mut t = PeakTracker::default();
        alloc(&mut t, 1, 1, 100);
        free(&mut t, 2, 1, 100);
        alloc(&mut t, 3, 2, 100);
        assert_eq!(groups(&t), [(1, 100, 1)]);
        assert_eq!(t.peak().unwrap().event, 1);
    }

    #[test]
    fn growing_forever_stays_bounded_by_groups() {
        let mut t = PeakTracker::default();
        for k in 0..100_000u64 {
            alloc(&mut t, 2 * k + 1, (k % 7) as u32, 16);
        }
        assert_eq!(t.peak().unwrap().traced_bytes, 1_600_000);
        assert_eq!(t.groups.len(), 7);
        assert!(t.changed_since_peak.is_empty());
    }

    #[test]
    fn emptied_groups_are_dropped() {
        let mut t = PeakTracker::default();
        alloc(&mut t, 1, 1, 10);
        alloc(&mut t, 3, 1, 1000); // peak
        free(&mut t, 4, 1, 10);
        free(&mut t, 5, 1, 1000);
        for k in 0..10 {
            alloc(&mut t, 7 + 2 * k, 9, 1);
            free(&mut t, 8 + 2 * k, 9, 1);
        }
        t.compact();
        assert_eq!(groups(&t), [(1, 10, 1), (1, 1000, 1)]);
        assert!(t.groups.len() <= 3, "{}", t.groups.len());
    }

    /// Applies the history's peak changes to `written` as a reader would.
    fn replay(written: &mut std::collections::BTreeMap<(u64, u64), i64>, c: &PeakChange) {
        for &(stack, size, d) in &c.groups {
            let e = written.entry((stack, size)).or_insert(0);
            *e += d;
            assert!(*e >= 0);
            if *e == 0 {
                written.remove(&(stack, size));
            }
        }
        let bytes: i64 = written.iter().map(|(&(_, z), &n)| z as i64 * n).sum();
        assert_eq!(bytes as u64, c.traced_bytes);
    }

    #[test]
    fn history_gets_the_peak_as_changes() {
        let mut t = PeakTracker::default();
        t.set_history(true);
        let mut w = Default::default();
        assert!(t.take_history().is_none());
        alloc(&mut t, 1, 1, 100);
        alloc(&mut t, 3, 2, 50); // 150
        let c = t.take_history().unwrap();
        assert_eq!(c.groups, [(1, 100, 1), (2, 50, 1)]);
        replay(&mut w, &c);
        // Below the peak: nothing to write.
        free(&mut t, 4, 2, 50);
        alloc(&mut t, 5, 3, 10);
        assert!(t.take_history().is_none());
        // A new peak made of other groups: only what moved is written,
        // including the group gone from the peak.
        alloc(&mut t, 7, 3, 10);
        alloc(&mut t, 9, 3, 10);
        alloc(&mut t, 11, 3, 10);
        alloc(&mut t, 13, 3, 10);
        alloc(&mut t, 15, 3, 10); // 160
        let c = t.take_history().unwrap();
        assert_eq!(c.groups, [(2, 50, -1), (3, 10, 6)]);
        assert_eq!((c.traced_bytes, c.event), (160, 15));
        replay(&mut w, &c);
        assert_eq!(
            w.into_iter().collect::<Vec<_>>(),
            [((1, 100), 1), ((3, 10), 6)]
        );
        assert!(t.take_history().is_none());
        // The group gone everywhere is dropped once written.
        t.compact();
        assert_eq!(t.groups_held(), 2);
    }

    #[test]
    fn whole_history_is_the_peak_from_nothing() {
        let mut t = PeakTracker::default();
        t.set_history(true);
        alloc(&mut t, 1, 1, 100);
        alloc(&mut t, 3, 2, 50);
        free(&mut t, 4, 1, 100);
        let c = t.whole_history().unwrap();
        assert_eq!(c.groups, [(1, 100, 1), (2, 50, 1)]);
        assert!(t.take_history().is_none());
        alloc(&mut t, 5, 2, 50);
        alloc(&mut t, 7, 2, 50); // 150 = the old peak: not a new one
        assert!(t.take_history().is_none());
        alloc(&mut t, 9, 2, 50);
        assert_eq!(t.take_history().unwrap().groups, [(1, 100, -1), (2, 50, 3)]);
    }

    #[test]
    fn history_off_keeps_nothing_for_it() {
        let mut t = PeakTracker::default();
        for k in 0..1000u64 {
            alloc(&mut t, 4 * k + 1, k as u32, 16);
            free(&mut t, 4 * k + 2, k as u32, 16);
        }
        t.compact();
        assert_eq!(t.groups_held(), 1);
        assert!(t.changed_since_written.is_empty());
    }
}
