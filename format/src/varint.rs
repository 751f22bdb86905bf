//! LEB128 varints and zigzag, the only integer encoding in the dump.
//!
//! Written by hand: it is twenty lines, and the reader must reject overlong
//! and overflowing encodings with our own error type rather than a crate's.

use crate::FormatError;

/// Appends `v` as an unsigned LEB128 varint (1..=10 bytes).
#[inline]
pub fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Maps signed to unsigned so that small magnitudes stay short.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A cursor over untrusted bytes. Every read is bounds-checked and returns
/// `FormatError::Truncated` rather than panicking.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn u8(&mut self) -> Result<u8, FormatError> {
        let b = *self.buf.get(self.pos).ok_or(FormatError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if n > self.remaining() {
            return Err(FormatError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u64(&mut self) -> Result<u64, FormatError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let part = (b & 0x7f) as u64;
            if i == 9 && b > 1 {
                return Err(FormatError::Corrupt("varint overflows 64 bits"));
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(FormatError::Corrupt("overlong varint"));
                }
                return Ok(v);
            }
        }
        Err(FormatError::Corrupt("varint too long"))
    }

    /// A varint that must fit `max`; used for counts and small fields.
    pub fn bounded(&mut self, max: u64, what: &'static str) -> Result<u64, FormatError> {
        let v = self.u64()?;
        if v > max {
            return Err(FormatError::Corrupt(what));
        }
        Ok(v)
    }

    /// A count of items that each take at least `min_item_bytes` bytes: it can
    /// never exceed what is left, so a forged count cannot size an allocation.
    pub fn count(
        &mut self,
        min_item_bytes: usize,
        what: &'static str,
    ) -> Result<usize, FormatError> {
        let max = (self.remaining() / min_item_bytes.max(1)) as u64;
        Ok(self.bounded(max, what)? as usize)
    }

    /// Length-prefixed bytes.
    pub fn blob(&mut self) -> Result<&'a [u8], FormatError> {
        let n = self.bounded(self.remaining() as u64, "length past end of section")? as usize;
        self.bytes(n)
    }
}

pub fn put_blob(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_edges() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_u64(&mut b, v);
            assert_eq!(Reader::new(&b).u64().unwrap(), v);
        }
        for v in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn rejects_overlong_and_overflow() {
        assert!(Reader::new(&[0x80, 0x00]).u64().is_err());
        assert!(Reader::new(&[0xff; 10]).u64().is_err());
        assert!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02])
                .u64()
                .is_err()
        );
        assert!(Reader::new(&[0x80]).u64().is_err());
    }

    #[test]
    fn count_is_bounded_by_remaining_bytes() {
        let mut b = Vec::new();
        put_u64(&mut b, 1 << 40);
        assert!(Reader::new(&b).count(1, "n").is_err());
    }
}
