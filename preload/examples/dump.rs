//! Debug aid: prints a snapshot file as text.
//! `cargo run --release -p memtrace-preload --example dump -- FILE [-v]`
//! (-v also prints every stack's frames). The real reader is the analyzer.

fn main() {
    // Die quietly on a closed pipe (`dump FILE | head`) like other tools.
    // SAFETY: resetting a signal disposition before anything else runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: dump FILE [-v]");
        std::process::exit(2);
    };
    let verbose = args.iter().any(|a| a == "-v");
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(1)
    });
    let s = memtrace_format::decode(&bytes).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(1)
    });
    let h = &s.header;
    println!(
        "kind={:?} index={} pid={} seq={} frames={} traced={} peak={} allocs={} frees={}",
        h.kind,
        h.index,
        h.pid,
        h.seq,
        h.frame_limit,
        h.traced_bytes,
        h.peak_bytes,
        h.alloc_count,
        h.free_count
    );
    let cmd: Vec<String> = h
        .cmdline
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    println!("cmdline={cmd:?} exe={}", String::from_utf8_lossy(&h.exe));
    println!(
        "modules={} stacks={} groups={}",
        s.modules.len(),
        s.stacks.len(),
        s.traces.len()
    );
    if verbose {
        for m in &s.modules {
            println!(
                "  module {} base={:#x} build_id={} unloaded={} segs={}",
                String::from_utf8_lossy(&m.path),
                m.base,
                m.build_id
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
                m.unloaded,
                m.segments.len()
            );
        }
    }
    let mut traces = s.traces.clone();
    traces.sort_by_key(|t| std::cmp::Reverse(t.size * t.count));
    for t in &traces {
        println!("group stack={} size={} count={}", t.stack, t.size, t.count);
        if verbose {
            if let Some(st) = s.stacks.iter().find(|st| st.id == t.stack) {
                for f in &st.frames {
                    let m = s.modules.iter().find(|m| m.contains(*f));
                    match m {
                        Some(m) => println!(
                            "    {:#x} {}+{:#x}",
                            f,
                            String::from_utf8_lossy(&m.path),
                            f - m.base
                        ),
                        None => println!("    {f:#x} ?"),
                    }
                }
                if st.truncated {
                    println!("    (truncated)");
                }
            }
        }
    }
}
