//! (1.4) DOMAINS: the domain of each trace group that is not the malloc
//! heap's (custom allocators' objects, `memtrace_track`; docs/FORMAT.md).
//! Optional and sparse, so a file without tracked objects is unchanged and
//! a 1.3 reader, which skips the section, still reads every group.

use crate::varint::{put_u64, Reader};
use crate::FormatError;

pub const TAG: u8 = 0x0A;

/// The section's payload for `domains` (parallel to TRACES), or None when
/// every group is in domain 0.
pub fn encode_domains(domains: &[u32]) -> Option<Vec<u8>> {
    let pairs: Vec<(usize, u32)> = domains
        .iter()
        .enumerate()
        .filter(|&(_, &d)| d != 0)
        .map(|(i, &d)| (i, d))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let mut p = Vec::with_capacity(pairs.len() * 4 + 4);
    put_u64(&mut p, pairs.len() as u64);
    for (i, d) in pairs {
        put_u64(&mut p, i as u64);
        put_u64(&mut p, d as u64);
    }
    Some(p)
}

/// The section's (group index, domain) pairs, checked for their own
/// sake: indexes strictly increasing, domains 1..=u32::MAX, no trailing
/// bytes. `expand` checks them against TRACES.
pub fn decode_domains(r: &mut Reader) -> Result<Vec<(u64, u32)>, FormatError> {
    let n = r.count(2, "domain count past end of section")?;
    let mut pairs: Vec<(u64, u32)> = Vec::with_capacity(n);
    for _ in 0..n {
        let i = r.u64()?;
        let d = r.bounded(u32::MAX as u64, "domain above 2^32-1")? as u32;
        if d == 0 {
            return Err(FormatError::Corrupt("domain 0 listed in DOMAINS"));
        }
        if pairs.last().is_some_and(|&(last, _)| last >= i) {
            return Err(FormatError::Corrupt("DOMAINS out of order or repeated"));
        }
        pairs.push((i, d));
    }
    if !r.is_empty() {
        return Err(FormatError::Corrupt(
            "trailing bytes in the domains section",
        ));
    }
    Ok(pairs)
}

/// The pairs as one domain per trace group (empty when there are none).
pub fn expand(pairs: &[(u64, u32)], groups: usize) -> Result<Vec<u32>, FormatError> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let mut v = vec![0u32; groups];
    for &(i, d) in pairs {
        let slot = v.get_mut(i as usize).ok_or(FormatError::Corrupt(
            "DOMAINS names a trace group past TRACES",
        ))?;
        *slot = d;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(domains: &[u32]) -> Result<Vec<u32>, FormatError> {
        let Some(p) = encode_domains(domains) else {
            return Ok(Vec::new());
        };
        let pairs = decode_domains(&mut Reader::new(&p))?;
        expand(&pairs, domains.len())
    }

    #[test]
    fn round_trip_and_all_heap_is_no_section() {
        assert_eq!(encode_domains(&[0, 0, 0]), None);
        assert_eq!(
            round(&[0, 7, 0, u32::MAX]).unwrap(),
            vec![0, 7, 0, u32::MAX]
        );
    }

    #[test]
    fn bad_sections_are_refused() {
        let bad = |bytes: &[u8], groups| {
            decode_domains(&mut Reader::new(bytes)).and_then(|p| expand(&p, groups))
        };
        assert!(bad(&[1, 0, 0], 1).is_err(), "domain 0");
        assert!(bad(&[2, 1, 3, 1, 4], 3).is_err(), "repeated index");
        assert!(bad(&[1, 5, 3], 3).is_err(), "past TRACES");
        assert!(bad(&[1, 0, 3, 9], 3).is_err(), "trailing bytes");
        assert!(
            bad(&[1, 0, 0x80, 0x80, 0x80, 0x80, 0x10], 1).is_err(),
            "above u32"
        );
        assert!(bad(&[3, 0, 1], 3).is_err(), "count past end");
        assert_eq!(bad(&[1, 2, 3], 3).unwrap(), vec![0, 0, 3]);
    }
}
