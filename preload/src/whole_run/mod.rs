//! What every snapshot says about the whole run, kept by the writer as it
//! applies events in the global order (docs/FORMAT.md, "The whole run"):
//! the exact peak (`peak.rs`), totals and temporaries per stack
//! (`totals.rs`), memory over time (`timeline.rs`), and where RSS goes at
//! the snapshot moment (`memory.rs`).
//!
//! Plain data fed by the writer: no rings, no globals, so each part is unit
//! tested on its own. The writer calls `allocated`/`freed` for every change
//! its live table makes, in key order (only below a completed cut, so that
//! the order is the global one and the peak is exact).

mod history;
mod memory;
mod peak;
mod timeline;
mod totals;

pub use history::HistoryChanges;
pub use memory::{memory_use, rss_now};
pub use peak::PeakTracker;
pub use timeline::TimelineRecorder;
pub use totals::TotalsTracker;

/// A block that became live: applied in key order.
#[derive(Clone, Copy, Debug)]
pub struct Allocated {
    /// The allocation's key (seq.rs).
    pub key: u64,
    pub stack: u32,
    pub size: u64,
    /// The ring (thread) that published it.
    pub thread: u32,
}

/// A live block that was freed: what it was allocated as.
#[derive(Clone, Copy, Debug)]
pub struct Freed {
    /// The key of the free (for whoever follows frees in order; the
    /// trackers here need only the allocation's).
    #[allow(dead_code)]
    pub key: u64,
    /// The key of the allocation it frees.
    pub alloc_key: u64,
    pub stack: u32,
    pub size: u64,
    /// The thread that allocated it (not necessarily the one freeing it).
    pub thread: u32,
}

/// The peak, totals and timeline together, as the writer keeps them.
#[derive(Default)]
pub struct WholeRun {
    pub peak: PeakTracker,
    pub totals: TotalsTracker,
    pub timeline: TimelineRecorder,
    pub history: HistoryChanges,
}

impl WholeRun {
    #[inline]
    pub fn allocated(&mut self, a: Allocated, now_ns: impl Fn() -> u64) {
        self.totals.allocated(a);
        self.history.allocated(&a);
        self.peak.allocated(a, now_ns);
    }

    #[inline]
    pub fn freed(&mut self, f: Freed) {
        self.totals.freed(f);
        self.history.freed(&f);
        self.peak.freed(f);
    }

    /// A fork child goes on from its parent's state (its memory is a copy
    /// of the parent's, and so is its history); only the marks of the
    /// parent's snapshots go, as the child numbers its own from 1.
    pub fn fork_child(&mut self) {
        self.timeline.forget_snapshots();
    }
}
