//! The memtrace CLI on real snapshots (issue 3's "done when"): a program
//! allocating at known lines, traced, raising the snapshot signal twice.
//! Expected lines are tracemalloc's formats, computed by hand from the
//! program's sizes: 1000 x 1000 B = 976.6 KiB -> "977 KiB";
//! 500 x 4000 B = 1953.1 KiB -> "1953 KiB".

use memtrace_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Cli {
    out: std::process::Output,
}

impl Cli {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn ok(self) -> Self {
        assert!(
            self.out.status.success(),
            "memtrace failed: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.out.status,
            self.stdout(),
            self.stderr()
        );
        self
    }
}

fn memtrace<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(args: I) -> Cli {
    let out = Command::new(memtrace_bin())
        .args(args)
        .output()
        .expect("run memtrace");
    Cli { out }
}

/// Traces cli_prog and returns (its directory, snap1, snap2).
fn snapshots(opt: Opt) -> (TestDir, PathBuf, PathBuf) {
    let dir = fresh_dir("cli");
    let prefix = dir.join("k");
    let out = Run::new(prog("cli_prog", opt), &dir).out(&prefix).run();
    out.assert_ok();
    let (a, b) = (snap_path(&prefix, "1"), snap_path(&prefix, "2"));
    // The snapshots themselves are exact (else the CLI cannot be).
    assert_eq!(load(&a).count_of(1000), 1000);
    assert_eq!(load(&b).count_of(4000), 500);
    (dir, a, b)
}

fn stat_lines(text: &str) -> Vec<&str> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect()
}

fn p(s: &Path) -> &str {
    s.to_str().unwrap()
}

fn top_names_lines(opt: Opt) {
    let (_d, s1, s2) = snapshots(opt);
    let la = line_of("cli_prog.c", "MARK:site_a");
    let lb = line_of("cli_prog.c", "MARK:site_b");

    let t1 = memtrace(["top", p(&s1)]).ok().stdout();
    assert_eq!(t1.lines().next(), Some("[ Top 10 ]"), "{t1}");
    let first = stat_lines(&t1)[0];
    assert!(
        first.ends_with(&format!(
            "cli_prog.c:{la}: size=977 KiB, count=1000, average=1000 B"
        )),
        "{opt:?}: the biggest line of snapshot 1 is not site A:\n{t1}"
    );

    let t2 = memtrace(["top", p(&s2)]).ok().stdout();
    let l = stat_lines(&t2);
    assert!(
        l[0].ends_with(&format!(
            "cli_prog.c:{lb}: size=1953 KiB, count=500, average=4000 B"
        )),
        "{opt:?}: the biggest line of snapshot 2 is not site B:\n{t2}"
    );
    assert!(
        l[1].ends_with(&format!(
            "cli_prog.c:{la}: size=977 KiB, count=1000, average=1000 B"
        )),
        "{opt:?}: the second line of snapshot 2 is not site A:\n{t2}"
    );

    let lim = memtrace(["top", p(&s2), "--limit", "1"]).ok().stdout();
    assert_eq!(lim.lines().next(), Some("[ Top 1 ]"));
    assert_eq!(stat_lines(&lim).len(), 1, "{lim}");
}

#[test]
fn top_names_the_allocating_lines_o0() {
    top_names_lines(Opt::O0);
}

#[test]
fn top_names_the_allocating_lines_o2() {
    top_names_lines(Opt::O2);
}

#[test]
fn diff_shows_growth() {
    for opt in BOTH {
        let (_d, s1, s2) = snapshots(opt);
        let la = line_of("cli_prog.c", "MARK:site_a");
        let lb = line_of("cli_prog.c", "MARK:site_b");
        let d = memtrace(["diff", p(&s1), p(&s2)]).ok().stdout();
        assert_eq!(d.lines().next(), Some("[ Top 10 differences ]"), "{d}");
        let l = stat_lines(&d);
        assert!(
            l[0].ends_with(&format!(
                "cli_prog.c:{lb}: size=1953 KiB (+1953 KiB), count=500 (+500), average=4000 B"
            )),
            "{opt:?}:\n{d}"
        );
        assert!(
            l.iter().any(|x| x.ends_with(&format!(
                "cli_prog.c:{la}: size=977 KiB (+0 B), count=1000 (+0), average=1000 B"
            ))),
            "{opt:?}: site A unchanged is missing:\n{d}"
        );
    }
}

#[test]
fn traceback_prints_the_stack() {
    for opt in BOTH {
        let (_d, _, s2) = snapshots(opt);
        let lb = line_of("cli_prog.c", "MARK:site_b");
        let cb = line_of("cli_prog.c", "MARK:call_b");
        let t = memtrace(["traceback", p(&s2)]).ok().stdout();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "500 memory blocks: 1953.1 KiB", "{opt:?}:\n{t}");
        assert!(
            lines[1].starts_with("  File \"")
                && lines[1].ends_with(&format!("cli_prog.c\", line {lb}")),
            "{opt:?}: the most recent frame is not site B:\n{t}"
        );
        assert_eq!(
            lines[2], "    site_b[i] = malloc(4000); /* MARK:site_b */",
            "{opt:?}: source line:\n{t}"
        );
        let call = lines
            .iter()
            .position(|l| l.ends_with(&format!("cli_prog.c\", line {cb}")));
        assert!(
            call.is_some(),
            "{opt:?}: main's call of alloc_b is missing:\n{t}"
        );
        assert_eq!(lines[call.unwrap() + 1], "    alloc_b(); /* MARK:call_b */");

        // --oldest-first: main's call comes before the allocation.
        let o = memtrace(["traceback", p(&s2), "--oldest-first"])
            .ok()
            .stdout();
        let pa = o
            .lines()
            .position(|l| l.ends_with(&format!("cli_prog.c\", line {cb}")))
            .expect(&o);
        let pb = o
            .lines()
            .position(|l| l.ends_with(&format!("cli_prog.c\", line {lb}")))
            .expect(&o);
        assert!(pa < pb, "--oldest-first order:\n{o}");

        // --rank 2 is site A.
        let r = memtrace(["traceback", p(&s2), "--rank", "2"]).ok().stdout();
        assert_eq!(
            r.lines().next(),
            Some("1000 memory blocks: 976.6 KiB"),
            "{r}"
        );
    }
}

#[test]
fn stats_and_json() {
    let (_d, s1, s2) = snapshots(Opt::O2);
    let s = load(&s2);
    let st = memtrace(["stats", p(&s2)]).ok().stdout();
    assert!(
        st.contains(&s.header.pid.to_string()),
        "stats lacks the pid:\n{st}"
    );
    assert!(
        st.contains("cli_prog"),
        "stats lacks the command line:\n{st}"
    );
    for args in [
        vec!["top", p(&s2), "--json"],
        vec!["diff", p(&s1), p(&s2), "--json"],
        vec!["traceback", p(&s2), "--json"],
        vec!["stats", p(&s2), "--json"],
    ] {
        let out = memtrace(&args).ok().stdout();
        let v: Result<serde_json::Value, _> = serde_json::from_str(&out);
        assert!(v.is_ok(), "{args:?}: not JSON: {:?}\n{out}", v.err());
        assert!(
            out.contains("cli_prog.c") || args[0] == "stats",
            "{args:?}: JSON names no line of cli_prog.c"
        );
    }
}

/// Bad input: one line `memtrace: FILE: what is wrong`, exit code 1.
#[test]
fn bad_input_exit_1() {
    let (_d, _, s2) = snapshots(Opt::O2);
    let dir = fresh_dir("cli-bad");
    let good = std::fs::read(&s2).unwrap();
    std::fs::write(dir.join("empty.snap"), b"").unwrap();
    std::fs::write(dir.join("trunc.snap"), &good[..good.len() / 2]).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 3] ^= 0x10;
    std::fs::write(dir.join("flipped.snap"), &flipped).unwrap();
    std::fs::write(dir.join("elf.snap"), std::fs::read("/bin/true").unwrap()).unwrap();
    for name in [
        "empty.snap",
        "trunc.snap",
        "flipped.snap",
        "elf.snap",
        "missing.snap",
        ".",
    ] {
        let path = dir.join(name);
        let r = memtrace(["top", p(&path)]);
        assert_eq!(
            r.out.status.code(),
            Some(1),
            "{name}: exit status; stderr {}",
            r.stderr()
        );
        let e = r.stderr();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: want one line on stderr, got {e:?}");
        assert!(lines[0].starts_with("memtrace: "), "{name}: {e:?}");
    }
    let r = memtrace(["top", p(&s2), "--no-such-option"]);
    assert_eq!(r.out.status.code(), Some(2), "bad usage exits 2");
}

/// C++: the lines of the program come out on top, not operator new,
/// std::vector's or std::string's internals. 300 x 3000 B = "879 KiB";
/// 64 x 20000 B = "1250 KiB" (average "19.5 KiB"); 40 x 7000 B = "273 KiB".
#[test]
fn cpp_top_names_the_program_lines() {
    for opt in BOTH {
        let dir = fresh_dir("cli-cpp");
        let prefix = dir.join("k");
        let out = Run::new(prog("cli_cpp", opt), &dir).out(&prefix).run();
        out.assert_ok();
        let s1 = snap_path(&prefix, "1");
        let s = load(&s1);
        assert_eq!(s.count_of(3000), 300);
        assert_eq!(s.count_of(20000), 64);
        assert_eq!(s.count_of(7000), 40);
        let t = memtrace(["top", p(&s1)]).ok().stdout();
        let l = stat_lines(&t);
        let want = [
            format!(
                "cli_cpp.cpp:{}: size=1250 KiB, count=64, average=19.5 KiB",
                line_of("cli_cpp.cpp", "MARK:vector_reserve")
            ),
            format!(
                "cli_cpp.cpp:{}: size=879 KiB, count=300, average=3000 B",
                line_of("cli_cpp.cpp", "MARK:new_array")
            ),
            format!(
                "cli_cpp.cpp:{}: size=273 KiB, count=40, average=7000 B",
                line_of("cli_cpp.cpp", "MARK:string")
            ),
        ];
        for (i, w) in want.iter().enumerate() {
            assert!(
                l.len() > i && l[i].ends_with(w.as_str()),
                "{opt:?}: line {} should end with {w:?}:\n{t}",
                i + 1
            );
        }
    }
}

/// `top --pretty` is the seed's display_top: last two path components,
/// the source line, "N other", the total.
#[test]
fn pretty_top() {
    let (_d, _, s2) = snapshots(Opt::O0);
    let la = line_of("cli_prog.c", "MARK:site_a");
    let lb = line_of("cli_prog.c", "MARK:site_b");
    let t = memtrace(["top", p(&s2), "--pretty", "--limit", "2"])
        .ok()
        .stdout();
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "Top 2 lines", "{t}");
    assert_eq!(
        lines[1],
        format!("#1: programs/cli_prog.c:{lb}: 1953.1 KiB"),
        "{t}"
    );
    assert_eq!(
        lines[2], "    site_b[i] = malloc(4000); /* MARK:site_b */",
        "{t}"
    );
    assert_eq!(
        lines[3],
        format!("#2: programs/cli_prog.c:{la}: 976.6 KiB"),
        "{t}"
    );
    assert_eq!(
        lines[4], "    site_a[i] = malloc(1000); /* MARK:site_a */",
        "{t}"
    );
    let total = load(&s2).total_bytes();
    let last = *lines.last().unwrap();
    assert_eq!(
        last,
        format!("Total allocated size: {:.1} KiB", total as f64 / 1024.0),
        "{t}"
    );
}

/// Frames in a library unloaded by dlclose before the snapshot still
/// symbolize: top names the library's allocating line.
#[test]
fn dlclosed_library_frames_symbolize() {
    let dir = fresh_dir("cli-dl");
    let prefix = dir.join("k");
    let lib = shared_lib("libdlalloc");
    let out = Run::new(prog("dl_prog", Opt::O2), &dir)
        .out(&prefix)
        .arg(lib.to_str().unwrap())
        .run();
    out.assert_ok();
    let s1 = snap_path(&prefix, "1");
    assert_eq!(load(&s1).count_of(7070), 100);
    let t = memtrace(["top", p(&s1)]).ok().stdout();
    let want = format!(
        "libdlalloc.c:{}: size=690 KiB, count=100, average=7070 B",
        line_of("libdlalloc.c", "MARK:dl_malloc")
    );
    assert!(
        stat_lines(&t).first().is_some_and(|l| l.ends_with(&want)),
        "want a first line ending with {want:?}:\n{t}"
    );
}
