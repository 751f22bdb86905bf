//! The history reader on arbitrary bytes: every record read, applied and
//! turned into a snapshot, which must then encode and decode as a valid
//! snapshot. Nothing may panic, hang or allocate without bound.
//!
//! An input starting with 0 is framed first: a valid start record, then
//! each chunk (2-byte length, kind, payload) as a record with a good CRC
//! and deflated payload, so that the fuzzer reaches the points' decoding
//! and checks instead of stopping at a checksum it cannot guess.
//! Run: `cd fuzz && cargo +nightly fuzz run history`
#![no_main]

use libfuzzer_sys::fuzz_target;
use memtrace_format::history::{encode_start, file_header, HistoryReader, HistoryState, Start};
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((&0, rest)) => read(&framed(rest)),
        _ => read(data),
    }
});

fn read(data: &[u8]) {
    let Ok(mut rd) = HistoryReader::new(data) else {
        return;
    };
    let mut st = HistoryState::default();
    while let Ok(Some(rec)) = rd.next_record() {
        if st.apply(rec).is_err() {
            break;
        }
        if let Some(s) = st.snapshot() {
            // What the reader accepted is a snapshot every command can take.
            let bytes = memtrace_format::encode(&s);
            if let Err(e) = memtrace_format::decode(&bytes) {
                panic!("a history point the reader accepted is not a valid snapshot: {e}");
            }
        }
    }
}

/// A history whose records are `data`'s chunks, framed as the writer does.
fn framed(mut data: &[u8]) -> Vec<u8> {
    let mut out = file_header().to_vec();
    out.extend(encode_start(&Start {
        frame_limit: 256,
        ..Default::default()
    }));
    while data.len() >= 3 {
        let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
        let (chunk, rest) = data[2..].split_at(n);
        data = rest;
        let Some((&kind, payload)) = chunk.split_first() else {
            continue;
        };
        let mut enc = flate2::write::DeflateEncoder::new(vec![kind], flate2::Compression::fast());
        let _ = enc.write_all(payload);
        let body = enc.finish().unwrap_or_default();
        out.extend((body.len() as u32).to_le_bytes());
        out.extend(crc32fast::hash(&body).to_le_bytes());
        out.extend(body);
    }
    out
}
