//! Issue 14's exports read by the real clients, on a C, a C++ and a Rust
//! program traced by libtrace.so:
//! - `memtrace export --format pprof`: `go tool pprof -top` (Debian's
//!   golang-go, installed by scripts/install-deps) prints, per line and per
//!   function, exactly memtrace's figures (`top --json`) for inuse_space and
//!   inuse_objects; `-base OLD NEW` exactly `memtrace diff`'s; alloc_* the
//!   totals of a format-1.2 file (made here from the real one with totals
//!   the test chooses); `--peak` the peak's blocks;
//! - `memtrace export --format tracemalloc`: the machine's python3 loads the
//!   pickle with `tracemalloc.Snapshot.load` and the documentation's four
//!   recipes print exactly what `top`, `diff`, `traceback --oldest-first`
//!   and `top --pretty` print (and `--raw` keeps every frame);
//! - `memtrace flamegraph --collapsed`: the folded widths are the
//!   statistics by traceback (bytes, and blocks with `--count`); the SVG
//!   colours the system's frames apart.

use memtrace_tests::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn p(s: &Path) -> &str {
    s.to_str().unwrap()
}

fn json(args: &[&str]) -> Value {
    let text = memtrace_ok(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("memtrace {args:?}: {e}\n{text}"))
}

/// A traced program's snapshots: (its directory, snapshot 1, snapshot 2 if any).
struct Traced {
    name: String,
    _dir: TestDir,
    s1: PathBuf,
    s2: Option<PathBuf>,
}

fn trace(name: &str, exe: &Path, dir: TestDir) -> Traced {
    let prefix = dir.join("k");
    let out = Run::new(exe, &dir).out(&prefix).run();
    out.assert_ok();
    let s2 = snap_path(&prefix, "2");
    Traced {
        name: name.to_string(),
        s1: snap_path(&prefix, "1"),
        s2: s2.exists().then_some(s2),
        _dir: dir,
    }
}

fn build_rust(dir: &Path) -> PathBuf {
    let exe = dir.join("rust_prog");
    let st = Command::new("rustc")
        .args(["-g", "--edition", "2021", "-C", "opt-level=1"])
        .arg(source("rust_prog.rs"))
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("run rustc");
    assert!(st.success(), "rustc failed");
    exe
}

/// The C program at -O0 and -O2, the C++ program, the Rust program.
fn programs() -> Vec<Traced> {
    let mut v = Vec::new();
    for opt in BOTH {
        let d = fresh_dir(&format!("export-c-{opt:?}"));
        v.push(trace(&format!("C {opt:?}"), &prog("cli_prog", opt), d));
    }
    let d = fresh_dir("export-cpp");
    v.push(trace("C++", &prog("cli_cpp", Opt::O2), d));
    let d = fresh_dir("export-rust");
    let exe = build_rust(&d);
    v.push(trace("Rust", &exe, d));
    v
}

// ------------------------------------------------------------------ pprof

fn go() -> &'static str {
    let ok = Command::new("go")
        .arg("version")
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(ok, Ok(true)),
        "`go` is missing: scripts/install-deps installs Debian's golang-go (make test runs it)"
    );
    "go"
}

/// `go tool pprof -top` of a profile: flat value per node, the node named
/// by `key` from pprof's name (`function file:line` with -lines,
/// `function file` with -filefunctions); nodes of one key are summed.
fn pprof_top(
    args: &[&str],
    granularity: &str,
    key: impl Fn(&str) -> String,
) -> BTreeMap<String, i64> {
    let out = Command::new(go())
        .args([
            "tool",
            "pprof",
            "-top",
            granularity,
            "-nodefraction=0",
            "-nodecount=1000000",
            "-unit=B",
        ])
        .args(args)
        .output()
        .expect("run go tool pprof");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "go tool pprof {args:?} failed:\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m = BTreeMap::new();
    let mut rows = false;
    for line in text.lines() {
        if line.trim_start().starts_with("flat ") {
            rows = true;
            continue;
        }
        if !rows {
            continue;
        }
        let t: Vec<&str> = line.split_whitespace().collect();
        assert!(t.len() >= 6, "unexpected pprof row {line:?} in\n{text}");
        let flat: i64 = t[0]
            .trim_end_matches('B')
            .parse()
            .unwrap_or_else(|_| panic!("flat value {:?} in\n{text}", t[0]));
        let name = t[5..].join(" ");
        let name = name.strip_suffix(" (inline)").unwrap_or(&name);
        if flat != 0 {
            *m.entry(key(name)).or_insert(0) += flat;
        }
    }
    m.retain(|_, v| *v != 0);
    m
}

/// `function file:line` → `file:line` (memtrace's lineno label). A frame
/// without line information is `name module` in pprof (no line), and
/// `<name in module>:0` or `<module+0x…>:0` in memtrace.
fn line_key(name: &str) -> String {
    let (func, last) = name.rsplit_once(' ').unwrap_or((name, ""));
    match last.rsplit_once(':') {
        Some((_, l)) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => last.to_string(),
        _ if last.is_empty() || func.contains("+0x") => format!("<{func}>:0"),
        _ => format!("<{func} in {last}>:0"),
    }
}

/// `function file` → `function (file)` (memtrace's function label; a frame
/// with neither lines nor a function is its `<module+0x…>` name).
fn function_key(name: &str) -> String {
    match name.rsplit_once(' ') {
        Some((f, _)) if f.contains("+0x") => format!("<{f}>"),
        Some((f, file)) => format!("{f} ({file})"),
        None => name.to_string(),
    }
}

/// memtrace's statistics as label → field, zeros left out.
fn stats_of(v: &Value, field: &str) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for s in v["statistics"].as_array().unwrap() {
        let n = s[field].as_i64().unwrap();
        if n != 0 {
            *m.entry(s["label"].as_str().unwrap().to_string())
                .or_insert(0) += n;
        }
    }
    m
}

fn top_json(snap: &Path, key: &str, extra: &[&str]) -> Value {
    let mut a = vec!["top", p(snap), "--key", key, "--limit", "1000000", "--json"];
    a.extend_from_slice(extra);
    json(&a)
}

fn check_pprof_live(t: &Traced, snap: &Path, pb: &Path) {
    for (gran, key, keyfn) in [
        ("-lines", "lineno", line_key as fn(&str) -> String),
        ("-filefunctions", "function", function_key),
    ] {
        let mt = top_json(snap, key, &[]);
        for (index, field) in [("inuse_space", "size"), ("inuse_objects", "count")] {
            let got = pprof_top(&[&format!("-sample_index={index}"), p(pb)], gran, keyfn);
            let want = stats_of(&mt, field);
            assert!(!want.is_empty());
            assert_eq!(
                got, want,
                "{}: pprof {gran} {index} against memtrace top --key {key}",
                t.name
            );
        }
    }
}

#[test]
fn pprof_profiles_read_by_go_tool_pprof_equal_memtrace() {
    for t in programs() {
        let dir = t.s1.parent().unwrap().to_path_buf();
        let pb1 = dir.join("k1.pb.gz");
        memtrace_ok(&["export", p(&t.s1), "--format", "pprof", "-o", p(&pb1)]);
        // gzip'd, as pprof and the continuous profilers expect.
        let bytes = std::fs::read(&pb1).unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "{}: not gzip", t.name);
        check_pprof_live(&t, &t.s1, &pb1);

        // The default sample type is inuse_space, and the header is Go's.
        let out = Command::new(go())
            .args(["tool", "pprof", "-raw", p(&pb1)])
            .output()
            .unwrap();
        let raw = String::from_utf8_lossy(&out.stdout);
        assert!(raw.contains("PeriodType: space bytes"), "{}: {raw}", t.name);
        assert!(raw.contains("Period: 1\n"), "{}: {raw}", t.name);
        // libtrace.so writes the whole run: the allocation totals come first.
        assert!(
            raw.contains("Samples:\nalloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes[dflt]"),
            "{}: {raw}",
            t.name
        );

        if let Some(s2) = &t.s2 {
            let pb2 = dir.join("k2.pb.gz");
            memtrace_ok(&["export", p(s2), "--format", "pprof", "-o", p(&pb2)]);
            check_pprof_live(&t, s2, &pb2);
            // -base OLD NEW is memtrace diff.
            for (gran, key, keyfn) in [
                ("-lines", "lineno", line_key as fn(&str) -> String),
                ("-filefunctions", "function", function_key),
            ] {
                let d = json(&[
                    "diff",
                    p(&t.s1),
                    p(s2),
                    "--key",
                    key,
                    "--limit",
                    "1000000",
                    "--json",
                ]);
                for (index, field) in [
                    ("inuse_space", "size_diff"),
                    ("inuse_objects", "count_diff"),
                ] {
                    let got = pprof_top(
                        &[&format!("-sample_index={index}"), "-base", p(&pb1), p(&pb2)],
                        gran,
                        keyfn,
                    );
                    let want = stats_of(&d, field);
                    assert!(!want.is_empty());
                    assert_eq!(
                        got, want,
                        "{}: pprof -base {gran} {index} against memtrace diff",
                        t.name
                    );
                }
            }
        }
    }
}

/// A format-1.2 file made from a real snapshot: totals per stack of 3 times
/// its live blocks, one stack that only allocated (a copy of the biggest
/// group's stack: 7 blocks of 123 B, all freed), and a peak of twice the
/// live blocks.
fn with_whole_run(src: &Path, dst: &Path) {
    let mut d = memtrace_format::decode(&std::fs::read(src).unwrap()).unwrap();
    let mut per_stack: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for g in &d.traces {
        let e = per_stack.entry(g.stack).or_default();
        e.0 += g.count;
        e.1 += g.count * g.size;
    }
    let biggest = d
        .traces
        .iter()
        .max_by_key(|g| g.size * g.count)
        .unwrap()
        .clone();
    let frames = d
        .stacks
        .iter()
        .find(|s| s.id == biggest.stack)
        .unwrap()
        .clone();
    let new_id = d.stacks.iter().map(|s| s.id).max().unwrap() + 1;
    d.stacks.push(memtrace_format::Stack {
        id: new_id,
        ..frames
    });
    let mut totals: Vec<memtrace_format::StackTotals> = per_stack
        .iter()
        .map(|(&stack, &(c, b))| memtrace_format::StackTotals {
            stack,
            allocs: 3 * c,
            alloc_bytes: 3 * b,
            frees: 2 * c,
            freed_bytes: 2 * b,
            temporary: 0,
            temporary_bytes: 0,
        })
        .collect();
    totals.push(memtrace_format::StackTotals {
        stack: new_id,
        allocs: 7,
        alloc_bytes: 7 * 123,
        frees: 7,
        freed_bytes: 7 * 123,
        temporary: 7,
        temporary_bytes: 7 * 123,
    });
    totals.sort_by_key(|t| t.stack);
    d.run.totals = totals;
    let groups: Vec<memtrace_format::TraceGroup> = d
        .traces
        .iter()
        .map(|g| memtrace_format::TraceGroup {
            count: g.count * 2,
            ..g.clone()
        })
        .collect();
    d.run.peak = Some(memtrace_format::Peak {
        time_ns: d.header.time_ns - 1000,
        event: 1,
        traced_bytes: groups.iter().map(|g| g.size * g.count).sum(),
        groups,
    });
    std::fs::write(dst, memtrace_format::encode(&d)).unwrap();
}

#[test]
fn pprof_alloc_figures_are_the_totals_and_peak_exports_the_peak() {
    for t in programs() {
        let snap = t.s2.clone().unwrap_or(t.s1.clone());
        let dir = snap.parent().unwrap().to_path_buf();
        let made = dir.join("whole.snap");
        with_whole_run(&snap, &made);
        let pb = dir.join("whole.pb.gz");
        memtrace_ok(&["export", p(&made), "--format", "pprof", "-o", p(&pb)]);
        // The biggest group's line, by its stack (the copy's line).
        let tb = json(&[
            "top",
            p(&snap),
            "--key",
            "traceback",
            "--limit",
            "1",
            "--json",
        ]);
        let first = &tb["statistics"][0]["frames"][0];
        let site = format!(
            "{}:{}",
            first["filename"].as_str().unwrap(),
            first["lineno"]
        );
        let mt = top_json(&snap, "lineno", &[]);
        for (index, field, extra) in [
            ("alloc_space", "size", 7 * 123),
            ("alloc_objects", "count", 7),
        ] {
            let got = pprof_top(
                &[&format!("-sample_index={index}"), p(&pb)],
                "-lines",
                line_key,
            );
            let mut want: BTreeMap<String, i64> = stats_of(&mt, field)
                .into_iter()
                .map(|(k, v)| (k, 3 * v))
                .collect();
            *want.entry(site.clone()).or_insert(0) += extra;
            assert_eq!(
                got, want,
                "{}: pprof {index} against 3 x live + the freed stack",
                t.name
            );
        }
        // inuse is still the live blocks, and the default.
        let got = pprof_top(&[p(&pb)], "-lines", line_key);
        assert_eq!(
            got,
            stats_of(&mt, "size"),
            "{}: inuse_space of a 1.2 file",
            t.name
        );
        let out = Command::new(go())
            .args(["tool", "pprof", "-raw", p(&pb)])
            .output()
            .unwrap();
        let raw = String::from_utf8_lossy(&out.stdout);
        assert!(
            raw.contains(
                "alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes[dflt]"
            ),
            "{}: {raw}",
            t.name
        );
        // --peak: twice the live blocks.
        let pk = dir.join("peak.pb.gz");
        memtrace_ok(&[
            "export",
            p(&made),
            "--format",
            "pprof",
            "--peak",
            "-o",
            p(&pk),
        ]);
        let got = pprof_top(&["-sample_index=inuse_space", p(&pk)], "-lines", line_key);
        let want: BTreeMap<String, i64> = stats_of(&mt, "size")
            .into_iter()
            .map(|(k, v)| (k, 2 * v))
            .collect();
        assert_eq!(got, want, "{}: --peak", t.name);
    }
}

#[test]
fn pprof_of_a_sampled_snapshot_carries_the_estimates() {
    let dir = fresh_dir("export-sampled");
    let prefix = dir.join("k");
    let out = Run::new(prog("cli_prog", Opt::O2), &dir)
        .out(&prefix)
        .env("MEMTRACE_SAMPLE", "8192")
        .run();
    out.assert_ok();
    let snap = snap_path(&prefix, "2");
    let pb = dir.join("s.pb.gz");
    memtrace_ok(&["export", p(&snap), "--format", "pprof", "-o", p(&pb)]);
    let mt = top_json(&snap, "lineno", &[]);
    assert!(mt["estimated"].as_bool().unwrap());
    let out = Command::new(go())
        .args(["tool", "pprof", "-raw", p(&pb)])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Period: 8192\n"));
    for (index, field) in [("inuse_space", "size"), ("inuse_objects", "count")] {
        let got = pprof_top(
            &[&format!("-sample_index={index}"), p(&pb)],
            "-lines",
            line_key,
        );
        let want = stats_of(&mt, field);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (k, w) in &want {
            // Each stack's estimate is rounded on its own in the profile.
            assert!(
                (got[k] - w).abs() <= 2,
                "{k}: pprof {} against memtrace {w} ({index})",
                got[k]
            );
        }
    }
}

// ------------------------------------------------------------ tracemalloc

/// The documentation's four recipes on the loaded pickles, verbatim but
/// for the loading and the separators.
const RECIPES: &str = r##"
import linecache, os, sys, tracemalloc

def display_top(snapshot, key_type='lineno', limit=10):
    snapshot = snapshot.filter_traces((
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<unknown>"),
    ))
    top_stats = snapshot.statistics(key_type)

    print("Top %s lines" % limit)
    for index, stat in enumerate(top_stats[:limit], 1):
        frame = stat.traceback[0]
        # replace "/path/to/module/file.py" with "module/file.py"
        filename = os.sep.join(frame.filename.split(os.sep)[-2:])
        print("#%s: %s:%s: %.1f KiB"
              % (index, filename, frame.lineno, stat.size / 1024))
        line = linecache.getline(frame.filename, frame.lineno).strip()
        if line:
            print('    %s' % line)

    other = top_stats[limit:]
    if other:
        size = sum(stat.size for stat in other)
        print("%s other: %.1f KiB" % (len(other), size / 1024))
    total = sum(stat.size for stat in top_stats)
    print("Total allocated size: %.1f KiB" % (total / 1024))

snapshot = tracemalloc.Snapshot.load(sys.argv[1])
top_stats = snapshot.statistics('lineno')
print("[ Top 10 ]")
for stat in top_stats[:10]:
    print(stat)
print("=====")
top_stats = snapshot.statistics('traceback')
stat = top_stats[0]
print("%s memory blocks: %.1f KiB" % (stat.count, stat.size / 1024))
for line in stat.traceback.format():
    print(line)
print("=====")
display_top(snapshot)
if len(sys.argv) > 2:
    print("=====")
    snapshot1 = tracemalloc.Snapshot.load(sys.argv[2])
    snapshot2 = snapshot
    top_stats = snapshot2.compare_to(snapshot1, 'lineno')
    print("[ Top 10 differences ]")
    for stat in top_stats[:10]:
        print(stat)
"##;

/// memtrace's traceback lines for frames without line information
/// (`File "/lib/libfoo.so", function foo+0x12`, `…, offset 0x1234`) as
/// tracemalloc prints the same frame from the pickle: its `<…>` name and
/// line 0 (docs/CLI.md, "Frames").
fn as_tracemalloc_prints(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let l = match line
            .strip_prefix("  File \"")
            .and_then(|r| r.split_once("\", "))
        {
            Some((module, rest)) => {
                let base = module.rsplit('/').next().unwrap();
                if let Some(f) = rest.strip_prefix("function ") {
                    let func = f.rsplit_once("+0x").map(|(n, _)| n).unwrap_or(f);
                    format!("  File \"<{func} in {base}>\", line 0")
                } else if let Some(o) = rest.strip_prefix("offset ") {
                    format!("  File \"<{base}+{o}>\", line 0")
                } else {
                    line.to_string()
                }
            }
            None => line.to_string(),
        };
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn python_recipes(dir: &Path, new: &Path, old: Option<&Path>) -> Vec<String> {
    let script = dir.join("recipes.py");
    std::fs::write(&script, RECIPES).unwrap();
    let mut c = Command::new("python3");
    c.arg(&script).arg(new);
    if let Some(o) = old {
        c.arg(o);
    }
    let out = c.output().expect("run python3");
    assert!(
        out.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split("=====\n")
        .map(str::to_string)
        .collect()
}

#[test]
fn tracemalloc_pickle_runs_the_documentation_recipes_as_memtrace_prints() {
    for t in programs() {
        let dir = t.s1.parent().unwrap().to_path_buf();
        let (new, old) = match &t.s2 {
            Some(s2) => (s2.clone(), Some(t.s1.clone())),
            None => (t.s1.clone(), None),
        };
        for raw in [false, true] {
            let flag: &[&str] = if raw { &["--raw"] } else { &[] };
            let export = |snap: &Path, name: &str| {
                let out = dir.join(name);
                let mut a = vec!["export", p(snap), "--format", "tracemalloc", "-o", p(&out)];
                a.extend_from_slice(flag);
                memtrace_ok(&a);
                out
            };
            let pn = export(&new, "new.pickle");
            let po = old.as_ref().map(|o| export(o, "old.pickle"));
            let got = python_recipes(&dir, &pn, po.as_deref());
            let with = |a: &[&str]| {
                let mut v = a.to_vec();
                v.extend_from_slice(flag);
                memtrace_ok(&v)
            };
            let what = format!("{} raw={raw}", t.name);
            assert_eq!(got[0], with(&["top", p(&new)]), "{what}: the top 10");
            if !raw {
                // (--raw tracebacks hold libc's frames, which memtrace
                // prints by module and function, tracemalloc by name.)
                assert_eq!(
                    got[1],
                    as_tracemalloc_prints(&with(&["traceback", p(&new), "--oldest-first"])),
                    "{what}: the biggest traceback"
                );
                assert_eq!(
                    got[2],
                    with(&["top", p(&new), "--pretty"]),
                    "{what}: display_top"
                );
            }
            if let Some(o) = &old {
                assert_eq!(got[3], with(&["diff", p(o), p(&new)]), "{what}: compare_to");
            }
        }
    }
}

// ------------------------------------------------------------- flamegraph

/// A folded frame name → the location it shows (`file:line`, or the module).
fn folded_loc(name: &str) -> String {
    let inner = name
        .strip_suffix(')')
        .and_then(|n| n.rfind(" (").map(|i| &n[i + 2..]))
        .unwrap_or(name);
    match inner.rsplit_once(':') {
        Some((_, l)) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => inner.to_string(),
        _ => format!("module {inner}"),
    }
}

fn json_loc(f: &Value) -> String {
    if f["has_line"].as_bool().unwrap() {
        format!("{}:{}", f["filename"].as_str().unwrap(), f["lineno"])
    } else if f["function"].is_string() {
        let m = f["module"].as_str().unwrap_or("");
        format!("module {}", m.rsplit('/').next().unwrap())
    } else {
        format!("module {}", f["filename"].as_str().unwrap())
    }
}

/// `memtrace flamegraph … --collapsed -o -`: width per stack of locations.
fn folded_widths(args: &[&str]) -> BTreeMap<String, i64> {
    let mut got: BTreeMap<String, i64> = BTreeMap::new();
    for line in memtrace_ok(args).lines() {
        let (stack, w) = line.rsplit_once(' ').unwrap();
        let key: Vec<String> = stack.split(';').map(folded_loc).collect();
        *got.entry(key.join(" ; ")).or_insert(0) += w.parse::<i64>().unwrap();
    }
    got
}

/// `top --key traceback --json`'s `field` per stack of locations, root first.
fn traceback_widths(tb: &Value, field: &str) -> BTreeMap<String, i64> {
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    for s in tb["statistics"].as_array().unwrap() {
        let frames = s["frames"].as_array().unwrap();
        let key: Vec<String> = frames.iter().rev().map(json_loc).collect();
        *want.entry(key.join(" ; ")).or_insert(0) += s[field].as_i64().unwrap();
    }
    want
}

#[test]
fn flamegraph_of_the_whole_run_views() {
    for t in programs() {
        let snap = t.s2.clone().unwrap_or(t.s1.clone());
        let made = snap.parent().unwrap().join("whole-flame.snap");
        with_whole_run(&snap, &made);
        let tb = top_json(&snap, "traceback", &[]);
        let live = traceback_widths(&tb, "size");
        // The biggest group's stack, which the only-allocating stack copies.
        let first: Vec<String> = tb["statistics"][0]["frames"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(json_loc)
            .collect();
        let first = first.join(" ; ");
        let scaled = |k: i64| -> BTreeMap<String, i64> {
            live.iter().map(|(s, v)| (s.clone(), k * v)).collect()
        };
        let mut want = scaled(3);
        *want.get_mut(&first).unwrap() += 7 * 123;
        assert_eq!(
            folded_widths(&[
                "flamegraph",
                p(&made),
                "--allocated",
                "--collapsed",
                "-o",
                "-"
            ]),
            want,
            "{}: --allocated",
            t.name
        );
        let want: BTreeMap<String, i64> = [(first.clone(), 7 * 123)].into();
        assert_eq!(
            folded_widths(&[
                "flamegraph",
                p(&made),
                "--temporary",
                "--collapsed",
                "-o",
                "-"
            ]),
            want,
            "{}: --temporary",
            t.name
        );
        assert_eq!(
            folded_widths(&["flamegraph", p(&made), "--peak", "--collapsed", "-o", "-"]),
            scaled(2),
            "{}: --peak",
            t.name
        );
        // A file without the whole run (written before format 1.2) says so
        // in one line, exit 1.
        let old = snap.parent().unwrap().join("before-1.2.snap");
        let mut d = memtrace_format::decode(&std::fs::read(&snap).unwrap()).unwrap();
        d.run = Default::default();
        std::fs::write(&old, memtrace_format::encode(&d)).unwrap();
        let out = Command::new(memtrace_bin())
            .args(["flamegraph", p(&old), "--allocated", "-o", "-"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", t.name);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("written before format 1.2"), "{err}");
    }
}

#[test]
fn flamegraph_widths_are_the_statistics_by_traceback() {
    for t in programs() {
        let dir = t.s1.parent().unwrap().to_path_buf();
        let snap = t.s2.clone().unwrap_or(t.s1.clone());
        for raw in [false, true] {
            let flag: &[&str] = if raw { &["--raw"] } else { &[] };
            let tb = top_json(&snap, "traceback", flag);
            for (count, field) in [(false, "size"), (true, "count")] {
                let mut a = vec!["flamegraph", p(&snap), "--collapsed", "-o", "-"];
                a.extend_from_slice(flag);
                if count {
                    a.push("--count");
                }
                let got = folded_widths(&a);
                let want = traceback_widths(&tb, field);
                assert!(!want.is_empty());
                assert_eq!(
                    got, want,
                    "{} raw={raw} count={count}: folded widths",
                    t.name
                );
            }
        }
        // Nothing through the filters: a titled, empty picture, and no folded line.
        let empty = dir.join("empty.svg");
        memtrace_ok(&[
            "flamegraph",
            p(&snap),
            "--include",
            "no-such-file",
            "-o",
            p(&empty),
        ]);
        let svg = std::fs::read_to_string(&empty).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("no blocks to draw"),
            "{svg}"
        );
        assert_eq!(
            memtrace_ok(&[
                "flamegraph",
                p(&snap),
                "--include",
                "no-such-file",
                "--collapsed",
                "-o",
                "-"
            ]),
            ""
        );
        // The SVG: titled, the system's frames (with --raw) coloured apart.
        let svg_path = dir.join("f.svg");
        memtrace_ok(&["flamegraph", p(&snap), "--raw", "-o", p(&svg_path)]);
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg"),
            "{}",
            t.name
        );
        assert!(svg.contains("Memory live in "), "{}: no title", t.name);
        let tb = top_json(&snap, "traceback", &["--raw"]);
        // Each frame's name as the flame graph shows it (see frame_name).
        let name_of = |f: &Value| -> String {
            let func = f["function"].as_str();
            let n = if f["has_line"].as_bool().unwrap() {
                let at = format!("{}:{}", f["filename"].as_str().unwrap(), f["lineno"]);
                match func {
                    Some(func) => format!("{func} ({at})"),
                    None => at,
                }
            } else {
                match (func, f["module"].as_str()) {
                    (Some(func), Some(m)) => format!("{func} ({})", m.rsplit('/').next().unwrap()),
                    _ => f["filename"].as_str().unwrap().to_string(),
                }
            };
            n.replace(';', ":")
        };
        let mut system = std::collections::HashMap::new();
        for s in tb["statistics"].as_array().unwrap() {
            for f in s["frames"].as_array().unwrap() {
                system.insert(name_of(f), f["system"].as_bool().unwrap());
            }
        }
        let (mut sys_fills, mut user_fills) = (
            std::collections::HashSet::new(),
            std::collections::HashSet::new(),
        );
        for g in svg.split("<g>").skip(1) {
            let Some(title) = g
                .split("<title>")
                .nth(1)
                .and_then(|x| x.split("</title>").next())
            else {
                continue;
            };
            let Some(fill) = g.split("fill=\"").nth(1).and_then(|x| x.split('"').next()) else {
                continue;
            };
            // "name (1,234 bytes, 5.6%)"
            let Some(name) = title.rfind(" (").map(|i| &title[..i]) else {
                continue;
            };
            if name == "all" {
                continue;
            }
            let name = name
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
                .replace("&quot;", "\"");
            match system.get(&name) {
                Some(true) => sys_fills.insert(fill.to_string()),
                Some(false) => user_fills.insert(fill.to_string()),
                None => panic!("{}: frame {name:?} is in no traceback", t.name),
            };
        }
        assert!(
            !sys_fills.is_empty() && !user_fills.is_empty(),
            "{}: {sys_fills:?} {user_fills:?}",
            t.name
        );
        assert!(
            sys_fills.is_disjoint(&user_fills),
            "{}: {sys_fills:?} {user_fills:?}",
            t.name
        );
    }
}
