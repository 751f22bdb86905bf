//! The symbolizer on an untrusted module file: the input is written to a
//! temporary file, a snapshot whose only module is that file (base 0, one
//! segment over the whole address space, no build-id to check) points at
//! addresses inside it — its symbols' starts and middles when the input
//! parses as an object file, and a few fixed offsets — and is symbolized
//! and summarised. Corrupt ELF, DWARF, symbol tables, debug links,
//! compressed sections: nothing may panic, hang or allocate without bound.
//! Run: `cd fuzz && cargo +nightly fuzz run module ../analyzer/tests/data/fuzz-regressions/module`
#![no_main]

use libfuzzer_sys::fuzz_target;
use memtrace::snapshot::{symbolize_dump, FrameRules, FrameTable};
use memtrace::stats::{statistics, KeyType};
use memtrace::symbolize::Symbolizer;
use memtrace_format::{Header, Module, Segment, Snapshot, Stack, TraceGroup};
use object::{Object, ObjectSection, ObjectSymbol};

fn addresses(data: &[u8]) -> Vec<u64> {
    let mut v: Vec<u64> = vec![1, 0x1001, 0x1139, 0x1150, 0x1180, 0x2000, 0x401136];
    if let Ok(obj) = object::File::parse(data) {
        for s in obj.symbols().chain(obj.dynamic_symbols()).take(24) {
            let a = s.address();
            v.extend([a.wrapping_add(1), a.wrapping_add(s.size() / 2 + 1)]);
        }
        if let Some(text) = obj.section_by_name(".text") {
            let (a, n) = (text.address(), text.size());
            for i in 0..8u64 {
                v.push(a.wrapping_add(n / 8 * i + 1));
            }
        }
    }
    // and a few chosen by the input's last bytes
    for c in data.rchunks(4).take(4) {
        let mut b = [0u8; 4];
        b[..c.len()].copy_from_slice(c);
        v.push(u32::from_le_bytes(b) as u64);
    }
    v.retain(|&a| a != 0);
    v.truncate(256);
    v
}

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("memtrace-fuzz-module-{}.elf", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let addrs = addresses(data);
    let stacks: Vec<Stack> = addrs
        .chunks(8)
        .enumerate()
        .map(|(i, c)| Stack { id: i as u64 + 1, frames: c.to_vec(), truncated: false })
        .collect();
    let traces = stacks.iter().map(|s| TraceGroup { stack: s.id, size: 16 * s.id, count: 1 }).collect();
    let dump = Snapshot {
        header: Header {
            index: 1,
            pid: 1,
            frame_limit: 256,
            exe: path.to_str().unwrap().as_bytes().to_vec(),
            ..Header::default()
        },
        modules: vec![Module {
            path: path.to_str().unwrap().as_bytes().to_vec(),
            base: 0,
            build_id: vec![],
            unloaded: false,
            segments: vec![Segment { vaddr: 0, memsz: 1 << 48, file_offset: 0, flags: 5 }],
        }],
        stacks,
        traces,
        ..Default::default()
    };
    let mut table = FrameTable::new();
    let mut sym = Symbolizer::new();
    for keep_all in [false, true] {
        let rules = FrameRules { keep_all, ..Default::default() };
        let snap = symbolize_dump("fuzz", &dump, &mut table, &mut sym, &rules);
        for key in [KeyType::Lineno, KeyType::Function, KeyType::Traceback] {
            for s in statistics(&snap, &table, key, false).unwrap() {
                let _ = s.format(&table);
            }
        }
    }
    // The symbolizer survives a reader panic (one warning, frames without
    // lines), but each is a bug to know about: report it as a crash here.
    if let Some(w) = sym.warnings.iter().find(|w| w.contains("the reader failed")) {
        panic!("caught reader panic: {w}");
    }
});
