//! The live table: per address, the block live there, built from events
//! applied in any order.
//!
//! Events carry keys (seq.rs): for any address, its events in key order
//! alternate alloc, free. The table is order-independent: per address it
//! keeps the event with the highest key seen: alloc e makes the entry
//! Live(e), free e makes it Tombstone(e.seq), unless the entry already holds
//! a higher key. After all events below a cut were applied, in any order,
//! the table is exactly the live set there. A free must leave a tombstone
//! even when it removes a live block: an older alloc of the same address may
//! still arrive (alloc 1, free 2, alloc 3, free 4 drained as 1, 4, 3).
//! Tombstones below a completed cut can no longer matter and are purged then
//! (`purge_tombstones`); the writer makes an internal sync point when they
//! pile up.
//!
//! Peak bytes: the writer applies events only below a completed cut, sorted
//! (writer/mod.rs), so they come in the global key order and the running
//! maximum is exact; the table itself would accept any order.
//!
//! `apply` returns what changed in the live set (`Change`), so that what is
//! built on the table (counters, an exact peak, a history of the live set)
//! follows it without looking inside.
//!
//! Plain data: no rings, no syscalls, no globals (unit tests below).

use crate::sys::BuildMix;
use std::collections::hash_map::Entry as Slot;
use std::collections::{HashMap, TryReserveError};

/// A live block as the totals see it: the stack that allocated it, its
/// size, and the thread that allocated it (the writer's number for it,
/// `ring::Event::thread`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Block {
    pub stack: u32,
    pub size: u64,
    pub thread: u32,
}

/// What an event did at its address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Alloc(Block),
    Free,
}

/// What applying one event changed in the live set.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Change {
    /// The live set is unchanged: a later event of the address was applied
    /// already, or a free found no live block (it leaves a tombstone for
    /// its alloc, still to arrive).
    Nothing,
    /// A block became live.
    Allocated(Block),
    /// The block live at the address, allocated by the event with key
    /// `alloc_key`, is gone.
    Freed { freed: Block, alloc_key: u64 },
    /// A block became live over an older block of the same address whose
    /// free has not arrived yet (alloc 1 and alloc 3 applied before free 2):
    /// the older block is no longer live. Its free came first (its key is
    /// between the two allocations'). Never returned when events are
    /// applied in key order.
    Replaced {
        freed: Block,
        alloc_key: u64,
        allocated: Block,
    },
}

/// Per address: the highest-keyed event applied (a live block, or the
/// tombstone of a free). Which of the two is the key's parity (seq.rs:
/// allocations 2n + 1, frees 2n): 24 bytes an entry.
#[derive(Clone, Copy)]
struct Entry {
    seq: u64,
    size: u64,
    stack: u32,
    thread: u32,
}

impl Entry {
    #[inline]
    fn live(self) -> bool {
        self.seq & 1 == 1
    }

    fn block(self) -> Block {
        Block {
            stack: self.stack,
            size: self.size,
            thread: self.thread,
        }
    }
}

pub struct LiveTable {
    by_addr: HashMap<u64, Entry, BuildMix>,
    /// Bytes of the live blocks.
    traced_bytes: u64,
    /// Highest `traced_bytes` so far.
    peak_bytes: u64,
    /// Events applied (stale ones included), for the snapshot header.
    allocs: u64,
    frees: u64,
    /// Entries of `by_addr` that are tombstones.
    tombstones: usize,
}

impl Default for LiveTable {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveTable {
    pub fn new() -> Self {
        LiveTable {
            by_addr: HashMap::default(),
            traced_bytes: 0,
            peak_bytes: 0,
            allocs: 0,
            frees: 0,
            tombstones: 0,
        }
    }

    /// Makes room for `n` more addresses, or fails without aborting (the
    /// writer then stops tracing, see `State::out_of_memory`).
    pub fn reserve(&mut self, n: usize) -> Result<(), TryReserveError> {
        self.by_addr.try_reserve(n)
    }

    /// Applies the event with key `seq` at `addr`, in any order relative to
    /// the other events (see the module doc), and says what changed.
    #[inline(always)]
    pub fn apply(&mut self, seq: u64, addr: u64, op: Op) -> Change {
        let new = match op {
            Op::Alloc(b) => {
                debug_assert!(seq & 1 == 1, "allocation keys are odd");
                self.allocs += 1;
                Entry {
                    seq,
                    size: b.size,
                    stack: b.stack,
                    thread: b.thread,
                }
            }
            Op::Free => {
                debug_assert!(seq & 1 == 0, "free keys are even");
                Entry {
                    seq,
                    size: 0,
                    stack: 0,
                    thread: 0,
                }
            }
        };
        let old = match self.by_addr.entry(addr) {
            Slot::Occupied(mut o) => {
                let cur = *o.get();
                if cur.seq > seq {
                    // A later event of this address was applied already: an
                    // allocation below it has ended (its free came between).
                    self.frees += new.live() as u64;
                    return Change::Nothing;
                }
                o.insert(new);
                self.account(cur, false);
                Some(cur)
            }
            Slot::Vacant(v) => {
                v.insert(new);
                None
            }
        };
        self.account(new, true);
        let ended = old.is_some_and(|e| e.live());
        self.frees += ended as u64;
        match (old.filter(|e| e.live()), new.live()) {
            (None, false) => Change::Nothing,
            (None, true) => Change::Allocated(new.block()),
            (Some(gone), false) => Change::Freed {
                freed: gone.block(),
                alloc_key: gone.seq,
            },
            (Some(gone), true) => Change::Replaced {
                freed: gone.block(),
                alloc_key: gone.seq,
                allocated: new.block(),
            },
        }
    }

    /// Adds (or removes) an entry's share of the totals: a live block's
    /// bytes, or one tombstone.
    #[inline]
    fn account(&mut self, en: Entry, add: bool) {
        match (en.live(), add) {
            (true, true) => {
                self.traced_bytes += en.size;
                self.peak_bytes = self.peak_bytes.max(self.traced_bytes);
            }
            (true, false) => self.traced_bytes -= en.size,
            (false, true) => self.tombstones += 1,
            (false, false) => self.tombstones -= 1,
        }
    }

    /// To be called once every event below `cut` was applied: tombstones
    /// below it have done their job (no alloc they could cancel can still
    /// arrive).
    pub fn purge_tombstones(&mut self, cut: u64) {
        if self.tombstones == 0 {
            return;
        }
        let mut removed = 0;
        self.by_addr.retain(|_, e| {
            let keep = e.live() || e.seq >= cut;
            if !keep {
                removed += 1;
            }
            keep
        });
        self.tombstones -= removed;
    }

    /// Every live block (any order).
    pub fn live_blocks(&self) -> impl Iterator<Item = Block> + '_ {
        self.by_addr
            .values()
            .filter(|e| e.live())
            .map(|e| e.block())
    }

    /// Every live block with its address (any order): the leak check's.
    pub fn live_with_addr(&self) -> impl Iterator<Item = (u64, Block)> + '_ {
        self.by_addr
            .iter()
            .filter(|(_, e)| e.live())
            .map(|(&a, e)| (a, e.block()))
    }

    /// An address inside the table's storage (which holds every live
    /// address): the leak check does not take it for a root.
    pub fn storage_addr(&self) -> Option<u64> {
        self.by_addr.keys().next().map(|k| k as *const u64 as u64)
    }

    pub fn live_count(&self) -> usize {
        self.by_addr.len() - self.tombstones
    }

    /// Addresses held: live blocks and tombstones.
    pub fn entries(&self) -> usize {
        self.by_addr.len()
    }

    pub fn tombstones(&self) -> usize {
        self.tombstones
    }

    pub fn traced_bytes(&self) -> u64 {
        self.traced_bytes
    }

    pub fn peak_bytes(&self) -> u64 {
        self.peak_bytes
    }

    /// Alloc events applied (each once, whether or not it left a live block).
    pub fn allocs(&self) -> u64 {
        self.allocs
    }

    /// Allocations that have ended (freed, or reallocated elsewhere), each
    /// counted once whatever the order events came in. A free of a block
    /// the table never held (allocated before `memtrace attach`, or before
    /// initialisation) is not one: it changes nothing.
    pub fn frees(&self) -> u64 {
        self.frees
    }
}

#[cfg(test)]
mod tests {
    use super::{Block, Change, LiveTable, Op};

    const P: u64 = 0x1000;
    const Q: u64 = 0x2000;
    const A: Block = Block {
        stack: 7,
        size: 16,
        thread: 1,
    };
    const B: Block = Block {
        stack: 9,
        size: 48,
        thread: 2,
    };

    fn live(t: &LiveTable) -> Vec<Block> {
        let mut v: Vec<Block> = t.live_blocks().collect();
        v.sort_by_key(|b| (b.stack, b.size, b.thread));
        v
    }

    /// The module doc's case: alloc 1, free 2, alloc 3, free 4 of one
    /// address, drained as 1, 4, 3 (and 2 last). Free 4 takes away the
    /// block applied so far; alloc 3 and free 2 find a later key and change
    /// nothing. The address ends as a tombstone, nothing live.
    #[test]
    fn alloc_free_alloc_free_drained_as_1_4_3_2() {
        let mut t = LiveTable::new();
        assert_eq!(t.apply(1, P, Op::Alloc(A)), Change::Allocated(A));
        assert_eq!(t.traced_bytes(), 16);
        assert_eq!(
            t.apply(4, P, Op::Free),
            Change::Freed {
                freed: A,
                alloc_key: 1
            }
        );
        assert_eq!(t.apply(3, P, Op::Alloc(B)), Change::Nothing);
        assert_eq!(t.apply(2, P, Op::Free), Change::Nothing);
        assert!(live(&t).is_empty());
        assert_eq!(
            (
                t.traced_bytes(),
                t.tombstones(),
                t.entries(),
                t.live_count()
            ),
            (0, 1, 1, 0)
        );
        assert_eq!((t.allocs(), t.frees()), (2, 2));
        assert_eq!(t.peak_bytes(), 16);
    }

    /// A free that arrives before its alloc leaves a tombstone, and the
    /// alloc that comes later is not taken for live.
    #[test]
    fn free_before_its_alloc_leaves_a_tombstone() {
        let mut t = LiveTable::new();
        assert_eq!(t.apply(2, P, Op::Free), Change::Nothing);
        assert_eq!((t.tombstones(), t.live_count()), (1, 0));
        assert_eq!(t.apply(1, P, Op::Alloc(A)), Change::Nothing);
        assert!(live(&t).is_empty());
        assert_eq!(
            (t.traced_bytes(), t.peak_bytes(), t.tombstones()),
            (0, 0, 1)
        );
    }

    /// Frees of blocks allocated before tracing began (`memtrace attach`)
    /// change nothing, in any order with the address's later events: no
    /// negative bytes, no frees counted, the later block live.
    #[test]
    fn free_of_an_unknown_block_changes_nothing() {
        let events = [(2, P, Op::Free), (3, P, Op::Alloc(A)), (6, Q, Op::Free)];
        for order in permutations(events.len()) {
            let mut t = LiveTable::new();
            for &i in &order {
                let (seq, addr, op) = events[i];
                t.apply(seq, addr, op);
            }
            assert_eq!(live(&t), vec![A], "order {order:?}");
            assert_eq!((t.traced_bytes(), t.allocs(), t.frees()), (16, 1, 0));
            t.purge_tombstones(7);
            assert_eq!((t.tombstones(), t.live_count()), (0, 1));
        }
    }

    /// Alloc 1 and alloc 3 of one address before free 2: the later block
    /// replaces the older one, and free 2 then changes nothing.
    #[test]
    fn a_later_alloc_replaces_a_block_whose_free_is_still_to_come() {
        let mut t = LiveTable::new();
        assert_eq!(t.apply(1, P, Op::Alloc(A)), Change::Allocated(A));
        assert_eq!(
            t.apply(3, P, Op::Alloc(B)),
            Change::Replaced {
                freed: A,
                alloc_key: 1,
                allocated: B
            }
        );
        assert_eq!(t.traced_bytes(), 48);
        assert_eq!(t.apply(2, P, Op::Free), Change::Nothing);
        assert_eq!(live(&t), vec![B]);
        assert_eq!((t.tombstones(), t.peak_bytes()), (0, 48));
    }

    /// Tombstones below a completed cut go; one at or above it stays (an
    /// alloc below it may still arrive); live blocks always stay.
    #[test]
    fn purge_drops_tombstones_below_the_cut_only() {
        let mut t = LiveTable::new();
        t.apply(2, P, Op::Free);
        t.apply(1, P, Op::Alloc(A));
        t.apply(6, Q, Op::Free);
        t.apply(7, 0x3000, Op::Alloc(B));
        assert_eq!((t.tombstones(), t.entries()), (2, 3));
        t.purge_tombstones(5);
        assert_eq!((t.tombstones(), t.entries()), (1, 2));
        // Q's tombstone (6) still cancels its alloc (5) arriving late.
        assert_eq!(t.apply(5, Q, Op::Alloc(A)), Change::Nothing);
        t.purge_tombstones(9);
        assert_eq!((t.tombstones(), t.entries(), t.live_count()), (0, 1, 1));
        assert_eq!(live(&t), vec![B]);
    }

    /// The peak is the highest sum of live bytes seen, not the current one.
    #[test]
    fn peak_keeps_the_highest_total() {
        let mut t = LiveTable::new();
        t.apply(1, P, Op::Alloc(A));
        t.apply(3, Q, Op::Alloc(B));
        t.apply(4, P, Op::Free);
        assert_eq!((t.traced_bytes(), t.peak_bytes()), (48, 64));
    }

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for i in 0..=p.len() {
                let mut q = p.clone();
                q.insert(i, n - 1);
                out.push(q);
            }
        }
        out
    }

    /// Every order of one address's alloc 1, free 2, alloc 3, free 4,
    /// alloc 5 (and an alloc 7 elsewhere) ends in the same live set, and the
    /// changes returned add up to it: whoever follows `Change` sees the
    /// table's totals.
    #[test]
    fn any_order_ends_in_the_same_live_set_and_changes_add_up() {
        let c = Block {
            stack: 3,
            size: 100,
            thread: 1,
        };
        let events = [
            (1, P, Op::Alloc(A)),
            (2, P, Op::Free),
            (3, P, Op::Alloc(B)),
            (4, P, Op::Free),
            (5, P, Op::Alloc(c)),
            (7, Q, Op::Alloc(A)),
        ];
        for order in permutations(events.len()) {
            let mut t = LiveTable::new();
            let mut followed: i64 = 0;
            for &i in &order {
                let (seq, addr, op) = events[i];
                match t.apply(seq, addr, op) {
                    Change::Nothing => {}
                    Change::Allocated(b) => followed += b.size as i64,
                    Change::Freed { freed, .. } => followed -= freed.size as i64,
                    Change::Replaced {
                        freed, allocated, ..
                    } => followed += allocated.size as i64 - freed.size as i64,
                }
            }
            assert_eq!(live(&t), vec![c, A], "order {order:?}");
            assert_eq!(t.traced_bytes(), 116, "order {order:?}");
            assert_eq!(followed, 116, "order {order:?}");
            assert_eq!((t.allocs(), t.frees()), (4, 2));
        }
    }
}
