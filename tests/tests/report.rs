//! `memtrace report` on real traced programs (analyzer/tests/report.rs
//! covers the page itself on synthetic snapshots):
//!
//! * a history (history_plot.c, killed): the page's "memory over time" is
//!   `plot`'s chart of the same file, byte for byte, with the top lines
//!   stacked and the line that grew named in its legend;
//! * a custom allocator's objects (pool_track.c, domain 7): the page says
//!   they are not in traced memory and labels their row; `--domain 7`
//!   (with `--system pool_alloc`, so the rows are the pool's callers) lists
//!   only the pool's objects, `--domain 0` only malloc's blocks.
//!
//! Each page must render in headless Chromium: its script finishes, the
//! console stays silent.

use memtrace_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `memtrace ARGS…`, which must succeed.
fn memtrace(args: &[&str]) {
    let out = Command::new(memtrace_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "memtrace {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `memtrace report ARGS… -o dir/name`; the page's text and path.
fn report(dir: &Path, name: &str, args: &[&str]) -> (String, PathBuf) {
    let html = dir.join(name);
    let mut a = vec!["report"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", html.to_str().unwrap()]);
    memtrace(&a);
    (std::fs::read_to_string(&html).unwrap(), html)
}

/// The text of the page's `<section id="ID"` element.
fn section<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("<section id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id}"));
    let len = page[start..].find("</section>").unwrap();
    &page[start..start + len]
}

/// The Live table's rows: (`file:line` as `<name>:<line>`, domain cell).
fn live_rows(page: &str) -> Vec<(String, String)> {
    section(page, "live")
        .split("<tr><td class=\"rank\">")
        .skip(1)
        .map(|row| {
            let domain = row
                .split("class=\"num domain\">")
                .nth(1)
                .map(|d| d.split('<').next().unwrap().to_string())
                .unwrap_or_else(|| "-".to_string());
            let loc = row
                .split("<span class=\"loc\">")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap();
            let base = loc.rsplit('/').next().unwrap().to_string();
            (base, domain)
        })
        .collect()
}

/// The page rendered: its script finished, nothing on the console.
fn renders(html: &Path) -> Option<String> {
    let Some(chrome) = chromium::chromium() else {
        eprintln!("SKIPPED: the report was not rendered: chromium is missing and scripts/install-deps --test could not install it");
        return None;
    };
    let (dom, console) = chromium::rendered_dom(&chrome, html);
    assert!(console.is_empty(), "console: {console:#?}");
    assert!(
        dom.contains("id=\"report-ready\""),
        "the script did not finish"
    );
    assert!(!dom.contains("id=\"report-error\""), "the script failed");
    Some(dom)
}

#[test]
fn report_of_a_history_stacks_its_lines_as_plot_does() {
    let dir = fresh_dir("report_history");
    let (_, history) = killed_history_plot(&dir, "hr");
    let h = history.to_str().unwrap();
    let (page, html) = report(&dir, "r.html", &[h]);
    let svg_path = dir.join("mem.svg");
    memtrace(&["plot", h, "-o", svg_path.to_str().unwrap()]);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let chart = section(&page, "memory");
    assert!(chart.contains(svg.trim_end()), "not plot's chart: {chart}");
    // The areas and the legend (plot's own test checks their order).
    assert_eq!(chart.matches("class=\"line-area\"").count(), 3, "{chart}");
    let file = "history_plot.c";
    let legend = chart.split("class=\"lines-legend\"").nth(1).unwrap();
    for marker in ["grown[i] = touch", "second[i] = touch"] {
        let line = format!("{file}:{} in main<", line_of(file, marker));
        assert!(legend.contains(&line), "{line} not in the legend: {legend}");
    }
    // --top 0: the totals only, as `plot --top 0`.
    let (totals, _) = report(&dir, "t.html", &[h, "--top", "0"]);
    assert_eq!(
        section(&totals, "memory")
            .matches("class=\"line-area\"")
            .count(),
        0
    );
    let dom = renders(&html);
    if let Some(dom) = dom {
        assert!(dom.contains("id=\"memchart\""));
        let shot = chromium::screenshot(&chromium::chromium().unwrap(), &html, 1280, 1400);
        assert!(std::fs::metadata(&shot).unwrap().len() > 50_000);
    }
}

#[test]
fn report_labels_domains_and_filters_them() {
    ensure_built();
    let dir = fresh_dir("report_domains");
    let prefix = dir.join("p");
    Run::new(prog("pool_track", Opt::O2), &dir)
        .out(&prefix)
        .run()
        .assert_ok();
    let snap = snap_path(&prefix, "exit");
    let s = snap.to_str().unwrap();
    let src = "pool_track.c";
    let at = |m: &str| format!("{src}:{}", line_of(src, m));

    // Unfiltered: the objects' row says domain 7, the heap's rows nothing,
    // and the page says the objects are not in traced memory.
    let (all, _) = report(&dir, "all.html", &[s]);
    let rows = live_rows(&all);
    assert!(rows.contains(&(at("POOL TRACK"), "7".into())), "{rows:?}");
    assert!(
        rows.contains(&(at("SITE chunk"), String::new())),
        "{rows:?}"
    );
    assert!(
        all.contains("domain 7: 14 objects, 656 B. They lie inside heap blocks"),
        "no domain notice"
    );
    assert!(
        all.contains("Domain 7 objects"),
        "no flame view of domain 7"
    );

    // --domain 7: the pool's objects only, by their callers.
    let (only, html) = report(
        &dir,
        "d7.html",
        &[s, "--domain", "7", "--system", "pool_alloc"],
    );
    assert_eq!(
        live_rows(&only),
        vec![
            (at("SITE widgets"), "7".to_string()),
            (at("SITE names"), "7".to_string()),
            (at("SITE lost"), "7".to_string()),
        ]
    );
    assert!(section(&only, "live").contains("In all: 656 B, count 14, in 3 lines."));
    // The whole-run views are the heap's: nothing passes.
    for id in ["peak", "allocated", "temporary"] {
        assert!(section(&only, id).contains("in 0 lines"), "{id}");
    }
    let flame = only.split("id=\"fg-data\">").nth(1).unwrap();
    assert!(!flame.contains("SITE chunk") && !flame.contains("\"Live now"));
    assert!(only.contains("Filtered (--include"));

    // --domain 0: malloc's blocks, no domain column.
    let (heap, _) = report(&dir, "d0.html", &[s, "--domain", "0"]);
    let rows = live_rows(&heap);
    assert!(rows.iter().all(|r| r.1 == "-"), "{rows:?}");
    assert!(rows.contains(&(at("SITE heap"), "-".into())), "{rows:?}");
    assert!(!rows.iter().any(|r| r.0 == at("POOL TRACK")), "{rows:?}");

    if let Some(dom) = renders(&html) {
        assert!(
            dom.contains("Domain 7 objects</button>"),
            "no domain view drawn"
        );
    }
}
