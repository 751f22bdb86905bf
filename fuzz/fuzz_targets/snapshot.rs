//! The snapshot reader as `memtrace` runs it on an untrusted file: decode,
//! symbolize (module paths come from the input, so only module+offset
//! frames result unless a path names a real ELF), then every statistic.
//! Must never panic, hang or allocate beyond the input's size.
//! Run: `cd fuzz && cargo +nightly fuzz run snapshot ../analyzer/tests/data/fuzz-regressions -- -max_total_time=60`
#![no_main]

use libfuzzer_sys::fuzz_target;
use memtrace::snapshot::{symbolize_dump, FrameRules, FrameTable};
use memtrace::stats::{compare_to, statistics, KeyType};
use memtrace::symbolize::Symbolizer;

fuzz_target!(|data: &[u8]| {
    check(data);
    // The CRC stops almost every mutation at the envelope: also try the
    // input re-sealed with a valid END section, to reach the section decoders.
    let mut sealed = data.to_vec();
    let crc = crc32fast::hash(&sealed);
    sealed.push(0xff);
    sealed.push(4);
    sealed.extend_from_slice(&crc.to_le_bytes());
    check(&sealed);
});

fn check(data: &[u8]) {
    let Ok(dump) = memtrace_format::decode(data) else { return };
    let mut table = FrameTable::new();
    let mut sym = Symbolizer::new();
    for keep_all in [false, true] {
        let rules = FrameRules { keep_all, ..Default::default() };
        let snap = symbolize_dump("fuzz", &dump, &mut table, &mut sym, &rules);
        for key in [KeyType::Lineno, KeyType::Filename, KeyType::Traceback, KeyType::Function] {
            for s in statistics(&snap, &table, key, false).unwrap() {
                let _ = s.format(&table);
            }
        }
        for d in compare_to(&snap, &snap, &table, KeyType::Lineno, true).unwrap() {
            let _ = d.format(&table);
        }
    }
}
