//! The history file (issue 13): a program SIGKILLed while growing leaves
//! its last point on disk; `--at` gives each phase's live set exactly; a
//! fork child writes its own history; a history that cannot be written is
//! one line on stderr and nothing else. Files are read with
//! `memtrace_format::history` and through the `memtrace` CLI.

use memtrace_format::history::{read_at, read_start};
use memtrace_format::Snapshot;
use memtrace_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn history_of(prefix: &Path, pid: u32) -> PathBuf {
    PathBuf::from(format!("{}.{pid}.history", prefix.display()))
}

fn read_history(path: &Path, at_ns: Option<u64>) -> Snapshot {
    let f = std::fs::File::open(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; files: {:?}",
            path.display(),
            list_dir(path.parent().unwrap())
        )
    });
    read_at(std::io::BufReader::new(f), at_ns).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `count=N` on the `top` line of `file:line`.
fn count_on_line(top: &str, marker: &str) -> u64 {
    let l = top
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no line {marker} in:\n{top}"));
    l.split("count=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn sigkill_leaves_the_last_point() {
    for opt in BOTH {
        let dir = fresh_dir("history_kill");
        let prefix = dir.join("hk.%p");
        let out = Run::new(prog("history_kill", opt), &dir)
            .out(&prefix)
            .env("MEMTRACE_HISTORY", "100ms")
            .run();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(libc::SIGKILL),
            "{:?}",
            out.stderr
        );
        let grew: u64 = out
            .stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("GREW "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(grew, 400);
        assert!(snap_files(&dir).is_empty(), "{:?}", list_dir(&dir));
        let path = PathBuf::from(format!("{}.{}.history", dir.join("hk").display(), out.pid));
        let s = read_history(&path, None);
        assert_eq!(s.count_of(3001), 10, "{}", s.describe());
        let n = s.count_of(1003);
        // The last point is at most a period (100 ms: 20 blocks at 5 ms)
        // before the kill; on a loaded machine allow more.
        assert!(
            n <= grew && n + 100 >= grew,
            "{n} blocks of 1003 on disk, {grew} made"
        );
        assert_eq!(s.header.traced_bytes, 10 * 3001 + n * 1003);
        // The CLI's top: the kept line exactly, the growing line as at the last point.
        let p = path.to_str().unwrap();
        let top = memtrace_ok(&["top", p]);
        let file = "history_kill.c";
        assert_eq!(
            count_on_line(
                &top,
                &format!("{file}:{}", line_of(file, "kept[i] = touch"))
            ),
            10,
            "{top}"
        );
        assert_eq!(
            count_on_line(
                &top,
                &format!("{file}:{}", line_of(file, "grow[i] = touch"))
            ),
            n,
            "{top}"
        );
        // The peak as of the last point: the program only grew, so the
        // peak is the last point's live set.
        let peak = s.run.peak.as_ref().unwrap();
        assert_eq!(peak.traced_bytes, s.header.traced_bytes);
        assert_eq!(peak.groups, s.traces);
        let top = memtrace_ok(&["top", "--peak", p]);
        assert_eq!(
            count_on_line(
                &top,
                &format!("{file}:{}", line_of(file, "grow[i] = touch"))
            ),
            n,
            "{top}"
        );
        memtrace_ok(&["stats", p]);
        memtrace_ok(&["summary", p]);
        memtrace_ok(&["traceback", p]);
    }
}

#[test]
fn at_gives_each_phase_exactly() {
    let dir = fresh_dir("history_phases");
    let prefix = dir.join("hp.%p");
    let out = Run::new(prog("history_phases", Opt::O2), &dir)
        .out(&prefix)
        .env("MEMTRACE_HISTORY", "100ms")
        .run();
    out.assert_ok();
    let path = history_of(&dir.join("hp"), out.pid);
    let start = read_start(std::fs::File::open(&path).unwrap()).unwrap();
    let mut phases = Vec::new();
    for l in out.stdout.lines() {
        if let Some(rest) = l.strip_prefix("PHASE ") {
            let mut w = rest.split_whitespace();
            let k: String = w.next().unwrap().to_string();
            let t: u64 = w.next().unwrap().parse().unwrap();
            phases.push((k, t));
        }
    }
    assert_eq!(phases.len(), 3);
    let exps = parse_expects(&out.stdout);
    for (k, t) in &phases {
        let s = read_history(&path, Some(*t));
        for e in exps.iter().filter(|e| &e.snap == k) {
            assert_eq!(
                s.count_of(e.size),
                e.count,
                "phase {k}, size {}: {}",
                e.size,
                s.describe()
            );
        }
        // The same through the CLI's --at (seconds from the start).
        let secs = (*t - start.start_ns) as f64 / 1e9;
        let top = memtrace_ok(&["top", "--at", &format!("{secs:.6}"), path.to_str().unwrap()]);
        let file = "history_phases.c";
        for (marker, size) in [
            ("a[i] = touch", 1111u64),
            ("b[i] = touch", 2222),
            ("c[i] = touch", 3333),
        ] {
            let want = exps
                .iter()
                .find(|e| &e.snap == k && e.size == size)
                .unwrap()
                .count;
            let line = format!("{file}:{}", line_of(file, marker));
            if want == 0 {
                assert!(!top.contains(&line), "phase {k}: {line} in\n{top}");
            } else {
                assert_eq!(count_on_line(&top, &line), want, "phase {k}:\n{top}");
            }
        }
    }
    // A moment is for a history file; --from/--to for diff; diff of one file needs them.
    let snap = dir.join(format!("hp.{}.exit.snap", out.pid));
    let secs = |t: u64| format!("{:.6}", (t - start.start_ns) as f64 / 1e9);
    for (args, code) in [
        (vec!["top", "--at", "1", snap.to_str().unwrap()], 1),
        (vec!["top", "--from", "1", path.to_str().unwrap()], 2),
        (vec!["diff", path.to_str().unwrap()], 2),
    ] {
        let o = Command::new(memtrace_bin()).args(&args).output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(code),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        if args[1] == "--from" {
            // Not an option of `top`: clap's usage error names it.
            assert!(err.contains("'--from'"), "{err}");
        } else {
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
    // The exact peak (history 1.1): the history's last point gives what the
    // exit snapshot gives; at phase 1 the peak was phase 1's live set.
    let stat_lines = |top: &str| -> Vec<String> {
        top.lines()
            .filter(|l| l.contains("count="))
            .map(String::from)
            .collect()
    };
    let p = path.to_str().unwrap();
    let from_history = memtrace_ok(&["top", "--peak", p]);
    let from_snapshot = memtrace_ok(&["top", "--peak", snap.to_str().unwrap()]);
    assert_eq!(
        stat_lines(&from_history),
        stat_lines(&from_snapshot),
        "{from_history}\n{from_snapshot}"
    );
    let file = "history_phases.c";
    let a_line = format!("{file}:{}", line_of(file, "a[i] = touch"));
    let b_line = format!("{file}:{}", line_of(file, "b[i] = touch"));
    // The peak: all 20 of a and the 30 of b, before a's were freed.
    assert_eq!(count_on_line(&from_history, &a_line), 20, "{from_history}");
    assert_eq!(count_on_line(&from_history, &b_line), 30, "{from_history}");
    let at1 = memtrace_ok(&["top", "--peak", "--at", &secs(phases[0].1), p]);
    assert_eq!(count_on_line(&at1, &a_line), 20, "{at1}");
    assert!(!at1.contains(&b_line), "{at1}");
    let peak = read_history(&path, None).run.peak.unwrap();
    // (Its bytes also hold stdout's buffer.)
    assert!(peak.traced_bytes >= 20 * 1111 + 30 * 2222);
    assert_eq!(peak, load(&snap).run.peak.unwrap());
    // diff --from phase 1 --to phase 3.
    let d = memtrace_ok(&[
        "diff",
        path.to_str().unwrap(),
        "--from",
        &secs(phases[0].1),
        "--to",
        &secs(phases[2].1),
    ]);
    assert!(d.contains("count=7 (+7)"), "{d}");
    assert!(d.contains("count=20 (+20)"), "{d}");
    assert!(d.contains("count=0 (-20)"), "{d}");
}

#[test]
fn fork_child_writes_its_own_history() {
    let dir = fresh_dir("history_fork");
    let prefix = dir.join("hf.%p");
    let out = Run::new(prog("history_fork", Opt::O2), &dir)
        .out(&prefix)
        .env("MEMTRACE_HISTORY", "100ms")
        .run();
    out.assert_ok();
    let child: u32 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("CHILD "))
        .unwrap()
        .parse()
        .unwrap();
    let c = read_history(&history_of(&dir.join("hf"), child), None);
    assert_eq!(c.header.pid, child);
    assert_eq!(c.count_of(2221), 7, "{}", c.describe());
    assert_eq!(c.count_of(3331), 3, "{}", c.describe());
    assert_eq!(c.count_of(4441), 0);
    let start =
        read_start(std::fs::File::open(history_of(&dir.join("hf"), child)).unwrap()).unwrap();
    assert_eq!(start.parent_pid, out.pid);
    let p = read_history(&history_of(&dir.join("hf"), out.pid), None);
    assert_eq!(p.count_of(2221), 7, "{}", p.describe());
    assert_eq!(p.count_of(3331), 0);
    assert_eq!(p.count_of(4441), 5, "{}", p.describe());
}

#[test]
fn unwritable_history_is_one_line() {
    let dir = fresh_dir("history_unwritable");
    let prefix = dir.join("hu");
    // The history's name is taken by a directory: it cannot be created.
    std::fs::create_dir(dir.join("hu.history")).unwrap();
    let out = Run::new(prog("history_phases", Opt::O2), &dir)
        .out(&prefix)
        .env("MEMTRACE_HISTORY", "100ms")
        .run();
    out.assert_ok();
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("memtrace:"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].contains("hu.history") && lines[0].contains("no more history"),
        "{}",
        lines[0]
    );
    assert_eq!(
        out.stdout
            .lines()
            .filter(|l| l.starts_with("PHASE "))
            .count(),
        3
    );
    // The exit snapshot is written as ever.
    let s = load(dir.join("hu.exit.snap"));
    assert_eq!(s.count_of(3333), 7);
}

#[test]
fn off_by_default_and_with_off() {
    for env in [None, Some("off")] {
        let dir = fresh_dir("history_off");
        let mut r = Run::new(prog("history_fork", Opt::O2), &dir).out(dir.join("ho.%p"));
        if let Some(v) = env {
            r = r.env("MEMTRACE_HISTORY", v);
        }
        r.run().assert_ok();
        assert!(
            !list_dir(&dir).iter().any(|n| n.ends_with(".history")),
            "{:?}",
            list_dir(&dir)
        );
    }
}

#[test]
fn read_while_being_written_and_truncated_anywhere_in_the_last_record() {
    let dir = fresh_dir("history_live");
    let prefix = dir.join("hl.%p");
    let mut r = Run::new(prog("history_kill", Opt::O2), &dir)
        .out(&prefix)
        .env("MEMTRACE_HISTORY", "10ms")
        .spawn();
    r.wait_for("GREW 150\n");
    // The program is still running: its history so far reads as it stands.
    let files: Vec<String> = list_dir(&dir)
        .into_iter()
        .filter(|n| n.ends_with(".history"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let path = dir.join(&files[0]);
    let mut last = 0;
    for _ in 0..20 {
        let s = read_history(&path, None);
        assert_eq!(s.count_of(3001), 10, "{}", s.describe());
        let n = s.count_of(1003);
        assert!(n >= last && n <= 400, "{n} after {last}");
        last = n;
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = r.wait();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGKILL)
    );
    // The whole file, then cut at every byte of its last record: the points
    // before it, never an error.
    let bytes = std::fs::read(&path).unwrap();
    let full = read_at(&bytes[..], None).unwrap();
    let mut offsets = vec![];
    let mut off = memtrace_format::history::FILE_HEADER_LEN;
    while off + 8 <= bytes.len() {
        offsets.push(off);
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        off += 8 + len;
    }
    assert_eq!(off, bytes.len());
    let last_start = *offsets.last().unwrap();
    let before = read_at(&bytes[..last_start], None).unwrap();
    assert!(before.header.time_ns < full.header.time_ns);
    for cut in last_start..bytes.len() {
        let s = read_at(&bytes[..cut], None).unwrap();
        assert_eq!(s.traces, before.traces, "cut at {cut}");
        assert_eq!(s.header.time_ns, before.header.time_ns);
    }
}

/// `name <ns>` on the program's stdout.
fn stamp(stdout: &str, name: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {stdout}"))
        .parse()
        .unwrap()
}

#[test]
fn plot_of_a_killed_program_names_its_lines_and_its_peak() {
    let dir = fresh_dir("history_plot");
    let (out, path) = killed_history_plot(&dir, "hpl");
    let start = read_start(std::fs::File::open(&path).unwrap()).unwrap();
    let secs = |t: u64| (t - start.start_ns) as f64 / 1e9;
    let (spike, unspike) = (stamp(&out.stdout, "SPIKE"), stamp(&out.stdout, "UNSPIKE"));
    // The peak is the grown line and the spike, made after SPIKE.
    let s = read_history(&path, None);
    let peak = s.run.peak.as_ref().unwrap();
    assert_eq!(peak.traced_bytes, 50 * 20000 + 3_000_000, "{:?}", peak);
    assert!(peak.time_ns >= spike, "{} before {spike}", peak.time_ns);
    let file = "history_plot.c";
    let grown = format!("{file}:{}", line_of(file, "grown[i] = touch"));
    let spiked = format!("{file}:{}", line_of(file, "spike = touch"));
    let second = format!("{file}:{}", line_of(file, "second[i] = touch"));

    let svg_path = dir.join("mem.svg");
    let p = path.to_str().unwrap();
    memtrace_ok(&["plot", p, "-o", svg_path.to_str().unwrap()]);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    // The peak's mark where the program put it: its bytes, and a moment
    // between SPIKE and (the writer applies events within milliseconds;
    // a loaded machine may take longer) UNSPIKE.
    let label = svg
        .split("peak 3.8 MiB at ")
        .nth(1)
        .unwrap_or_else(|| panic!("no peak label in {svg}"));
    let at: f64 = label.split(" s<").next().unwrap().parse().unwrap();
    assert!(
        at >= secs(spike) - 0.005 && at <= secs(unspike) + 2.0,
        "peak at {at} s, spike {}..{} s",
        secs(spike),
        secs(unspike)
    );
    // The lines stacked and named: the spike and the grown line (most
    // bytes at the peak, in that order), then the line that grew after it.
    assert_eq!(svg.matches("class=\"line-area\"").count(), 3, "{svg}");
    let legend = svg.split("class=\"lines-legend\"").nth(1).unwrap();
    let pos = |l: &str| {
        legend
            .find(&format!("{l} in main<"))
            .unwrap_or_else(|| panic!("{l} not in the legend: {legend}"))
    };
    assert!(pos(&spiked) < pos(&grown) && pos(&grown) < pos(&second));
    assert!(legend.contains("The 2 lines with live bytes at the peak, then 1 more"));
    // The snapshot taken with SIGUSR2 and the last point marked.
    assert!(svg.contains(">#1</text>"), "{svg}");
    assert!(svg.contains(">last point</text>"), "{svg}");
    // `top --peak` agrees.
    let top = memtrace_ok(&["top", "--peak", p]);
    assert_eq!(count_on_line(&top, &spiked), 1, "{top}");
    assert_eq!(count_on_line(&top, &grown), 50, "{top}");

    let Some(chrome) = chromium::chromium() else {
        eprintln!("SKIPPED: the chart was not rendered: chromium is missing and scripts/install-deps --test could not install it");
        return;
    };
    let h: u32 = svg
        .split("height=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse::<f64>()
        .unwrap() as u32;
    let (drawn, blank) = chromium::drawn_and_blank(&chrome, &svg_path, 960, h);
    assert!(
        drawn > 8 * blank && drawn > 15_000,
        "chart {drawn} B vs blank {blank} B"
    );
}
