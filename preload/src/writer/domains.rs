//! The custom allocators' objects (`memtrace_track`, track.rs): one live
//! table per domain, apart from the malloc heap's (an object may start at
//! the very address of the malloc'd block it is carved from).
//!
//! Their events wait in `pending` until a cut below which every event is
//! drained, as the heap's do, and are then applied: a snapshot holds
//! exactly the objects tracked and not untracked before its point. They
//! are applied in any order (`LiveTable` needs none), and feed nothing
//! else: the whole run (peak, totals, temporaries, timeline, history) and
//! the header's traced bytes are the malloc heap's alone, since the pool's
//! own malloc'd block already counts those bytes once.
//!
//! Plain data: no rings, no globals (unit tests below).

use super::live::{Block, LiveTable, Op};
use crate::ring::Tracked;
use crate::sys::BuildMix;
use std::collections::{HashMap, TryReserveError};

#[derive(Default)]
pub struct Domains {
    tables: HashMap<u32, LiveTable, BuildMix>,
    /// Drained events not applied yet: (key, object).
    pending: Vec<(u64, Tracked)>,
}

impl Domains {
    /// Queues a drained event; fails without aborting when out of memory.
    pub fn push(&mut self, seq: u64, t: Tracked) -> Result<(), TryReserveError> {
        self.pending.try_reserve(1)?;
        self.pending.push((seq, t));
        Ok(())
    }

    /// Applies the queued events with keys below `cut` (every event below
    /// it is queued).
    pub fn apply_below(&mut self, cut: u64) -> Result<(), TryReserveError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut failed = None;
        let tables = &mut self.tables;
        self.pending.retain(|&(seq, t)| {
            if seq >= cut || failed.is_some() {
                return seq >= cut;
            }
            if let Err(e) = tables.try_reserve(1) {
                failed = Some(e);
                return false;
            }
            let table = tables.entry(t.domain).or_default();
            if let Err(e) = table.reserve(1) {
                failed = Some(e);
                return false;
            }
            let op = if seq & 1 == 1 {
                Op::Alloc(Block {
                    stack: t.stack,
                    size: t.size,
                    thread: 0,
                })
            } else {
                Op::Free
            };
            table.apply(seq, t.addr, op);
            false
        });
        failed.map_or(Ok(()), Err)
    }

    /// Untracks below `cut` that can no longer cancel a track are dropped.
    pub fn purge_tombstones(&mut self, cut: u64) {
        for t in self.tables.values_mut() {
            t.purge_tombstones(cut);
        }
    }

    /// Every live object: (domain, address, its block).
    pub fn live(&self) -> impl Iterator<Item = (u32, u64, Block)> + '_ {
        self.tables
            .iter()
            .flat_map(|(&d, t)| t.live_with_addr().map(move |(a, b)| (d, a, b)))
    }

    /// Addresses inside the tables' storage (they hold every live object's
    /// address): the leak check does not take them for roots.
    pub fn storage_addrs(&self) -> impl Iterator<Item = u64> + '_ {
        self.tables.values().filter_map(|t| t.storage_addr())
    }

    /// Events queued and not yet applied.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::{Domains, Tracked};

    fn track(d: &mut Domains, seq: u64, domain: u32, addr: u64, size: u64) {
        let t = Tracked {
            addr,
            size,
            stack: 5,
            domain,
        };
        d.push(seq, t).unwrap();
    }

    fn live(d: &Domains) -> Vec<(u32, u64, u64)> {
        let mut v: Vec<_> = d.live().map(|(dom, a, b)| (dom, a, b.size)).collect();
        v.sort_unstable();
        v
    }

    /// The same address in two domains is two objects; an untrack takes
    /// away its own domain's only; events at or above the cut wait.
    #[test]
    fn domains_are_apart_and_wait_for_their_cut() {
        let mut d = Domains::default();
        track(&mut d, 1, 7, 0x1000, 32);
        track(&mut d, 3, 9, 0x1000, 48);
        track(&mut d, 4, 7, 0x1000, 0); // untrack (even key)
        track(&mut d, 5, 7, 0x2000, 16);
        d.apply_below(5).unwrap();
        assert_eq!(live(&d), vec![(9, 0x1000, 48)]);
        assert_eq!(d.pending(), 1);
        d.apply_below(7).unwrap();
        assert_eq!(live(&d), vec![(7, 0x2000, 16), (9, 0x1000, 48)]);
        assert_eq!(d.pending(), 0);
    }

    /// An untrack drained before its track (another thread's ring) still
    /// cancels it: the table keeps the higher key.
    #[test]
    fn untrack_before_its_track_cancels_it() {
        let mut d = Domains::default();
        track(&mut d, 2, 3, 0x40, 0);
        track(&mut d, 1, 3, 0x40, 8);
        d.apply_below(3).unwrap();
        assert!(live(&d).is_empty());
        d.purge_tombstones(3);
        assert_eq!(d.storage_addrs().count(), 0);
    }
}
