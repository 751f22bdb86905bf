//! Writes a synthetic snapshot for benchmarking the analyzer:
//! `synth BINARY OUT [STACKS] [BLOCKS]` — STACKS unique stacks (default
//! 50 000) of 20 return addresses inside BINARY's functions (mapped at
//! base 0), BLOCKS live blocks (default 1 000 000) spread over them.

use memtrace_format::{encode, Header, Module, Segment, Snapshot, Stack, TraceGroup};
use object::{Object, ObjectSegment, ObjectSymbol};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: synth BINARY OUT [STACKS] [BLOCKS]");
        std::process::exit(2);
    }
    let stacks_n: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(50_000);
    let blocks: u64 = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(1_000_000);
    let data = std::fs::read(&args[1]).unwrap();
    let obj = object::File::parse(&*data).unwrap();
    let funcs: Vec<(u64, u64)> = obj
        .symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text && s.size() > 16)
        .map(|s| (s.address(), s.size()))
        .collect();
    assert!(!funcs.is_empty(), "no function symbols");
    let segments = obj
        .segments()
        .map(|s| Segment {
            vaddr: s.address(),
            memsz: s.size(),
            file_offset: s.file_range().0,
            flags: match s.flags() {
                object::SegmentFlags::Elf { p_flags, .. } => p_flags.0,
                _ => 0,
            },
        })
        .collect();
    let mut x: u64 = 0x2545f4914f6cdd1d;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // a pool of call sites, shared between stacks as in real programs
    let sites: Vec<u64> = (0..stacks_n * 2)
        .map(|_| {
            let (a, s) = funcs[(rnd() % funcs.len() as u64) as usize];
            a + 1 + rnd() % (s - 1)
        })
        .collect();
    let stacks: Vec<Stack> = (0..stacks_n)
        .map(|i| Stack {
            id: i as u64 + 1,
            frames: (0..20)
                .map(|_| sites[(rnd() % sites.len() as u64) as usize])
                .collect(),
            truncated: false,
        })
        .collect();
    let groups = (stacks_n as u64 * 4).min(blocks);
    let traces: Vec<TraceGroup> = (0..groups)
        .map(|g| TraceGroup {
            stack: g % stacks_n as u64 + 1,
            size: 8 + (rnd() % 512),
            count: blocks / groups + u64::from(g < blocks % groups),
        })
        .collect();
    let snap = Snapshot {
        header: Header {
            index: 1,
            pid: 1,
            frame_limit: 32,
            alloc_count: blocks,
            cmdline: vec![args[1].as_bytes().to_vec()],
            exe: args[1].as_bytes().to_vec(),
            ..Header::default()
        },
        modules: vec![Module {
            path: args[1].as_bytes().to_vec(),
            base: 0,
            build_id: obj.build_id().ok().flatten().unwrap_or(&[]).to_vec(),
            unloaded: false,
            segments,
        }],
        stacks,
        traces,
        ..Default::default()
    };
    std::fs::write(&args[2], encode(&snap)).unwrap();
}
