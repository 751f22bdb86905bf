//! Custom allocators (issue 16): `memtrace.h`'s `memtrace_track` and
//! `memtrace_untrack` make a pool's objects blocks of their own domain.
//!
//! pool_track.c knows its answer: in domain 7, 8 objects of 48 bytes from
//! make_widgets (two of ten given back), 5 of 40 from make_names (two at
//! the given-back addresses), one of 72 from lose_one whose pointer is
//! dropped; in domain 0 its 65536-byte chunk and a 333-byte block.
//!
//! * the snapshot's groups, per domain, exactly;
//! * `top`/`traceback` show the objects at the lines that called the pool
//!   (`--system pool_alloc` drops the pool's own frame), `--domain 7` keeps
//!   only them, `--domain 0` / `--exclude-domain 7` only malloc's blocks;
//! * `stats` lists the domain apart from the heap's live blocks;
//! * the same binary without memtrace: the weak symbols are NULL (-2);
//!   code built -fno-pie cannot be reached (the header's build rule);
//! * the leak check: the dropped object is definitely lost, in domain 7;
//! * exports: CPython's `DomainFilter` on the pickle, `go tool pprof
//!   -tagfocus=domain=7` on the profile;
//! * track_churn.c: a program whose events are all tracks and untracks
//!   (the writer must take its cuts for them too) ends, exact.

use memtrace_tests::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const SRC: &str = "pool_track.c";

/// Runs pool_track traced; its directory (removed when dropped) and exit
/// snapshot.
fn traced(opt: Opt, name: &str) -> (TestDir, PathBuf) {
    ensure_built();
    let dir = fresh_dir(name);
    let prefix = dir.join("p");
    let out = Run::new(prog("pool_track", opt), &dir).out(&prefix).run();
    out.assert_ok();
    assert_eq!(
        out.plain_stdout().trim(),
        "track=0 untrack=0 track0=-1",
        "recorded, and domain 0 refused"
    );
    let snap = snap_path(&prefix, "exit");
    (dir, snap)
}

/// `file:line` of a marker of pool_track.c, as `top` prints it.
fn at(marker: &str) -> String {
    format!("{}:{}", source(SRC).display(), line_of(SRC, marker))
}

/// The snapshot's live groups per domain: (size, count) summed.
fn groups_by_domain(snap: &Path) -> BTreeMap<u32, BTreeMap<u64, u64>> {
    let s = load(snap);
    let mut m: BTreeMap<u32, BTreeMap<u64, u64>> = BTreeMap::new();
    for (i, g) in s.traces.iter().enumerate() {
        let d = s.domains.get(i).copied().unwrap_or(0);
        *m.entry(d).or_default().entry(g.size).or_default() += g.count;
    }
    m
}

#[test]
fn pool_objects_are_blocks_of_their_domain_at_their_call_sites() {
    for opt in BOTH {
        let (_dir, snap) = traced(opt, "domains_sites");
        let snap_s = snap.to_str().unwrap();
        let by = groups_by_domain(&snap);
        assert_eq!(
            by[&7],
            BTreeMap::from([(40, 5), (48, 8), (72, 1)]),
            "the pool's objects, exactly"
        );
        let heap = &by[&0];
        assert_eq!((heap.get(&65536), heap.get(&333)), (Some(&1), Some(&1)));
        for size in [40, 48, 72] {
            assert!(!heap.contains_key(&size), "no {size}-byte heap block");
        }
        assert_eq!(by.len(), 2, "domains 0 and 7 only");

        // By the innermost frame, the objects are the pool's line; without
        // the pool's frame, the lines that called it.
        let top = memtrace_ok(&["top", snap_s, "--domain", "7"]);
        assert_eq!(
            top.lines().skip(1).collect::<Vec<_>>(),
            vec![format!(
                "{}: size=656 B, count=14, average=47 B",
                at("POOL TRACK")
            )]
        );
        let sites = memtrace_ok(&["top", snap_s, "--domain", "7", "--system", "pool_alloc"]);
        assert_eq!(
            sites.lines().skip(1).collect::<Vec<_>>(),
            vec![
                format!("{}: size=384 B, count=8, average=48 B", at("SITE widgets")),
                format!("{}: size=200 B, count=5, average=40 B", at("SITE names")),
                format!("{}: size=72 B, count=1, average=72 B", at("SITE lost")),
            ]
        );
        // The traceback of the biggest group: the pool's line, then its caller's.
        let tb = memtrace_ok(&["traceback", snap_s, "--domain", "7"]);
        let line = |m: &str| format!("line {}", line_of(SRC, m));
        let (pool, widgets) = (
            tb.find(&line("POOL TRACK")).expect("pool line"),
            tb.find(&line("SITE widgets")).expect("call site"),
        );
        assert!(pool < widgets, "{tb}");
        assert!(tb.starts_with("8 memory blocks: 0.4 KiB"), "{tb}");

        // Domain 0: malloc's blocks only, however asked.
        let heap_top = memtrace_ok(&["top", snap_s, "--domain", "0", "--limit", "50"]);
        assert_eq!(
            heap_top,
            memtrace_ok(&["top", snap_s, "--exclude-domain", "7", "--limit", "50"])
        );
        assert!(heap_top.contains(&format!("{}: size=64.0 KiB, count=1", at("SITE chunk"))));
        assert!(heap_top.contains(&format!("{}: size=333 B, count=1", at("SITE heap"))));
        assert!(!heap_top.contains(&at("POOL TRACK")), "{heap_top}");
        // Everything: both.
        let all = memtrace_ok(&["top", snap_s, "--limit", "50"]);
        assert!(all.contains(&at("POOL TRACK")) && all.contains(&at("SITE chunk")));

        let stats = memtrace_ok(&["stats", snap_s]);
        assert!(
            stats.contains("Domain 7:       14 objects (656 B, 656 B) from 3 stacks"),
            "{stats}"
        );
        let live = stats
            .lines()
            .find(|l| l.starts_with("Live blocks:"))
            .unwrap();
        let header = load(&snap).header;
        assert!(
            live.contains(&format!("{} B)", header.traced_bytes)),
            "the heap's live blocks are the header's traced bytes: {live}"
        );
    }
}

#[test]
fn without_memtrace_the_program_runs_unchanged() {
    ensure_built();
    for opt in BOTH {
        let dir = fresh_dir("domains_untraced");
        let out = Run::new(prog("pool_track", opt), &dir).untraced().run();
        out.assert_ok();
        assert_eq!(out.plain_stdout().trim(), "track=-2 untrack=-2 track0=-2");
    }
    // Code built -fno-pie: the weak reference was resolved to 0 at link
    // time, LD_PRELOAD cannot fill it.
    let dir = fresh_dir("domains_nopie");
    let out = Run::new(prog("nopie_track", Opt::O2), &dir)
        .out(dir.join("n"))
        .run();
    out.assert_ok();
    assert_eq!(out.plain_stdout().trim(), "track=-2");
}

#[test]
fn the_dropped_pool_object_is_definitely_lost_in_its_domain() {
    let (_dir, snap) = traced(Opt::O2, "domains_leaks");
    let snap_s = snap.to_str().unwrap();
    let text = memtrace_ok(&["leaks", snap_s, "--domain", "7", "--show", "all"]);
    let record = text
        .lines()
        .find(|l| l.contains("definitely lost"))
        .expect("a definite record");
    assert!(
        record.starts_with("72 bytes in 1 blocks are definitely lost in loss record 1 of 3")
            && record.ends_with("(domain 7)"),
        "{text}"
    );
    let after = &text[text.find(record).unwrap()..];
    assert!(after.contains(&format!("line {}", line_of(SRC, "SITE lost"))));
    assert!(
        text.contains("definitely lost: 72 bytes in 1 blocks"),
        "{text}"
    );
    assert!(
        text.contains("still reachable: 584 bytes in 13 blocks"),
        "{text}"
    );
    // The heap's own records: the chunk is reachable, nothing lost.
    let heap = memtrace_ok(&["leaks", snap_s, "--domain", "0"]);
    assert!(
        heap.contains("definitely lost: 0 bytes in 0 blocks"),
        "{heap}"
    );
}

#[test]
fn exports_carry_the_domain() {
    let (_dir, snap) = traced(Opt::O2, "domains_export");
    let dir = snap.parent().unwrap();
    let pickle = dir.join("p.pickle");
    memtrace_ok(&[
        "export",
        snap.to_str().unwrap(),
        "--format",
        "tracemalloc",
        "-o",
        pickle.to_str().unwrap(),
    ]);
    let script = "import sys, tracemalloc\n\
        s = tracemalloc.Snapshot.load(sys.argv[1])\n\
        for f in ([tracemalloc.DomainFilter(True, 7)], [tracemalloc.DomainFilter(False, 7)]):\n\
        \x20   t = s.filter_traces(f).traces\n\
        \x20   print(sum(x.size for x in t), len(t), sorted(set(x.domain for x in t)))\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&pickle)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines[0], "656 14 [7]");
    let header = load(&snap).header;
    assert!(
        lines[1].starts_with(&format!("{} ", header.traced_bytes)) && lines[1].ends_with(" [0]"),
        "{lines:?}"
    );

    let profile = dir.join("p.pb.gz");
    memtrace_ok(&[
        "export",
        snap.to_str().unwrap(),
        "--format",
        "pprof",
        "-o",
        profile.to_str().unwrap(),
    ]);
    let out = Command::new("go")
        .args([
            "tool",
            "pprof",
            "-top",
            "-lines",
            "-tagfocus=domain=7",
            "-sample_index=inuse_space",
            "-unit=B",
            "-nodefraction=0",
        ])
        .arg(&profile)
        .output()
        .expect("`go` is missing: scripts/install-deps installs golang-go");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Showing nodes accounting for 656B"), "{text}");
    assert!(
        text.contains(&format!("make_names {}", at("SITE names"))),
        "{text}"
    );
}

#[test]
fn a_program_that_only_tracks_runs_through_and_is_exact() {
    ensure_built();
    let dir = fresh_dir("domains_churn");
    let prefix = dir.join("c");
    let out = Run::new(prog("track_churn", Opt::O2), &dir)
        .out(&prefix)
        .timeout(50)
        .run();
    out.assert_ok();
    assert_eq!(out.plain_stdout().trim(), "done");
    let by = groups_by_domain(&snap_path(&prefix, "exit"));
    assert_eq!(by.get(&3), Some(&BTreeMap::from([(12, 1000)])));
}
