//! Cross-check against valgrind's DHAT on one deterministic program.
//!
//! DHAT replaces malloc for every caller, like the preload's hooks, so on
//! the same program both must count the same calls: libc's own allocations
//! (the stdout buffer) included, the profiler's own excluded. Compared:
//! * DHAT "Total: N bytes in M blocks" blocks  == header alloc_count at exit;
//! * DHAT "At t-gmax: N bytes"                  == header peak_bytes;
//! * DHAT "At t-end: N bytes in M blocks"       == the exit snapshot's live
//!   bytes and blocks (valgrind run with --run-libc-freeres=no, so libc does
//!   not free its buffers after the program's end, as it does not natively).

use memtrace_tests::*;

#[test]
fn totals_match_valgrind_dhat() {
    let exe = prog("dhat_prog", Opt::O2);
    let dir = fresh_dir("dhat");
    let Some(v) = run_dhat(&exe, &dir) else {
        eprintln!("SKIPPED totals_match_valgrind_dhat: valgrind is not installed (apt-get install valgrind)");
        return;
    };
    assert_eq!(v.stdout, "done\n");
    let (total_bytes, total_blocks) = parse_dhat(&v.stderr, "Total:");
    let (gmax_bytes, _) = parse_dhat(&v.stderr, "At t-gmax:");
    let (end_bytes, end_blocks) = parse_dhat(&v.stderr, "At t-end:");
    assert!(
        total_blocks >= 5420 && total_bytes >= 5_127_000,
        "DHAT saw fewer than the program's 5420 calls"
    );

    let prefix = dir.join("k");
    let out = Run::new(&exe, &dir).out(&prefix).run();
    out.assert_ok();
    assert_eq!(out.stdout, "done\n");
    let s = load(snap_path(&prefix, "exit"));
    s.check_consistent("exit");
    let h = &s.header;
    assert_eq!(
        h.alloc_count, total_blocks,
        "allocations: memtrace {} vs DHAT {total_blocks}",
        h.alloc_count
    );
    assert_eq!(
        h.peak_bytes, gmax_bytes,
        "peak: memtrace {} vs DHAT t-gmax {gmax_bytes}",
        h.peak_bytes
    );
    assert_eq!(
        (s.total_bytes(), s.total_count()),
        (end_bytes, end_blocks),
        "live at exit (bytes, blocks): memtrace vs DHAT t-end; {}",
        s.describe()
    );
}
