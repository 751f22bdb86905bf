//! The whole-run views of format 1.2 through the real `memtrace` binary:
//! `top`/`traceback --peak`, `top --allocated`/`--temporary`, `summary`, and
//! `stats`' new lines, on synthetic snapshots with known numbers whose
//! stacks point into a C program compiled here (so every label is a real
//! `file:line`), sampled and not, and on a 1.1 file without those sections.

use memtrace_format::{
    encode, Header, MemoryUse, Peak, SnapshotKind, Stack, StackTotals, TimePoint, Timeline,
    TraceGroup, WholeRun,
};
use serde_json::Value;
use std::path::{Path, PathBuf};

mod common;
use common::*;

fn run_bin(args: &[&str]) -> Out {
    run(args)
}

/// Line numbers matter: the tests name them.
const SRC: &str = r#"#include <stdlib.h>

__attribute__((noinline)) void *peak_site(size_t n) { return malloc(n); }
__attribute__((noinline)) void *churn_site(size_t n) { return malloc(n); }
__attribute__((noinline)) void *temp_site(size_t n) { return calloc(1, n); }
__attribute__((noinline)) void *leak_site(size_t n) { return malloc(n); }

int main(int argc, char **argv) {
    void *p = peak_site(argc);
    void *c = churn_site(argc);
    void *d = churn_site(argc + 1);
    void *t = temp_site(argc);
    void *l = leak_site(argc);
    free(p); free(c); free(d); free(t);
    return l == 0 && argv != 0;
}
"#;

struct Fixture {
    dir: PathBuf,
    exe: PathBuf,
    /// The source file's path, as the labels print it.
    src: String,
    /// Stacks 1..=5: peak_site, churn_site (from line 10), temp_site,
    /// leak_site, churn_site (from line 11); each [site, main].
    stacks: Vec<Vec<u64>>,
}

fn fixture(tag: &str) -> Fixture {
    let dir = tmpdir(tag);
    let (srcp, exe) = compile_c(&dir, "prog", SRC, &["-g", "-O0", "-fno-omit-frame-pointer"]);
    let site = |f: &str, t: &str| rets(&exe, f, t)[0];
    let churn_calls = rets(&exe, "main", "churn_site");
    assert_eq!(churn_calls.len(), 2);
    let stacks = vec![
        vec![site("peak_site", "malloc"), site("main", "peak_site")],
        vec![site("churn_site", "malloc"), churn_calls[0]],
        vec![site("temp_site", "calloc"), site("main", "temp_site")],
        vec![site("leak_site", "malloc"), site("main", "leak_site")],
        vec![site("churn_site", "malloc"), churn_calls[1]],
    ];
    Fixture {
        src: srcp.to_str().unwrap().to_string(),
        dir,
        exe,
        stacks,
    }
}

const T0: u64 = 1_700_000_000_000_000_000;
const MIB: u64 = 1 << 20;

fn header(f: &Fixture, rate: u64, kind: SnapshotKind) -> Header {
    Header {
        kind,
        index: if kind == SnapshotKind::Exit { 0 } else { 2 },
        pid: 4242,
        time_ns: T0 + 2_500_000_000,
        seq: 3040,
        frame_limit: 32,
        traced_bytes: 3064,
        peak_bytes: 3_189_688,
        alloc_count: 1519,
        free_count: 1515,
        sample_rate: rate,
        cmdline: vec![b"./prog".to_vec(), b"--n".to_vec(), b"3".to_vec()],
        exe: f.exe.to_str().unwrap().as_bytes().to_vec(),
        malloc_owner: Vec::new(),
    }
}

/// The known run: live now 1×64 B at peak_site and 3×1000 B at leak_site;
/// at the peak (3 189 688 B, 1.25 s after the start) 3×1 MiB, 10×4 KiB
/// (churn from line 10) and the 3 leaks; totals per stack below.
fn whole_run() -> WholeRun {
    let tot =
        |stack, allocs, alloc_bytes, frees, freed_bytes, temporary, temporary_bytes| StackTotals {
            stack,
            allocs,
            alloc_bytes,
            frees,
            freed_bytes,
            temporary,
            temporary_bytes,
        };
    WholeRun {
        peak: Some(Peak {
            time_ns: T0 + 1_250_000_000,
            event: 2021,
            traced_bytes: 3 * MIB + 40960 + 3000,
            groups: vec![
                TraceGroup {
                    stack: 1,
                    size: MIB,
                    count: 3,
                },
                TraceGroup {
                    stack: 2,
                    size: 4096,
                    count: 10,
                },
                TraceGroup {
                    stack: 4,
                    size: 1000,
                    count: 3,
                },
            ],
        }),
        totals: vec![
            tot(1, 6, 5 * MIB + 64, 5, 5 * MIB, 0, 0),
            tot(2, 1000, 4_096_000, 1000, 4_096_000, 200, 819_200),
            tot(3, 500, 50_123, 500, 50_123, 500, 50_123),
            tot(4, 3, 3000, 0, 0, 0, 0),
            tot(5, 10, 40960, 10, 40960, 10, 40960),
        ],
        timeline: Some(Timeline {
            start_ns: T0,
            interval_ns: 10_000_000,
            points: vec![
                TimePoint {
                    time_ns: T0 + 1_250_000_000,
                    traced_bytes: 3_189_688,
                    rss_bytes: 9 * MIB,
                },
                TimePoint {
                    time_ns: T0 + 2_500_000_000,
                    traced_bytes: 3064,
                    rss_bytes: 10 * MIB,
                },
            ],
            snapshots: vec![memtrace_format::SnapshotMark {
                index: 1,
                time_ns: T0 + 1_000_000_000,
            }],
        }),
        memory: Some(MemoryUse {
            rss_bytes: 10 * MIB,
            rss_peak_bytes: 12 * MIB,
            heap_arena_bytes: 4 * MIB,
            heap_free_bytes: MIB,
            heap_mmap_bytes: 0,
        }),
    }
}

fn write(f: &Fixture, name: &str, rate: u64, kind: SnapshotKind, run: WholeRun) -> String {
    let s = memtrace_format::Snapshot {
        header: header(f, rate, kind),
        modules: vec![module_of(&f.exe, 0)],
        stacks: f
            .stacks
            .iter()
            .enumerate()
            .map(|(i, fr)| Stack {
                id: i as u64 + 1,
                frames: fr.clone(),
                truncated: false,
            })
            .collect(),
        domains: Vec::new(),
        traces: vec![
            TraceGroup {
                stack: 1,
                size: 64,
                count: 1,
            },
            TraceGroup {
                stack: 4,
                size: 1000,
                count: 3,
            },
        ],
        run,
    };
    let p = f.dir.join(name);
    std::fs::write(&p, encode(&s)).unwrap();
    p.to_str().unwrap().to_string()
}

/// `memtrace ARGS` must succeed with nothing on stderr; its stdout.
fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
    assert_eq!(o.stderr, "", "{args:?}");
    o.stdout
}

/// The expected text, `{S}` standing for the source path.
fn text(f: &Fixture, lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| l.replace("{S}", &f.src) + "\n")
        .collect()
}

#[test]
fn top_peak_every_key() {
    let f = fixture("peak");
    let p = write(&f, "p.2.snap", 0, SnapshotKind::Signal, whole_run());
    assert_eq!(
        ok(&["top", &p, "--peak"]),
        text(
            &f,
            &[
                "[ Top 10 ] (at the peak of traced memory)",
                "{S}:3: size=3072 KiB, count=3, average=1024 KiB",
                "{S}:4: size=40.0 KiB, count=10, average=4096 B",
                "{S}:6: size=3000 B, count=3, average=1000 B",
            ]
        )
    );
    assert_eq!(
        ok(&["top", &p, "--peak", "--key", "filename"]),
        text(
            &f,
            &[
                "[ Top 10 ] (at the peak of traced memory)",
                "{S}:0: size=3115 KiB, count=16, average=195 KiB",
            ]
        )
    );
    assert_eq!(
        ok(&["top", &p, "--peak", "--key", "function", "--limit", "2"]),
        text(
            &f,
            &[
                "[ Top 2 ] (at the peak of traced memory)",
                "peak_site ({S}): size=3072 KiB, count=3, average=1024 KiB",
                "churn_site ({S}): size=40.0 KiB, count=10, average=4096 B",
            ]
        )
    );
    assert_eq!(
        ok(&["top", &p, "--peak", "--key", "traceback"]),
        text(
            &f,
            &[
                "[ Top 10 ] (at the peak of traced memory)",
                "{S}:3: size=3072 KiB, count=3, average=1024 KiB",
                "{S}:4: size=40.0 KiB, count=10, average=4096 B",
                "{S}:6: size=3000 B, count=3, average=1000 B",
            ]
        )
    );
    // cumulative: main's lines count too
    assert_eq!(
        ok(&["top", &p, "--peak", "--cumulative"]),
        text(
            &f,
            &[
                "[ Top 10 ] (at the peak of traced memory)",
                "{S}:9: size=3072 KiB, count=3, average=1024 KiB",
                "{S}:3: size=3072 KiB, count=3, average=1024 KiB",
                "{S}:10: size=40.0 KiB, count=10, average=4096 B",
                "{S}:4: size=40.0 KiB, count=10, average=4096 B",
                "{S}:13: size=3000 B, count=3, average=1000 B",
                "{S}:6: size=3000 B, count=3, average=1000 B",
            ]
        )
    );
    // filters: a function name, and a file:line of main with --all-frames
    assert_eq!(
        ok(&["top", &p, "--peak", "--exclude", "peak_site"]),
        text(
            &f,
            &[
                "[ Top 10 ] (at the peak of traced memory)",
                "{S}:4: size=40.0 KiB, count=10, average=4096 B",
                "{S}:6: size=3000 B, count=3, average=1000 B",
            ]
        )
    );
    let inc = format!("{}:13", f.src);
    assert_eq!(
        ok(&["top", &p, "--peak", "--include", &inc, "--all-frames"]),
        text(
            &f,
            &[
                "[ Top 10 ] (at the peak of traced memory)",
                "{S}:6: size=3000 B, count=3, average=1000 B",
            ]
        )
    );
    // the live view is untouched
    assert_eq!(
        ok(&["top", &p]),
        text(
            &f,
            &[
                "[ Top 10 ]",
                "{S}:6: size=3000 B, count=3, average=1000 B",
                "{S}:3: size=64 B, count=1, average=64 B",
            ]
        )
    );
    // pretty: display_top with the note
    let pretty = ok(&["top", &p, "--peak", "--pretty", "--limit", "1"]);
    assert_eq!(
        pretty,
        [
            "Top 1 lines (at the peak of traced memory)",
            "#1: wr-peak/prog.c:3: 3072.0 KiB",
            "    __attribute__((noinline)) void *peak_site(size_t n) { return malloc(n); }",
            "2 other: 42.9 KiB",
            "Total allocated size: 3114.9 KiB",
            "",
        ]
        .join("\n")
        .replace(
            "wr-peak",
            Path::new(&f.src)
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
        )
    );
}

#[test]
fn top_peak_json_and_traceback() {
    let f = fixture("peakjson");
    let p = write(&f, "p.2.snap", 0, SnapshotKind::Signal, whole_run());
    let v: Value = serde_json::from_str(&ok(&["top", &p, "--peak", "--json"])).unwrap();
    assert_eq!(v["view"], "peak");
    assert_eq!(v["peak"]["traced_bytes"], 3_189_688);
    assert_eq!(v["peak"]["event"], 2021);
    assert_eq!(v["peak"]["time_ns"], T0 + 1_250_000_000);
    assert_eq!(v["peak"]["seconds_after_start"], 1.25);
    assert_eq!(v["total"]["size"], 3_189_688);
    assert_eq!(v["total"]["count"], 16);
    assert_eq!(v["groups"], 3);
    assert_eq!(v["statistics"][0]["label"], format!("{}:3", f.src));
    assert_eq!(v["statistics"][0]["size"], 3 * MIB);
    assert_eq!(v["statistics"][0]["count"], 3);
    // the live view's JSON has neither field
    let v: Value = serde_json::from_str(&ok(&["top", &p, "--json"])).unwrap();
    assert!(v.get("view").is_none() && v.get("peak").is_none());
    assert_eq!(v["total"]["size"], 3064);

    assert_eq!(
        ok(&["traceback", &p, "--peak"]),
        text(
            &f,
            &[
                "3 memory blocks: 3072.0 KiB (at the peak of traced memory)",
                "  File \"{S}\", line 3",
                "    __attribute__((noinline)) void *peak_site(size_t n) { return malloc(n); }",
                "  File \"{S}\", line 9",
                "    void *p = peak_site(argc);",
            ]
        )
    );
    assert_eq!(
        ok(&["traceback", &p, "--peak", "--rank", "2", "--frames", "1"]),
        text(
            &f,
            &[
                "10 memory blocks: 40.0 KiB (at the peak of traced memory)",
                "  File \"{S}\", line 4",
                "    __attribute__((noinline)) void *churn_site(size_t n) { return malloc(n); }",
            ]
        )
    );
    let v: Value =
        serde_json::from_str(&ok(&["traceback", &p, "--peak", "--rank", "3", "--json"])).unwrap();
    assert_eq!(v["view"], "peak");
    assert_eq!(v["size"], 3000);
    assert_eq!(v["count"], 3);
    assert_eq!(v["frames"][1]["lineno"], 13);
    let o = run(&["traceback", &p, "--peak", "--rank", "4"]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr,
        format!("memtrace: {p}: no traceback of rank 4 (the snapshot has 3 groups)\n")
    );
}

#[test]
fn top_allocated_and_temporary() {
    let f = fixture("alloc");
    let p = write(&f, "p.exit.snap", 0, SnapshotKind::Exit, whole_run());
    assert_eq!(
        ok(&["top", &p, "--allocated"]),
        text(
            &f,
            &[
                "[ Top 10 ] (allocated since the start, freed or not)",
                "{S}:3: size=5120 KiB, count=6, average=853 KiB",
                "{S}:4: size=4040 KiB, count=1010, average=4096 B",
                "{S}:5: size=48.9 KiB, count=500, average=100 B",
                "{S}:6: size=3000 B, count=3, average=1000 B",
            ]
        )
    );
    assert_eq!(
        ok(&["top", &p, "--allocated", "--key", "traceback"]),
        text(
            &f,
            &[
                "[ Top 10 ] (allocated since the start, freed or not)",
                "{S}:3: size=5120 KiB, count=6, average=853 KiB",
                "{S}:4: size=4000 KiB, count=1000, average=4096 B",
                "{S}:5: size=48.9 KiB, count=500, average=100 B",
                "{S}:4: size=40.0 KiB, count=10, average=4096 B",
                "{S}:6: size=3000 B, count=3, average=1000 B",
            ]
        )
    );
    assert_eq!(
        ok(&["top", &p, "--allocated", "--cumulative", "--limit", "4"]),
        text(
            &f,
            &[
                "[ Top 4 ] (allocated since the start, freed or not)",
                "{S}:9: size=5120 KiB, count=6, average=853 KiB",
                "{S}:3: size=5120 KiB, count=6, average=853 KiB",
                "{S}:4: size=4040 KiB, count=1010, average=4096 B",
                "{S}:10: size=4000 KiB, count=1000, average=4096 B",
            ]
        )
    );
    assert_eq!(
        ok(&["top", &p, "--allocated", "--key", "filename"]),
        text(
            &f,
            &[
                "[ Top 10 ] (allocated since the start, freed or not)",
                "{S}:0: size=9212 KiB, count=1519, average=6210 B",
            ]
        )
    );
    assert_eq!(
        ok(&["top", &p, "--temporary"]),
        text(
            &f,
            &[
                "[ Top 10 ] (temporary allocations since the start)",
                "{S}:4: size=840 KiB, count=210, average=4096 B",
                "{S}:5: size=48.9 KiB, count=500, average=100 B",
            ]
        )
    );
    assert_eq!(
        ok(&["top", &p, "--temporary", "--key", "function"]),
        text(
            &f,
            &[
                "[ Top 10 ] (temporary allocations since the start)",
                "churn_site ({S}): size=840 KiB, count=210, average=4096 B",
                "temp_site ({S}): size=48.9 KiB, count=500, average=100 B",
            ]
        )
    );
    assert_eq!(
        ok(&["top", &p, "--temporary", "--include", "temp_*"]),
        text(
            &f,
            &[
                "[ Top 10 ] (temporary allocations since the start)",
                "{S}:5: size=48.9 KiB, count=500, average=100 B",
            ]
        )
    );
    let v: Value =
        serde_json::from_str(&ok(&["top", &p, "--temporary", "--json", "--limit", "1"])).unwrap();
    assert_eq!(v["view"], "temporary");
    assert!(v.get("peak").is_none());
    assert_eq!(v["total"]["count"], 710);
    assert_eq!(v["total"]["size"], 819_200 + 50_123 + 40960);
    assert_eq!(v["statistics"][0]["count"], 210);
    assert_eq!(v["other"]["groups"], 1);
    assert_eq!(v["other"]["count"], 500);
    let v: Value = serde_json::from_str(&ok(&["top", &p, "--allocated", "--json"])).unwrap();
    assert_eq!(v["view"], "allocated");
    assert_eq!(v["total"]["count"], 1519);
    assert_eq!(v["statistics"][0]["size"], 5 * MIB + 64);
    assert_eq!(v["statistics"][0]["average"], (5 * MIB + 64) as f64 / 6.0);
    assert_eq!(
        ok(&[
            "traceback",
            &p,
            "--temporary",
            "--rank",
            "2",
            "--frames",
            "1"
        ]),
        text(
            &f,
            &[
                "500 memory blocks: 48.9 KiB (temporary allocations since the start)",
                "  File \"{S}\", line 5",
                "    __attribute__((noinline)) void *temp_site(size_t n) { return calloc(1, n); }",
            ]
        )
    );
}

#[test]
fn summary_text_and_json() {
    let f = fixture("summary");
    let p = write(&f, "p.exit.snap", 0, SnapshotKind::Exit, whole_run());
    let want = text(
        &f,
        &[
            &format!("{p}: exit snapshot of pid 4242: ./prog --n 3"),
            "Run time:               2.500 s (from the start of tracing to this snapshot)",
            "Allocation calls:       1519 (608/s), 9212 KiB in all",
            "Temporary allocations:  710 (46.7% of calls), 889 KiB",
            "Peak traced memory:     3115 KiB (3189688 B) in 16 blocks, 1.250 s after the start",
            "Peak RSS:               12.0 MiB (VmHWM, memtrace's own memory included)",
            "Traced memory now:      3064 B (3064 B) in 4 blocks, never freed",
            "RSS now:                10.0 MiB, of which",
            "  traced memory:                        3064 B",
            "  allocator overhead and free-but-kept: 4093 KiB (glibc's heap 4096 KiB - traced; 1024 KiB of it free in the arenas)",
            "  memory the program maps otherwise:    6144 KiB (RSS - glibc's heap)",
            "  (glibc's heap, from mallinfo2, includes memtrace's own writer memory)",
            "Top 3 lines at the peak:",
            "  {S}:3: size=3072 KiB, count=3, average=1024 KiB",
            "  {S}:4: size=40.0 KiB, count=10, average=4096 B",
            "  {S}:6: size=3000 B, count=3, average=1000 B",
            "Top 3 lines by allocations (since the start):",
            "  {S}:3: size=5120 KiB, count=6, average=853 KiB",
            "  {S}:4: size=4040 KiB, count=1010, average=4096 B",
            "  {S}:5: size=48.9 KiB, count=500, average=100 B",
            "Top 3 lines by temporary allocations:",
            "  {S}:4: size=840 KiB, count=210, average=4096 B",
            "  {S}:5: size=48.9 KiB, count=500, average=100 B",
            "Top 3 lines now (never freed):",
            "  {S}:6: size=3000 B, count=3, average=1000 B",
            "  {S}:3: size=64 B, count=1, average=64 B",
        ],
    );
    assert_eq!(ok(&["summary", &p]), want);

    let v: Value = serde_json::from_str(&ok(&["summary", &p, "--json"])).unwrap();
    assert_eq!(v["command"], "summary");
    assert_eq!(v["kind"], "exit");
    assert_eq!(v["whole_run"], true);
    assert_eq!(v["estimated"], false);
    assert_eq!(v["run_time_s"], 2.5);
    assert_eq!(v["calls"], 1519);
    assert_eq!(v["calls_per_second"], 1519.0 / 2.5);
    assert_eq!(
        v["allocated"]["size"],
        5 * MIB + 64 + 4_096_000 + 50_123 + 3000 + 40960
    );
    assert_eq!(v["freed"]["count"], 1515);
    assert_eq!(v["temporary"]["count"], 710);
    assert_eq!(v["temporary"]["percent_of_calls"], 710.0 * 100.0 / 1519.0);
    assert_eq!(v["peak"]["size"], 3_189_688);
    assert_eq!(v["peak"]["count"], 16);
    assert_eq!(v["peak"]["seconds_after_start"], 1.25);
    assert_eq!(v["traced_now"]["size"], 3064);
    assert_eq!(v["traced_now"]["count"], 4);
    assert_eq!(v["memory"]["rss"], 10 * MIB);
    assert_eq!(v["memory"]["rss_peak"], 12 * MIB);
    assert_eq!(v["memory"]["traced"], 3064);
    assert_eq!(v["memory"]["allocator_overhead_and_free"], 4 * MIB - 3064);
    assert_eq!(v["memory"]["other"], 6 * MIB);
    assert_eq!(v["top"]["peak"][0]["size"], 3 * MIB);
    assert_eq!(v["top"]["allocated"][1]["count"], 1010);
    assert_eq!(v["top"]["temporary"][1]["count"], 500);
    assert_eq!(v["top"]["now"][0]["count"], 3);
    assert_eq!(v["top"]["peak"].as_array().unwrap().len(), 3);

    // --limit and filters shape the lists only
    let o = ok(&["summary", &p, "--limit", "1", "--exclude", "peak_site"]);
    assert!(
        o.contains("Top 1 lines at the peak:\n  ") && o.contains(":4: size=40.0 KiB, count=10")
    );
    assert!(o.contains("Peak traced memory:     3115 KiB (3189688 B) in 16 blocks"));
}

#[test]
fn a_file_without_the_whole_run() {
    let f = fixture("old");
    let p = write(&f, "p.1.snap", 0, SnapshotKind::Signal, WholeRun::default());
    for (args, what) in [
        (vec!["top", &p, "--peak"], "no peak recorded"),
        (vec!["traceback", &p, "--peak"], "no peak recorded"),
        (
            vec!["top", &p, "--allocated"],
            "no allocation totals recorded",
        ),
        (
            vec!["top", &p, "--temporary", "--json"],
            "no allocation totals recorded",
        ),
    ] {
        let o = run(&args);
        assert_eq!(o.code, 1, "{args:?}");
        assert_eq!(o.stdout, "");
        assert_eq!(
            o.stderr,
            format!(
                "memtrace: {p}: {what}: the whole-run sections need a newer libtrace.so (format 1.2)\n"
            )
        );
    }
    let want = text(
        &f,
        &[
            &format!("{p}: snapshot #2 of pid 4242: ./prog --n 3"),
            "Run time:               needs a newer libtrace.so (format 1.2)",
            "Allocation calls:       1519",
            "Temporary allocations:  needs a newer libtrace.so (format 1.2)",
            "Peak traced memory:     3115 KiB (3189688 B); when: needs a newer libtrace.so (format 1.2)",
            "Peak RSS:               needs a newer libtrace.so (format 1.2)",
            "Traced memory now:      3064 B (3064 B) in 4 blocks",
            "RSS now:                needs a newer libtrace.so (format 1.2)",
            "Top 3 lines at the peak: needs a newer libtrace.so (format 1.2)",
            "Top 3 lines by allocations (since the start): needs a newer libtrace.so (format 1.2)",
            "Top 3 lines by temporary allocations: needs a newer libtrace.so (format 1.2)",
            "Top 3 lines now (live):",
            "  {S}:6: size=3000 B, count=3, average=1000 B",
            "  {S}:3: size=64 B, count=1, average=64 B",
        ],
    );
    assert_eq!(ok(&["summary", &p]), want);
    let v: Value = serde_json::from_str(&ok(&["summary", &p, "--json"])).unwrap();
    assert_eq!(v["whole_run"], false);
    assert_eq!(v["calls"], 1519);
    assert_eq!(v["run_time_s"], Value::Null);
    assert_eq!(v["temporary"], Value::Null);
    assert_eq!(v["memory"], Value::Null);
    assert_eq!(v["peak"]["size"], 3_189_688);
    assert_eq!(v["peak"]["count"], Value::Null);
    assert_eq!(v["top"]["peak"], Value::Null);
    assert_eq!(v["top"]["now"].as_array().unwrap().len(), 2);

    // an empty TOTALS next to the other sections is "nothing allocated", not missing
    let run_no_totals = WholeRun {
        totals: vec![],
        ..whole_run()
    };
    let p2 = write(&f, "p.3.snap", 0, SnapshotKind::Signal, run_no_totals);
    assert_eq!(
        ok(&["top", &p2, "--allocated"]),
        "[ Top 10 ] (allocated since the start, freed or not)\n"
    );

    // a 1.2 file whose writer could not measure memory: not "a newer libtrace.so"
    let p3 = write(
        &f,
        "p.4.snap",
        0,
        SnapshotKind::Signal,
        WholeRun {
            memory: None,
            ..whole_run()
        },
    );
    let o = ok(&["summary", &p3]);
    assert!(
        o.contains("\nPeak RSS:               not recorded in this snapshot\n"),
        "{o}"
    );
    assert!(
        o.contains("\nRSS now:                not recorded in this snapshot\n"),
        "{o}"
    );
    assert!(!o.contains("newer"), "{o}");
}

#[test]
fn bad_combinations_exit_2() {
    let f = fixture("combos");
    let p = write(&f, "p.2.snap", 0, SnapshotKind::Signal, whole_run());
    for args in [
        vec!["top", &p, "--peak", "--allocated"],
        vec!["top", &p, "--peak", "--temporary"],
        vec!["top", &p, "--allocated", "--temporary"],
        vec!["traceback", &p, "--peak", "--temporary"],
        vec!["top", &p, "--peak", "--key", "traceback", "--cumulative"],
        vec!["diff", &p, &p, "--peak"],
        vec!["summary", &p, "--peak"],
    ] {
        let o = run(&args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert_eq!(o.stdout, "");
    }
}

/// The estimator for a totals group as docs/CLI.md states it: mean size
/// s̄ = bytes/count (rounded), p = 1 − exp(−s̄/R), estimates bytes/p and count/p
/// (for blocks of one size exactly s·c/p(s) and c/p(s)).
fn est(bytes: u64, count: u64, rate: u64) -> (f64, f64) {
    let mean = ((bytes as f64) / count as f64).round();
    let p = 1.0 - (-mean / rate as f64).exp();
    (bytes as f64 / p, count as f64 / p)
}

#[test]
fn sampled_snapshots_are_estimated() {
    let f = fixture("sampled");
    let rate = 65536;
    let p = write(&f, "p.exit.snap", rate, SnapshotKind::Exit, whole_run());
    let r = |v: f64| v.round() as u64;

    // peak: per group c/p(s), s·c/p(s)
    let (b1, c1) = est(3 * MIB, 3, rate);
    let (b2, c2) = est(40960, 10, rate);
    let (b4, c4) = est(3000, 3, rate);
    let o = ok(&["top", &p, "--peak"]);
    let mut lines = o.lines();
    assert_eq!(
        lines.next().unwrap(),
        "[ Top 10 ] (at the peak of traced memory) (estimated from samples, 1 per 64.0 KiB)"
    );
    // the small blocks are scaled up far more than the big ones
    assert!(c4 > 60.0 && c1 < 3.01);
    let mut want = vec![
        (format!("{}:3", f.src), r(b1), r(c1)),
        (format!("{}:4", f.src), r(b2), r(c2)),
        (format!("{}:6", f.src), r(b4), r(c4)),
    ];
    want.sort_by_key(|w| std::cmp::Reverse(w.1));
    for (l, b, c) in &want {
        assert_eq!(
            lines.next().unwrap(),
            memtrace::format::statistic_str(l, *b, *c)
        );
    }

    // allocated: the two churn stacks are summed unrounded, then rounded once
    let v: Value = serde_json::from_str(&ok(&["top", &p, "--allocated", "--json"])).unwrap();
    assert_eq!(v["estimated"], true);
    let churn = v["statistics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == format!("{}:4", f.src))
        .unwrap();
    let (x, y) = (est(4_096_000, 1000, rate), est(40960, 10, rate));
    assert_eq!(churn["size"], r(x.0 + y.0));
    assert_eq!(churn["count"], r(x.1 + y.1));
    // mixed sizes at temp_site: 50123 B over 500 calls, mean 100 B
    let temp = v["statistics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == format!("{}:5", f.src))
        .unwrap();
    let t = est(50_123, 500, rate);
    assert_eq!(temp["size"], r(t.0));
    assert_eq!(temp["count"], r(t.1));

    let o = ok(&["top", &p, "--temporary", "--limit", "0"]);
    assert_eq!(
        o,
        "[ Top 0 ] (temporary allocations since the start, an upper bound under sampling) (estimated from samples, 1 per 64.0 KiB)\n"
    );

    // summary: the same estimates, marked
    let v: Value = serde_json::from_str(&ok(&["summary", &p, "--json"])).unwrap();
    assert_eq!(v["estimated"], true);
    let all = [
        est(5 * MIB + 64, 6, rate),
        est(4_096_000, 1000, rate),
        est(50_123, 500, rate),
        est(3000, 3, rate),
        est(40960, 10, rate),
    ];
    let calls: f64 = all.iter().map(|e| e.1).sum();
    assert_eq!(v["calls"], r(calls));
    assert_eq!(v["peak"]["size"], r(b1 + b2 + b4));
    assert_eq!(v["peak"]["count"], r(c1 + c2 + c4));
    let temps = [
        est(819_200, 200, rate),
        est(50_123, 500, rate),
        est(40960, 10, rate),
    ];
    assert_eq!(v["temporary"]["count"], r(temps.iter().map(|e| e.1).sum()));
    // RSS is measured, not sampled
    assert_eq!(v["memory"]["rss"], 10 * MIB);
    let text = ok(&["summary", &p]);
    assert!(text.contains(
        "\nSampling:               1 sample per 64.0 KiB: counts and traced sizes are estimated\n"
    ));
    assert!(text.contains(&format!("Allocation calls:       {} (", r(calls))));
    assert!(text.contains("Top 3 lines at the peak (estimated from samples, 1 per 64.0 KiB):\n"));
    for l in text.lines().filter(|l| {
        l.starts_with("Allocation calls")
            || l.starts_with("Temporary")
            || l.starts_with("Peak traced")
            || l.starts_with("Traced memory now")
    }) {
        if l.starts_with("Temporary") {
            assert!(
                l.ends_with(" (estimated, an upper bound under sampling)"),
                "{l}"
            );
        } else {
            assert!(l.ends_with(" (estimated)"), "{l}");
        }
    }
    assert!(text
        .lines()
        .any(|l| l.starts_with("Peak RSS:               12.0 MiB (")));
}

#[test]
fn stats_text_and_json() {
    let f = fixture("stats");
    let p = write(&f, "p.exit.snap", 0, SnapshotKind::Exit, whole_run());
    let o = ok(&["stats", &p]);
    let new: Vec<&str> = o
        .lines()
        .skip_while(|l| !l.starts_with("Frees:"))
        .skip(1)
        .take(7)
        .collect();
    assert_eq!(
        new,
        [
            "Peak blocks:    16 (3115 KiB, 3189688 B) in 3 groups, 1.250 s after the start (event 2021)",
            "Allocated:      1519 (9212 KiB, 9433027 B) from 5 stacks since the start",
            "Freed:          1515 (9209 KiB, 9429963 B)",
            "Temporary:      710 (889 KiB, 910283 B)",
            "Timeline:       from 2023-11-14 22:13:20.000000000 UTC, 2.500 s: 2 points every 10 ms, 1 snapshot before this one",
            "RSS:            10.0 MiB (10485760 B), peak 12.0 MiB (12582912 B)",
            "glibc heap:     arenas 4096 KiB (4194304 B), 1024 KiB (1048576 B) of it free; mmapped blocks 0 B (0 B)",
        ]
    );
    assert!(o.ends_with("Frame limit:    32 (0 stacks truncated)\nSampling:       every allocation recorded\nModules:        1\n"));
    // the live blocks' stacks, not every stack the file holds for the whole run
    assert!(
        o.contains("\nLive blocks:    4 (3064 B, 3064 B) from 2 stacks\n"),
        "{o}"
    );
    let v: Value = serde_json::from_str(&ok(&["stats", &p, "--json"])).unwrap();
    assert_eq!(v["live"]["stacks"], 2);
    assert_eq!(v["peak"]["size"], 3_189_688);
    assert_eq!(v["peak"]["blocks"], 16);
    assert_eq!(v["peak"]["sampled"]["blocks"], 16);
    assert_eq!(v["peak"]["groups"], 3);
    assert_eq!(v["peak"]["event"], 2021);
    assert_eq!(v["peak"]["seconds_after_start"], 1.25);
    assert_eq!(v["totals"]["stacks"], 5);
    assert_eq!(v["totals"]["allocated"]["count"], 1519);
    assert_eq!(v["totals"]["allocated"]["size"], 9_433_027);
    assert_eq!(v["totals"]["freed"]["size"], 9_429_963);
    assert_eq!(v["totals"]["temporary"]["count"], 710);
    assert_eq!(v["totals"]["sampled"]["temporary"]["size"], 910_283);
    assert_eq!(v["timeline"]["start_ns"], T0);
    assert_eq!(v["timeline"]["points"], 2);
    assert_eq!(v["timeline"]["snapshots"][0], 1);
    assert_eq!(v["timeline"]["run_time_s"], 2.5);
    assert_eq!(v["memory"]["rss"], 10 * MIB);
    assert_eq!(v["memory"]["heap_free"], MIB);

    // sampled: estimated from the sampled sums
    let ps = write(&f, "s.exit.snap", 65536, SnapshotKind::Exit, whole_run());
    let o = ok(&["stats", &ps]);
    let line = o.lines().find(|l| l.starts_with("Temporary:")).unwrap();
    let t: f64 = [
        est(819_200, 200, 65536).1,
        est(50_123, 500, 65536).1,
        est(40960, 10, 65536).1,
    ]
    .iter()
    .sum();
    assert!(
        line.starts_with(&format!("Temporary:      {} (", t.round() as u64))
            && line.ends_with(" estimated from 710 sampled (910283 B)"),
        "{line}"
    );

    // a file without the sections prints what it always printed
    let p1 = write(
        &f,
        "old.1.snap",
        0,
        SnapshotKind::Signal,
        WholeRun::default(),
    );
    let o = ok(&["stats", &p1]);
    assert_eq!(o.lines().count(), 12, "{o}");
    assert!(o.contains("\nFrees:          1515 seen\nFrame limit:"));
    let v: Value = serde_json::from_str(&ok(&["stats", &p1, "--json"])).unwrap();
    for k in ["peak", "totals", "timeline", "memory"] {
        assert!(v.get(k).is_none(), "{k}");
    }
}

/// Only the stacks a view names are symbolized: a module that only the
/// totals' stacks point into is never read (nor warned about) for `top`.
#[test]
fn only_the_views_stacks_are_symbolized() {
    let f = fixture("needed");
    let mut m = module_of(&f.exe, 0);
    let gone = f.dir.join("libgone.so");
    m.path = gone.to_str().unwrap().as_bytes().to_vec();
    let base = 0x7f00_0000_0000u64;
    m.base = base;
    let mut run = whole_run();
    run.totals.push(StackTotals {
        stack: 6,
        allocs: 7,
        alloc_bytes: 70,
        frees: 0,
        freed_bytes: 0,
        temporary: 0,
        temporary_bytes: 0,
    });
    let mut stacks: Vec<Stack> = f
        .stacks
        .iter()
        .enumerate()
        .map(|(i, fr)| Stack {
            id: i as u64 + 1,
            frames: fr.clone(),
            truncated: false,
        })
        .collect();
    stacks.push(Stack {
        id: 6,
        frames: vec![base + f.stacks[0][0]],
        truncated: false,
    });
    let s = memtrace_format::Snapshot {
        header: header(&f, 0, SnapshotKind::Signal),
        modules: vec![module_of(&f.exe, 0), m],
        stacks,
        domains: Vec::new(),
        traces: vec![TraceGroup {
            stack: 4,
            size: 1000,
            count: 3,
        }],
        run,
    };
    let p = f.dir.join("n.2.snap");
    std::fs::write(&p, encode(&s)).unwrap();
    let p = p.to_str().unwrap();
    for args in [
        vec!["top", p],
        vec!["top", p, "--peak"],
        vec!["summary", p, "--limit", "0"],
    ] {
        let o = run_bin(&args);
        assert_eq!(o.code, 0);
        if args[0] == "summary" {
            // summary reads every view, the totals' included
            assert!(o.stderr.contains("libgone.so"), "{}", o.stderr);
        } else {
            assert_eq!(o.stderr, "", "{args:?}");
        }
    }
    let o = run_bin(&["top", p, "--allocated", "--raw"]);
    assert_eq!(o.code, 0);
    assert!(o.stderr.contains("libgone.so"), "{}", o.stderr);
    assert!(
        o.stdout.contains(&format!(
            "<libgone.so+{:#x}>:0: size=70 B, count=7, average=10 B\n",
            f.stacks[0][0]
        )),
        "{}",
        o.stdout
    );
}

#[test]
fn pretty_and_function_views() {
    let f = fixture("pretty");
    let p = write(&f, "p.exit.snap", 0, SnapshotKind::Exit, whole_run());
    let o = ok(&[
        "top",
        &p,
        "--allocated",
        "--pretty",
        "--key",
        "function",
        "--limit",
        "2",
    ]);
    assert_eq!(
        o,
        text(
            &f,
            &[
                "Top 2 lines (allocated since the start, freed or not)",
                "#1: peak_site ({S}): 5120.1 KiB",
                "    __attribute__((noinline)) void *peak_site(size_t n) { return malloc(n); }",
                "#2: churn_site ({S}): 4040.0 KiB",
                "    __attribute__((noinline)) void *churn_site(size_t n) { return malloc(n); }",
                "2 other: 51.9 KiB",
                "Total allocated size: 9211.9 KiB",
            ]
        )
    );
    // cumulative by function: main is charged with everything allocated
    assert_eq!(
        ok(&[
            "top",
            &p,
            "--allocated",
            "--key",
            "function",
            "--cumulative",
            "--limit",
            "2"
        ]),
        text(
            &f,
            &[
                "[ Top 2 ] (allocated since the start, freed or not)",
                "main ({S}): size=9212 KiB, count=1519, average=6210 B",
                "peak_site ({S}): size=5120 KiB, count=6, average=853 KiB",
            ]
        )
    );
}
