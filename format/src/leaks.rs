//! (1.3) LEAKS: the exit snapshot's leak check, memcheck's classes per
//! stack (docs/FORMAT.md). An optional section: `decode` skips it, readers
//! that want it call [`decode_leaks`] on the same bytes.

use crate::varint::{put_u64, Reader};
use crate::{FormatError, Snapshot};

pub const TAG: u8 = 0x10;

/// Whether the scan ran to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LeakStatus {
    /// Every block classified: the records cover every live block.
    #[default]
    Complete,
    /// Stopped at its time bound: no records.
    TimedOut,
    /// Could not read memory (process_vm_readv refused) or find the roots
    /// (/proc/self/maps unreadable): no records.
    Unavailable,
    /// No memory for the scan's tables: no records.
    NoMemory,
}

/// memcheck's classes, in its order (loss records sort by it at equal bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LeakClass {
    Definite = 0,
    Indirect = 1,
    Possible = 2,
    Reachable = 3,
}

impl LeakClass {
    pub const ALL: [LeakClass; 4] = [
        LeakClass::Definite,
        LeakClass::Indirect,
        LeakClass::Possible,
        LeakClass::Reachable,
    ];
}

/// The blocks of one stack in one class: a loss record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeakRecord {
    pub stack: u64,
    pub class: LeakClass,
    pub blocks: u64,
    /// Sum of the blocks' requested sizes.
    pub bytes: u64,
    /// Definite records only: bytes of the blocks lost through them.
    pub indirect_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LeakCheck {
    pub status: LeakStatus,
    /// Time the scan took.
    pub scan_ns: u64,
    /// Bytes of roots and of blocks read.
    pub root_bytes: u64,
    pub heap_bytes: u64,
    /// Sorted by (stack, class), one per pair.
    pub records: Vec<LeakRecord>,
}

pub fn encode_leaks(l: &LeakCheck) -> Vec<u8> {
    let mut p = Vec::with_capacity(32 + l.records.len() * 8);
    p.push(match l.status {
        LeakStatus::Complete => 0,
        LeakStatus::TimedOut => 1,
        LeakStatus::Unavailable => 2,
        LeakStatus::NoMemory => 3,
    });
    put_u64(&mut p, l.scan_ns);
    put_u64(&mut p, l.root_bytes);
    put_u64(&mut p, l.heap_bytes);
    put_u64(&mut p, l.records.len() as u64);
    for r in &l.records {
        put_u64(&mut p, r.stack);
        p.push(r.class as u8);
        put_u64(&mut p, r.blocks);
        put_u64(&mut p, r.bytes);
        put_u64(&mut p, r.indirect_bytes);
    }
    p
}

fn decode_payload(r: &mut Reader, snap: &Snapshot) -> Result<LeakCheck, FormatError> {
    let status = match r.u8()? {
        0 => LeakStatus::Complete,
        1 => LeakStatus::TimedOut,
        2 => LeakStatus::Unavailable,
        3 => LeakStatus::NoMemory,
        _ => return Err(FormatError::Corrupt("unknown leak check status")),
    };
    let scan_ns = r.u64()?;
    let root_bytes = r.u64()?;
    let heap_bytes = r.u64()?;
    let n = r.count(5, "leak record count past end of section")?;
    let mut ids: Vec<u64> = snap.stacks.iter().map(|s| s.id).collect();
    ids.sort_unstable();
    let mut records = Vec::with_capacity(n);
    for _ in 0..n {
        let stack = r.u64()?;
        let class = match r.u8()? {
            0 => LeakClass::Definite,
            1 => LeakClass::Indirect,
            2 => LeakClass::Possible,
            3 => LeakClass::Reachable,
            _ => return Err(FormatError::Corrupt("unknown leak class")),
        };
        let blocks = r.u64()?;
        let bytes = r.u64()?;
        let indirect_bytes = r.u64()?;
        if ids.binary_search(&stack).is_err() {
            return Err(FormatError::Corrupt(
                "leak record refers to an unknown stack",
            ));
        }
        if indirect_bytes != 0 && class != LeakClass::Definite {
            return Err(FormatError::Corrupt(
                "indirect bytes outside a definite record",
            ));
        }
        if let Some(prev) = records.last() {
            let prev: &LeakRecord = prev;
            if (prev.stack, prev.class) >= (stack, class) {
                return Err(FormatError::Corrupt("leak records out of order"));
            }
        }
        records.push(LeakRecord {
            stack,
            class,
            blocks,
            bytes,
            indirect_bytes,
        });
    }
    if !r.is_empty() {
        return Err(FormatError::Corrupt("trailing bytes in the leaks section"));
    }
    Ok(LeakCheck {
        status,
        scan_ns,
        root_bytes,
        heap_bytes,
        records,
    })
}

/// The LEAKS section of the dump `bytes`, whose decoded form is `snap` (its
/// stacks are checked against), if it has one.
pub fn decode_leaks(bytes: &[u8], snap: &Snapshot) -> Result<Option<LeakCheck>, FormatError> {
    let body = crate::check_envelope(bytes)?;
    let mut r = Reader::new(body);
    let mut found = None;
    while !r.is_empty() {
        let t = r.u8()?;
        let payload = r.blob()?;
        if t == TAG {
            if found.is_some() {
                return Err(FormatError::Corrupt("section appears twice"));
            }
            found = Some(decode_payload(&mut Reader::new(payload), snap)?);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode_with_leaks, Stack};

    #[test]
    fn round_trip_and_checks() {
        let snap = Snapshot {
            stacks: vec![Stack {
                id: 7,
                frames: vec![0x1234],
                truncated: false,
            }],
            header: crate::Header {
                frame_limit: 16,
                ..Default::default()
            },
            ..Default::default()
        };
        let l = LeakCheck {
            status: LeakStatus::Complete,
            scan_ns: 5,
            root_bytes: 100,
            heap_bytes: 200,
            records: vec![
                LeakRecord {
                    stack: 7,
                    class: LeakClass::Definite,
                    blocks: 1,
                    bytes: 64,
                    indirect_bytes: 3136,
                },
                LeakRecord {
                    stack: 7,
                    class: LeakClass::Reachable,
                    blocks: 2,
                    bytes: 10,
                    indirect_bytes: 0,
                },
            ],
        };
        let bytes = encode_with_leaks(&snap, Some(&l));
        let back = decode(&bytes).unwrap();
        assert_eq!(back, snap);
        assert_eq!(decode_leaks(&bytes, &back).unwrap(), Some(l.clone()));
        assert_eq!(decode_leaks(&crate::encode(&snap), &snap).unwrap(), None);
        let mut bad = l.clone();
        bad.records[0].stack = 8;
        let bytes = encode_with_leaks(&snap, Some(&bad));
        assert!(decode_leaks(&bytes, &snap).is_err());
        let mut bad = l;
        bad.records.swap(0, 1);
        let bytes = encode_with_leaks(&snap, Some(&bad));
        assert!(decode_leaks(&bytes, &snap).is_err());
    }
}
