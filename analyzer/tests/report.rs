//! `memtrace plot` and `memtrace report` in a real browser: synthetic 1.2
//! snapshots whose stacks point into a C program compiled here (in a
//! directory whose name holds `<`, `&` and quotes, so every embedded name
//! must be escaped), rendered by headless Chromium (Debian's `chromium`,
//! which `scripts/install-deps --test` installs). The page's own script adds
//! `#report-ready` only after it drew the flame graph, and `#report-error`
//! on any error; the console must stay silent; the chart's screenshot must
//! not be blank.

use memtrace_format::{
    encode, Header, MemoryUse, Peak, SnapshotKind, SnapshotMark, Stack, StackTotals, TimePoint,
    Timeline, TraceGroup, WholeRun,
};
use memtrace_tests::chromium::{self, browse, chromium, console_lines, screenshot};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::*;

/// Line numbers matter: the tests name them.
const SRC: &str = r#"#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) void *make_buffer(size_t n) { return malloc(n); }
__attribute__((noinline)) void *parse_row(size_t n) { return make_buffer(n); }
__attribute__((noinline)) void *load_table(size_t n) { return parse_row(n); }
__attribute__((noinline)) char *intern_name(const char *s) { return strdup(s); }
__attribute__((noinline)) void *cache_entry(size_t n) { return calloc(1, n); }
__attribute__((noinline)) void *temp_scratch(size_t n) { return malloc(n); }

int main(int argc, char **argv) {
    void *t = load_table(argc);
    void *c = cache_entry(argc);
    void *s = temp_scratch(argc);
    char *n = intern_name(argv[0]);
    void *r = parse_row(argc);
    free(s);
    return t == 0 && c == 0 && n == 0 && r == 0;
}
"#;

struct Fixture {
    dir: PathBuf,
    exe: PathBuf,
    /// The source file's path, as the labels print it.
    src: String,
    /// Stacks 1..=5: load_table's buffer (make_buffer ← parse_row ←
    /// load_table ← main), cache_entry, temp_scratch, intern_name, parse_row
    /// called from main.
    stacks: Vec<Vec<u64>>,
}

/// The directory name every embedded file name carries.
const ODD_DIR: &str = "src <b>&amp; \"q\" 'x'";

fn fixture(tag: &str) -> Fixture {
    let dir = tmpdir(tag);
    let srcdir = dir.join(ODD_DIR);
    std::fs::create_dir_all(&srcdir).unwrap();
    let (srcp, exe) = compile_c(
        &srcdir,
        "app",
        SRC,
        &["-g", "-O0", "-fno-omit-frame-pointer"],
    );
    let site = |f: &str, t: &str| rets(&exe, f, t)[0];
    let buf = site("make_buffer", "malloc");
    let row = site("parse_row", "make_buffer");
    let stacks = vec![
        vec![
            buf,
            row,
            site("load_table", "parse_row"),
            site("main", "load_table"),
        ],
        vec![site("cache_entry", "calloc"), site("main", "cache_entry")],
        vec![site("temp_scratch", "malloc"), site("main", "temp_scratch")],
        vec![site("intern_name", "strdup"), site("main", "intern_name")],
        vec![buf, row, site("main", "parse_row")],
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

fn header(f: &Fixture, traced: u64, peak: u64) -> Header {
    Header {
        kind: SnapshotKind::Signal,
        index: 3,
        pid: 4242,
        time_ns: T0 + 4_000_000_000,
        seq: 90_000,
        frame_limit: 32,
        traced_bytes: traced,
        peak_bytes: peak,
        alloc_count: 5000,
        free_count: 4000,
        sample_rate: 0,
        cmdline: vec![b"./app".to_vec(), b"--rows=<40>".to_vec()],
        exe: f.exe.to_str().unwrap().as_bytes().to_vec(),
        malloc_owner: Vec::new(),
    }
}

fn group(stack: u64, size: u64, count: u64) -> TraceGroup {
    TraceGroup { stack, size, count }
}

fn sum(groups: &[TraceGroup]) -> u64 {
    groups.iter().map(|g| g.size * g.count).sum()
}

/// A run of 4 s: traced memory climbs to its peak at 2.013 s, falls, and
/// holds; snapshots #1 and #2 were taken at 1 s and 3 s, this one (#3) at 4 s.
fn snapshot(f: &Fixture, with_timeline: bool) -> memtrace_format::Snapshot {
    let live = vec![
        group(1, MIB, 8),
        group(2, 4000, 1000),
        group(4, 24, 500),
        group(5, 100, 3),
    ];
    let peak_groups = vec![group(1, MIB, 40), group(2, 4000, 2000), group(4, 24, 500)];
    let peak = sum(&peak_groups);
    let now = sum(&live);
    let points = (1..=400u64)
        .map(|i| {
            let t = i * 10_000_000;
            let traced = if t <= 2_000_000_000 {
                peak * t / 2_013_000_000
            } else if t <= 2_500_000_000 {
                peak - (peak - now) * (t - 2_000_000_000) / 500_000_000
            } else {
                now
            };
            TimePoint {
                time_ns: T0 + t,
                traced_bytes: traced,
                rss_bytes: traced + 6 * MIB + (i % 7) * 40_000,
            }
        })
        .collect();
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
    memtrace_format::Snapshot {
        header: header(f, now, peak),
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
        traces: live,
        domains: Vec::new(),
        run: WholeRun {
            peak: Some(Peak {
                time_ns: T0 + 2_013_000_000,
                event: 60_000,
                traced_bytes: peak,
                groups: peak_groups,
            }),
            totals: vec![
                tot(1, 60, 60 * MIB, 52, 52 * MIB, 0, 0),
                tot(2, 3000, 12_000_000, 2000, 8_000_000, 10, 40_000),
                tot(3, 1500, 6_000_000, 1500, 6_000_000, 1500, 6_000_000),
                tot(4, 500, 12_000, 0, 0, 0, 0),
                tot(5, 3, 300, 0, 0, 0, 0),
            ],
            timeline: with_timeline.then(|| Timeline {
                start_ns: T0,
                interval_ns: 10_000_000,
                points,
                snapshots: vec![
                    SnapshotMark {
                        index: 1,
                        time_ns: T0 + 1_000_000_000,
                    },
                    SnapshotMark {
                        index: 2,
                        time_ns: T0 + 3_000_000_000,
                    },
                ],
            }),
            memory: Some(MemoryUse {
                rss_bytes: now + 6 * MIB,
                rss_peak_bytes: peak + 7 * MIB,
                heap_arena_bytes: now + 2 * MIB,
                heap_free_bytes: MIB,
                heap_mmap_bytes: 0,
            }),
        },
    }
}

fn write(f: &Fixture, name: &str, s: &memtrace_format::Snapshot) -> String {
    let p = f.dir.join(name);
    std::fs::write(&p, encode(s)).unwrap();
    p.to_str().unwrap().to_string()
}

/// `memtrace ARGS` must succeed with nothing on stderr.
fn ok(args: &[&str]) {
    let o = run(args);
    assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
    assert_eq!(o.stderr, "", "{args:?}");
}

#[test]
fn plot_without_timeline_is_one_line() {
    let f = fixture("plot-no-tl");
    let p = write(&f, "a.3.snap", &snapshot(&f, false));
    let out = f.dir.join("mem.svg");
    let o = run(&["plot", &p, "-o", out.to_str().unwrap()]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr,
        format!("memtrace: {p}: no memory timeline recorded: plotting needs a snapshot of format 1.2 (a newer libtrace.so)\n")
    );
    assert!(!out.exists());
    // The report says so in its chart's place and still draws the rest.
    let html = f.dir.join("r.html");
    ok(&["report", &p, "-o", html.to_str().unwrap()]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("no memory timeline recorded"));
    assert!(!page.contains("id=\"memchart\""));

    // A file without any whole-run section (as before format 1.2): the
    // live blocks' table and flame graph, and why the rest is missing.
    let mut old = snapshot(&f, false);
    old.run = WholeRun::default();
    let p = write(&f, "old.snap", &old);
    let o = run(&["plot", &p, "-o", out.to_str().unwrap()]);
    assert_eq!(o.code, 1);
    assert_eq!(o.stderr.lines().count(), 1);
    ok(&["report", &p, "-o", html.to_str().unwrap()]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains(
        "no peak recorded: the whole-run sections need a newer libtrace.so (format 1.2)"
    ));
    assert!(page.contains(
        "no allocation totals recorded: the whole-run sections need a newer libtrace.so (format 1.2)"
    ));
    assert!(
        page.contains("<tr><th>Run time</th><td>needs a newer libtrace.so (format 1.2)</td></tr>")
    );
    assert!(page.contains("The blocks live at the snapshot moment"));
    assert!(page.contains("\"title\":\"Live now\""));
    assert!(!page.contains("\"title\":\"At the peak\""));
}

#[test]
fn plot_svg_shows_the_run() {
    let f = fixture("plot");
    let p = write(&f, "a.3.snap", &snapshot(&f, true));
    let out = f.dir.join("mem.svg");
    ok(&["plot", &p, "-o", out.to_str().unwrap(), "--top", "3"]);
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    // Title (escaped command line), marks, the peak, axes with units.
    assert!(svg.contains("Memory of ./app --rows=&lt;40&gt;"), "{svg}");
    assert!(svg.contains("pid 4242 · snapshot #3 · 2023-11-14 22:13:24 UTC"));
    for label in [
        ">#1<", ">#2<", ">#3<", ">40 MiB<", ">0<", ">4 s<", ">0.5 s<",
    ] {
        assert!(svg.contains(label), "{label} missing");
    }
    assert!(svg.contains("peak 47.6 MiB at 2.01 s"));
    assert!(svg.contains("peak RSS 54.6 MiB"));
    assert!(svg.contains("the top 3 lines over time need a history file"));
    // Well-formed enough for a strict XML reader: no raw & or < in text.
    assert!(!svg.contains("& "));
    // `-` writes to stdout.
    let o = run(&["plot", &p, "-o", "-", "--top", "3"]);
    assert_eq!(o.code, 0);
    assert_eq!(o.stdout, svg);

    let Some(chrome) = chromium() else {
        eprintln!("SKIPPED: the chart was not rendered: chromium is missing and scripts/install-deps --test could not install it");
        return;
    };
    // Not blank: against a blank SVG of the same size, the chart's
    // screenshot is far bigger (a PNG of one colour compresses to almost
    // nothing).
    let blank = f.dir.join("blank.svg");
    std::fs::write(
        &blank,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="960" height="500"><rect width="960" height="500" fill="#fff"/></svg>"##,
    )
    .unwrap();
    let shot = screenshot(&chrome, &out, 960, 500);
    let blank_shot = screenshot(&chrome, &blank, 960, 500);
    let (a, b) = (
        std::fs::metadata(&shot).unwrap().len(),
        std::fs::metadata(&blank_shot).unwrap().len(),
    );
    eprintln!("plot screenshot: {} ({a} B; blank {b} B)", shot.display());
    assert!(a > 8 * b && a > 15_000, "chart {a} B vs blank {b} B");
}

/// Renders `html` and returns the DOM, asserting the script finished and
/// logged nothing.
fn rendered_dom(chrome: &Path, html: &Path) -> String {
    let (dom, console) = chromium::rendered_dom(chrome, html);
    assert!(console.is_empty(), "console: {console:#?}");
    dom
}

#[test]
fn report_renders_in_chromium() {
    let f = fixture("report");
    let p = write(&f, "a.3.snap", &snapshot(&f, true));
    let html = f.dir.join("report.html");
    ok(&["report", &p, "-o", html.to_str().unwrap(), "--limit", "3"]);
    let page = std::fs::read_to_string(&html).unwrap();
    // Nothing from the network; every name escaped.
    for bad in ["http://", "https://", "src=\"", "<link"] {
        let n = page.matches(bad).count();
        // The SVG namespace is the only URL.
        let allowed = if bad == "http://" { 1 } else { 0 };
        assert!(n <= allowed, "{bad} appears {n} times");
    }
    assert!(!page.contains(ODD_DIR), "a raw file name in the page");
    let escaped = f
        .src
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    assert!(escaped.ends_with("src &lt;b&gt;&amp;amp; &quot;q&quot; &#39;x&#39;/app.c"));
    assert!(page.contains(&format!("{escaped}:3</span>")));
    // The summary's lines, the tables with source lines.
    assert!(page.contains(
        "<tr><th>Run time</th><td>4.000 s (from the start of tracing to this snapshot)</td></tr>"
    ));
    assert!(page.contains("<code class=\"src\">__attribute__((noinline)) void *make_buffer(size_t n) { return malloc(n); }</code>"));
    assert!(page.contains("count 5063, in 4 lines, the biggest 3 shown"));
    for id in [
        "summary",
        "memory",
        "flame",
        "live",
        "peak",
        "allocated",
        "temporary",
    ] {
        assert!(page.contains(&format!("<section id=\"{id}\"")), "{id}");
    }

    let Some(chrome) = chromium() else {
        eprintln!("SKIPPED: the report was not rendered: chromium is missing and scripts/install-deps --test could not install it");
        return;
    };
    let dom = rendered_dom(&chrome, &html);
    assert!(
        dom.contains("id=\"report-ready\""),
        "the script did not finish"
    );
    assert!(!dom.contains("id=\"report-error\""), "the script failed");
    assert!(dom.contains("<svg") && dom.contains("id=\"memchart\""));
    // The flame graph's boxes, made by the script: the root, then main
    // and the frames under it, with the escaped file name as the DOM
    // serialises it.
    let boxes = dom.matches("class=\"fg-node").count();
    assert!(boxes >= 8, "{boxes} flame graph boxes");
    for name in [
        "all (Live now)",
        ">main (app.c:11)<",
        ">main (app.c:12)<",
        ">load_table (app.c:5)<",
        ">parse_row (app.c:4)<",
        ">make_buffer (app.c:3)<",
    ] {
        assert!(dom.contains(name), "{name} not drawn");
    }
    assert!(dom.contains("At the peak</button>"));
    assert!(dom.contains("Search functions and files"));
    // Click to zoom and search, driven by the page's own self-test.
    let b = browse(&chrome, &html, "#fg-selftest", &chromium::dom_args());
    assert!(console_lines(&b.stderr).is_empty(), "{}", b.stderr);
    let st = b
        .stdout
        .split("id=\"fg-selftest\"")
        .nth(1)
        .expect("no self-test result")
        .split('>')
        .next()
        .unwrap()
        .to_string();
    let attr = |name: &str| -> String {
        let k = format!("{name}=\"");
        let i = st.find(&k).unwrap_or_else(|| panic!("{name} in {st}")) + k.len();
        st[i..].split('"').next().unwrap().to_string()
    };
    // load_table fills the width; root and main stay above it.
    assert_eq!(attr("data-zoomed"), "load_table (app.c:5)");
    let width: f64 = attr("data-zoomed-width")
        .trim_end_matches("px")
        .parse()
        .unwrap();
    assert!(width > 900.0, "{st}");
    assert_eq!(attr("data-ancestors"), "2");
    // "cache_" matches cache_entry's frame, 3906 KiB of the 11.8 MiB.
    assert_eq!(attr("data-matches"), "1");
    assert!(
        attr("data-status").contains("1 matching frame: 3.8 MiB (32.3%)"),
        "{st}"
    );
    assert_eq!(attr("data-after-reset"), "0");

    let shot = screenshot(&chrome, &html, 1280, 2600);
    eprintln!("report screenshot: {}", shot.display());
    assert!(std::fs::metadata(&shot).unwrap().len() > 50_000);

    // The test sees a script error: the same page with broken data.
    let broken = f.dir.join("broken.html");
    let start = page.find("id=\"fg-data\">").unwrap() + "id=\"fg-data\">".len();
    std::fs::write(
        &broken,
        format!("{}{{oops{}", &page[..start], &page[start..]),
    )
    .unwrap();
    let b = browse(&chrome, &broken, "", &chromium::dom_args());
    assert!(b.stdout.contains("id=\"report-error\""));
    assert!(!b.stdout.contains("id=\"report-ready\""));
    assert!(!console_lines(&b.stderr).is_empty(), "{}", b.stderr);
}

/// 50 000 distinct stacks: the report stays small (the tree is
/// aggregated and pruned, the tables capped) and still renders.
#[test]
fn report_on_50k_stacks() {
    let f = fixture("report-big");
    let mut s = snapshot(&f, true);
    let addrs: Vec<u64> = f.stacks.iter().flatten().copied().collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let n = 50_000u64;
    s.stacks = (1..=n)
        .map(|id| Stack {
            id,
            frames: (0..12).map(|_| *rng.pick(&addrs)).collect(),
            truncated: false,
        })
        .collect();
    s.traces = (1..=n)
        .map(|id| group(id, 16 + rng.below(4096), 1 + rng.below(5)))
        .collect();
    let peak_groups: Vec<TraceGroup> = (1..=n).step_by(2).map(|id| group(id, 64, 3)).collect();
    let peak = s.run.peak.as_mut().unwrap();
    peak.traced_bytes = sum(&peak_groups);
    peak.groups = peak_groups;
    s.run.totals = (1..=n)
        .map(|id| StackTotals {
            stack: id,
            allocs: 10,
            alloc_bytes: 1000,
            frees: 5,
            freed_bytes: 500,
            temporary: 2,
            temporary_bytes: 200,
        })
        .collect();
    s.header.traced_bytes = sum(&s.traces);
    let p = write(&f, "big.snap", &s);
    let html = f.dir.join("big.html");
    // Its time is make bench's business (tests assert no time): printed only.
    let t = std::time::Instant::now();
    ok(&["report", &p, "-o", html.to_str().unwrap()]);
    let took = t.elapsed();
    let size = std::fs::metadata(&html).unwrap().len();
    eprintln!("report on {n} stacks: {took:?}, {size} B");
    assert!(size < 8 << 20, "{size} B");
    if let Some(chrome) = chromium() {
        let dom = rendered_dom(&chrome, &html);
        assert!(dom.contains("id=\"report-ready\""));
    }
}

/// The report of real traced C++ and Rust programs (memtrace run with the
/// libtrace.so built beside memtrace) renders in Chromium, and its flame
/// graph names each program's own allocating function, demangled.
#[test]
fn report_of_real_cpp_and_rust_programs() {
    let dir = tmpdir("report-real");
    let cpp = dir.join("names.cpp");
    std::fs::write(
        &cpp,
        "#include <string>\n#include <vector>\n\
         __attribute__((noinline)) std::vector<std::string> *make_names(int n) {\n\
           auto *v = new std::vector<std::string>;\n\
           for (int i = 0; i < n; i++) v->push_back(std::string(100, 'x') + std::to_string(i));\n\
           return v;\n}\n\
         int main() { auto *keep = make_names(2000); return keep->size() == 2000 ? 0 : 1; }\n",
    )
    .unwrap();
    let rs = dir.join("blocks.rs");
    std::fs::write(
        &rs,
        "#[inline(never)]\nfn rust_alloc_site(n: usize) -> Vec<Vec<u8>> { (0..n).map(|i| vec![i as u8; 4096]).collect() }\n\
         fn main() { let v = rust_alloc_site(500); std::mem::forget(v); }\n",
    )
    .unwrap();
    let programs = [
        (
            "C++",
            Command::new("g++")
                .args(["-g", "-O2", "-o"])
                .arg(dir.join("names"))
                .arg(&cpp)
                .status(),
            dir.join("names"),
            "make_names",
        ),
        (
            "Rust",
            Command::new("rustc")
                .args(["-g", "-C", "opt-level=1", "-o"])
                .arg(dir.join("blocks"))
                .arg(&rs)
                .status(),
            dir.join("blocks"),
            "blocks::rust_alloc_site",
        ),
    ];
    let chrome = chromium();
    for (lang, built, exe, function) in programs {
        assert!(built.unwrap().success(), "{lang}: the compiler failed");
        let prefix = dir.join(format!("{lang}-k"));
        let o = run(&[
            "run",
            "--out",
            prefix.to_str().unwrap(),
            "--",
            exe.to_str().unwrap(),
        ]);
        assert_eq!(o.code, 0, "{lang}: {}", o.stderr);
        let snap = format!("{}.exit.snap", prefix.display());
        let html = dir.join(format!("{lang}.html"));
        ok(&["report", &snap, "-o", html.to_str().unwrap()]);
        let svg = dir.join(format!("{lang}.svg"));
        ok(&["plot", &snap, "-o", svg.to_str().unwrap()]);
        let page = std::fs::read_to_string(&html).unwrap();
        assert!(
            page.contains(function),
            "{lang}: the page never names {function}"
        );
        let Some(chrome) = &chrome else {
            eprintln!("SKIPPED: {lang}'s report was not rendered: chromium is missing");
            continue;
        };
        let dom = rendered_dom(chrome, &html);
        assert!(
            dom.contains("id=\"report-ready\""),
            "{lang}: the script did not finish"
        );
        assert!(
            !dom.contains("id=\"report-error\""),
            "{lang}: the script failed"
        );
        let boxes: Vec<&str> = dom.split("class=\"fg-node").skip(1).collect();
        assert!(
            boxes.iter().any(|b| b.contains(&format!(">{function}"))),
            "{lang}: no flame graph box for {function}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
