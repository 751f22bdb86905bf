//! (1.3) LEAKS: the exit snapshot's leak check, memcheck's classes per
//! stack (docs/FORMAT.md). An optional section: `decode` skips it, readers
//! that want it call [`decode_leaks`] on the same bytes. (1.4)
//! DOMAIN_LEAKS: the records of custom allocators' objects (domains other
//! than 0), in a section of their own so that a 1.3 reader, which skips
//! it, still finds LEAKS as it knows it: the heap's records only.

use crate::varint::{put_u64, Reader};
use crate::{FormatError, Snapshot};

pub const TAG: u8 = 0x10;
pub const DOMAIN_TAG: u8 = 0x11;

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
    /// 0 for the malloc heap's blocks (LEAKS); other: a custom allocator's
    /// objects (DOMAIN_LEAKS, 1.4).
    pub domain: u32,
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
    /// Sorted by (domain, stack, class), one per triple.
    pub records: Vec<LeakRecord>,
}

/// The DOMAIN_LEAKS payload: the records of domains other than 0, if any.
pub fn encode_domain_leaks(l: &LeakCheck) -> Option<Vec<u8>> {
    let n = l.records.iter().filter(|r| r.domain != 0).count();
    if n == 0 {
        return None;
    }
    let mut p = Vec::with_capacity(8 + n * 8);
    put_u64(&mut p, n as u64);
    for r in l.records.iter().filter(|r| r.domain != 0) {
        put_u64(&mut p, r.domain as u64);
        put_record(&mut p, r);
    }
    Some(p)
}

fn put_record(p: &mut Vec<u8>, r: &LeakRecord) {
    put_u64(p, r.stack);
    p.push(r.class as u8);
    put_u64(p, r.blocks);
    put_u64(p, r.bytes);
    put_u64(p, r.indirect_bytes);
}

/// The LEAKS payload: the status and the heap's (domain 0) records.
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
    let heap = || l.records.iter().filter(|r| r.domain == 0);
    put_u64(&mut p, heap().count() as u64);
    for r in heap() {
        put_record(&mut p, r);
    }
    p
}

/// One record's fields after its domain, checked: a known class and
/// stack, indirect bytes only in a definite record, sorted after `prev`.
fn get_record(
    r: &mut Reader,
    domain: u32,
    ids: &[u64],
    prev: Option<&LeakRecord>,
) -> Result<LeakRecord, FormatError> {
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
    if let Some(prev) = prev {
        if (prev.domain, prev.stack, prev.class) >= (domain, stack, class) {
            return Err(FormatError::Corrupt("leak records out of order"));
        }
    }
    Ok(LeakRecord {
        domain,
        stack,
        class,
        blocks,
        bytes,
        indirect_bytes,
    })
}

/// DOMAIN_LEAKS: its records, appended to `records` (the heap's).
fn decode_domain_payload(
    r: &mut Reader,
    ids: &[u64],
    records: &mut Vec<LeakRecord>,
) -> Result<(), FormatError> {
    let n = r.count(6, "leak record count past end of section")?;
    for _ in 0..n {
        let domain = r.bounded(u32::MAX as u64, "domain above 2^32-1")? as u32;
        if domain == 0 {
            return Err(FormatError::Corrupt("domain 0 in DOMAIN_LEAKS"));
        }
        let rec = get_record(r, domain, ids, records.last())?;
        records.push(rec);
    }
    if !r.is_empty() {
        return Err(FormatError::Corrupt(
            "trailing bytes in the domain leaks section",
        ));
    }
    Ok(())
}

fn decode_payload(r: &mut Reader, ids: &[u64]) -> Result<LeakCheck, FormatError> {
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
    let mut records = Vec::with_capacity(n);
    for _ in 0..n {
        let rec = get_record(r, 0, ids, records.last())?;
        records.push(rec);
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
    let mut ids: Vec<u64> = snap.stacks.iter().map(|s| s.id).collect();
    ids.sort_unstable();
    let mut r = Reader::new(body);
    let (mut found, mut domain_payload) = (None, None);
    while !r.is_empty() {
        let t = r.u8()?;
        let payload = r.blob()?;
        let slot = match t {
            TAG => &mut found,
            DOMAIN_TAG => &mut domain_payload,
            _ => continue,
        };
        if slot.is_some() {
            return Err(FormatError::Corrupt("section appears twice"));
        }
        *slot = Some(payload);
    }
    let Some(payload) = found else {
        return match domain_payload {
            Some(_) => Err(FormatError::Corrupt("DOMAIN_LEAKS without LEAKS")),
            None => Ok(None),
        };
    };
    let mut check = decode_payload(&mut Reader::new(payload), &ids)?;
    if let Some(p) = domain_payload {
        decode_domain_payload(&mut Reader::new(p), &ids, &mut check.records)?;
    }
    Ok(Some(check))
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
                    domain: 0,
                    stack: 7,
                    class: LeakClass::Definite,
                    blocks: 1,
                    bytes: 64,
                    indirect_bytes: 3136,
                },
                LeakRecord {
                    domain: 0,
                    stack: 7,
                    class: LeakClass::Reachable,
                    blocks: 2,
                    bytes: 10,
                    indirect_bytes: 0,
                },
                // A custom allocator's objects (DOMAIN_LEAKS, 1.4).
                LeakRecord {
                    domain: 3,
                    stack: 7,
                    class: LeakClass::Definite,
                    blocks: 1,
                    bytes: 24,
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
        let mut bad = l.clone();
        bad.records[2].domain = 0;
        let bytes = encode_with_leaks(&snap, Some(&bad));
        assert!(
            decode_leaks(&bytes, &snap).is_err(),
            "a heap record after a domain's"
        );
        let mut bad = l;
        bad.records.swap(0, 1);
        let bytes = encode_with_leaks(&snap, Some(&bad));
        assert!(decode_leaks(&bytes, &snap).is_err());
    }
}
