//! The custom allocators' objects in the leak check (`memtrace_track`):
//! the scan's second layer of blocks (scan.rs module doc), and the loss
//! records of heap blocks and objects alike, keyed by domain too.
//!
//! Pure (unit tests below).

use super::scan::{Block, Class};
use memtrace_format::leaks::{LeakClass, LeakRecord};
use std::collections::HashMap;

/// A live object: address, size, stack, domain.
pub type Object = (u64, u64, u32, u32);

/// The objects sorted by address without overlaps (the scan's layer), and
/// those that overlap an earlier one (the same memory tracked in two
/// domains, or an object tracked over a live one): those are not scanned
/// and count as still reachable, so they are never reported lost.
pub fn layer(mut objects: Vec<Object>) -> (Vec<Object>, Vec<Object>) {
    objects.sort_unstable_by_key(|o| (o.0, o.3));
    let mut kept: Vec<Object> = Vec::with_capacity(objects.len());
    let mut overlapping = Vec::new();
    for o in objects {
        match kept.last() {
            Some(&(a, s, _, _)) if o.0 < a.saturating_add(s.max(1)) => overlapping.push(o),
            _ => kept.push(o),
        }
    }
    (kept, overlapping)
}

/// The scan's view of objects.
pub fn scan_blocks(objects: &[Object]) -> Vec<Block> {
    objects
        .iter()
        .map(|&(addr, size, _, _)| Block { addr, size })
        .collect()
}

/// Loss records: per (domain, stack, class) the blocks, their bytes and
/// (definite ones) the bytes lost through them, sorted by that key.
/// `blocks` are (size, stack, domain, class, indirect bytes).
pub fn records(blocks: impl Iterator<Item = (u64, u32, u32, Class, u64)>) -> Vec<LeakRecord> {
    let mut per: HashMap<(u32, u32, u8), LeakRecord, crate::sys::BuildMix> = HashMap::default();
    for (size, stack, domain, class, indirect) in blocks {
        let class = match class {
            Class::Definite => LeakClass::Definite,
            Class::Indirect => LeakClass::Indirect,
            Class::Possible => LeakClass::Possible,
            Class::Reachable => LeakClass::Reachable,
        };
        let r = per
            .entry((domain, stack, class as u8))
            .or_insert_with(|| LeakRecord {
                domain,
                stack: stack as u64,
                class,
                blocks: 0,
                bytes: 0,
                indirect_bytes: 0,
            });
        r.blocks += 1;
        r.bytes += size;
        r.indirect_bytes += indirect;
    }
    let mut records: Vec<LeakRecord> = per.into_values().collect();
    records.sort_unstable_by_key(|r| (r.domain, r.stack, r.class));
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_are_set_aside() {
        let (kept, over) = layer(vec![
            (0x100, 32, 1, 7),
            (0x10, 16, 2, 7),
            (0x110, 8, 3, 9), // inside the first
            (0x120, 8, 4, 7), // right after it
        ]);
        assert_eq!(
            kept,
            vec![(0x10, 16, 2, 7), (0x100, 32, 1, 7), (0x120, 8, 4, 7)]
        );
        assert_eq!(over, vec![(0x110, 8, 3, 9)]);
    }

    #[test]
    fn records_per_domain_stack_and_class() {
        let r = records(
            [
                (10, 1, 0, Class::Reachable, 0),
                (20, 1, 0, Class::Reachable, 0),
                (72, 1, 7, Class::Definite, 8),
                (5, 2, 0, Class::Definite, 0),
            ]
            .into_iter(),
        );
        let keys: Vec<_> = r
            .iter()
            .map(|r| {
                (
                    r.domain,
                    r.stack,
                    r.class,
                    r.blocks,
                    r.bytes,
                    r.indirect_bytes,
                )
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                (0, 1, LeakClass::Reachable, 2, 30, 0),
                (0, 2, LeakClass::Definite, 1, 5, 0),
                (7, 1, LeakClass::Definite, 1, 72, 8),
            ]
        );
    }
}
