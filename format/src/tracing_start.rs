//! (1.4) TRACING_START: when tracing began, for a process that was not
//! traced from its start (`memtrace attach PID`): the snapshot then holds
//! only what was allocated since that moment. An optional section: `decode`
//! skips it, readers that want it call [`decode_tracing_start`] on the same
//! bytes (docs/FORMAT.md). A process traced from its start has none.

use crate::varint::{put_u64, Reader};
use crate::FormatError;

pub const TAG: u8 = 0x09;

/// How tracing began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartedBy {
    /// `memtrace attach`: libtrace.so was loaded into the running process.
    Attach,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracingStart {
    pub by: StartedBy,
    /// Wall clock (ns since the Unix epoch) when tracing began.
    pub began_ns: u64,
    /// Wall clock when the process started; 0 if unknown.
    pub process_start_ns: u64,
}

impl TracingStart {
    /// Nanoseconds from the process's start to the start of tracing, if the
    /// process's start is known.
    pub fn after_start_ns(&self) -> Option<u64> {
        (self.process_start_ns != 0).then(|| self.began_ns.saturating_sub(self.process_start_ns))
    }
}

pub fn encode_tracing_start(t: &TracingStart) -> Vec<u8> {
    let mut p = Vec::with_capacity(24);
    p.push(match t.by {
        StartedBy::Attach => 1,
    });
    put_u64(&mut p, t.began_ns);
    put_u64(&mut p, t.process_start_ns);
    p
}

/// Trailing bytes are allowed: a later minor version may add fields.
fn decode_payload(r: &mut Reader) -> Result<TracingStart, FormatError> {
    let by = match r.u8()? {
        1 => StartedBy::Attach,
        _ => return Err(FormatError::Corrupt("unknown way tracing began")),
    };
    Ok(TracingStart {
        by,
        began_ns: r.u64()?,
        process_start_ns: r.u64()?,
    })
}

/// The TRACING_START section of the dump `bytes`, if it has one.
/// The section's payload alone (a history's START record carries it too).
pub fn decode_tracing_start_payload(payload: &[u8]) -> Result<TracingStart, FormatError> {
    let mut r = Reader::new(payload);
    decode_payload(&mut r)
}

pub fn decode_tracing_start(bytes: &[u8]) -> Result<Option<TracingStart>, FormatError> {
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
            found = Some(decode_payload(&mut Reader::new(payload))?);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode, encode_full, Header, Snapshot};

    fn snap() -> Snapshot {
        Snapshot {
            header: Header {
                frame_limit: 8,
                ..Header::default()
            },
            ..Snapshot::default()
        }
    }

    #[test]
    fn round_trip_and_absent() {
        let t = TracingStart {
            by: StartedBy::Attach,
            began_ns: 5_000_000_000,
            process_start_ns: 2_000_000_000,
        };
        let bytes = encode_full(&snap(), None, Some(&t));
        assert_eq!(decode(&bytes).unwrap(), snap());
        assert_eq!(decode_tracing_start(&bytes).unwrap(), Some(t.clone()));
        assert_eq!(t.after_start_ns(), Some(3_000_000_000));
        assert_eq!(decode_tracing_start(&encode(&snap())).unwrap(), None);
    }

    #[test]
    fn bad_payload_is_an_error_not_a_panic() {
        let t = TracingStart {
            by: StartedBy::Attach,
            began_ns: 1,
            process_start_ns: 0,
        };
        assert_eq!(t.after_start_ns(), None);
        let mut p = encode_tracing_start(&t);
        p[0] = 7;
        assert!(decode_payload(&mut Reader::new(&p)).is_err());
        assert!(decode_payload(&mut Reader::new(&p[..1])).is_err());
    }
}
