//! Memory over time: a point (time, traced bytes, RSS) every interval,
//! at most `MAX_POINTS`; when full, every other point goes and the interval
//! doubles, so any run fits in bounded memory at a coarser resolution.

use memtrace_format::{SnapshotMark, TimePoint, Timeline, MAX_POINTS_IN_TIMELINE as MAX_POINTS};

/// The first interval: fine enough for a run of a few seconds.
pub const FIRST_INTERVAL_NS: u64 = 10_000_000;

#[derive(Default)]
pub struct TimelineRecorder {
    timeline: Timeline,
    next_ns: u64,
}

impl TimelineRecorder {
    /// Starts the series at `start_ns` (wall clock).
    pub fn start(&mut self, start_ns: u64) {
        self.timeline = Timeline {
            start_ns,
            interval_ns: FIRST_INTERVAL_NS,
            ..Default::default()
        };
        self.next_ns = start_ns;
    }

    /// True when a point is due at `now_ns` (cheap: the caller then reads RSS).
    #[inline]
    pub fn due(&self, now_ns: u64) -> bool {
        now_ns >= self.next_ns
    }

    /// Records a point; call when `due`.
    pub fn record(&mut self, now_ns: u64, traced_bytes: u64, rss_bytes: u64) {
        if self.timeline.points.len() >= MAX_POINTS {
            self.halve();
        }
        self.timeline.points.push(TimePoint {
            time_ns: now_ns,
            traced_bytes,
            rss_bytes,
        });
        self.next_ns = now_ns + self.timeline.interval_ns;
    }

    /// Keeps every other point (the first, third, …) and doubles the interval.
    fn halve(&mut self) {
        let mut i = 0;
        self.timeline.points.retain(|_| {
            i += 1;
            i % 2 == 1
        });
        self.timeline.interval_ns *= 2;
    }

    /// A snapshot was written at `time_ns`.
    pub fn mark_snapshot(&mut self, index: u64, time_ns: u64) {
        // Bounded like the points: a program that is snapshotted every
        // second for days keeps the most recent marks.
        if self.timeline.snapshots.len() >= MAX_POINTS {
            self.timeline.snapshots.remove(0);
        }
        self.timeline
            .snapshots
            .push(SnapshotMark { index, time_ns });
    }

    /// A fork child numbers its snapshots from 1: its parent's marks go.
    pub fn forget_snapshots(&mut self) {
        self.timeline.snapshots.clear();
    }

    /// The series so far, ending with a point at the snapshot moment.
    pub fn timeline_at(&self, now_ns: u64, traced_bytes: u64, rss_bytes: u64) -> Timeline {
        let mut t = self.timeline.clone();
        if t.points.last().is_none_or(|p| p.time_ns < now_ns) {
            t.points.push(TimePoint {
                time_ns: now_ns,
                traced_bytes,
                rss_bytes,
            });
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_every_interval() {
        let mut r = TimelineRecorder::default();
        r.start(1000);
        assert!(r.due(1000));
        r.record(1000, 5, 50);
        assert!(!r.due(1000 + FIRST_INTERVAL_NS - 1));
        assert!(r.due(1000 + FIRST_INTERVAL_NS));
        let t = r.timeline_at(2000, 7, 70);
        assert_eq!(t.points.len(), 2);
        assert_eq!(
            t.points[1],
            TimePoint {
                time_ns: 2000,
                traced_bytes: 7,
                rss_bytes: 70
            }
        );
    }

    #[test]
    fn a_long_run_stays_bounded_and_coarser() {
        let mut r = TimelineRecorder::default();
        r.start(0);
        let mut now = 0;
        for i in 0..100_000u64 {
            if r.due(now) {
                r.record(now, i, 0);
            }
            now += FIRST_INTERVAL_NS;
        }
        let t = r.timeline_at(now, 0, 0);
        assert!(t.points.len() <= MAX_POINTS + 1, "{}", t.points.len());
        assert!(t.points.len() > MAX_POINTS / 2);
        assert!(t.interval_ns >= 16 * FIRST_INTERVAL_NS);
        assert!(t.points.windows(2).all(|w| w[0].time_ns < w[1].time_ns));
        assert_eq!(t.points[0].time_ns, 0, "the start is kept");
    }
}
