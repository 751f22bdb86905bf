//! `memtrace attach PID` (issue 16): tracing a running program that was
//! started without libtrace.so. The programs talk over stdin/stdout: they
//! say "ready", the test attaches, sends "go", they allocate a known set of
//! blocks and say "quiet", the test takes snapshots with `memtrace snapshot
//! PID` and sends "end". Expected figures come from the programs' sources
//! (their headers list them).

use memtrace_tests::*;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A program under test, spoken to line by line.
struct Talk {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Talk {
    /// `exe ARGS` started without libtrace.so, once it said "ready".
    fn start(exe: &Path, args: &[&Path], dir: &Path) -> Talk {
        let mut c = Command::new(exe);
        c.args(args).env_remove("LD_PRELOAD");
        Talk::spawn(c, dir)
    }

    /// `c` started in `dir` with its stdin and stdout ours, once it said
    /// "ready".
    fn spawn(mut c: Command, dir: &Path) -> Talk {
        // Built before the program runs: its threads keep two cores busy.
        memtrace_bin();
        let mut child = c
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the program");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut t = Talk {
            child,
            stdin,
            stdout,
        };
        t.expect("ready");
        t
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn expect(&mut self, word: &str) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), word, "the program said {line:?}");
    }

    /// One write(2) for the whole line: `writeln!` writes the word and the
    /// newline separately, and a program that acts on the word alone may
    /// have exited (closing the pipe) before the newline follows.
    fn say(&mut self, word: &str) {
        self.stdin
            .write_all(format!("{word}\n").as_bytes())
            .unwrap();
        self.stdin.flush().unwrap();
    }

    /// Its remaining stdout, stderr and exit code.
    fn finish(mut self) -> (String, String, Option<i32>) {
        drop(self.stdin);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).unwrap();
        let out = self.child.wait_with_output().unwrap();
        (
            rest,
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code(),
        )
    }
}

fn memtrace(args: &[&str]) -> std::process::Output {
    Command::new(memtrace_bin())
        .args(args)
        .output()
        .expect("run memtrace")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `memtrace attach PID --out PREFIX`; panics unless it attached.
fn attach(pid: u32, prefix: &Path) {
    let out = memtrace(&[
        "attach",
        &pid.to_string(),
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "memtrace attach failed: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).starts_with(&format!("attached to process {pid} ")),
        "{}",
        text(&out.stdout)
    );
}

/// `memtrace snapshot PID`: the path of the new snapshot.
fn snapshot(pid: u32) -> std::path::PathBuf {
    let out = memtrace(&["snapshot", &pid.to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().into()
}

/// `memtrace top SNAP` lines (without the header).
fn top(snap: &Path) -> Vec<String> {
    let out = memtrace(&["top", snap.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter(|l| l.contains(": size="))
        .map(str::to_string)
        .collect()
}

fn stats_json(snap: &Path) -> serde_json::Value {
    let out = memtrace(&["stats", "--json", snap.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The busy program: after the attach, live and allocated are exactly the
/// known blocks; the churn threads' blocks, allocated before and after the
/// attach and freed since, leave nothing; the program's own checks pass.
fn busy_program(opt: Opt) {
    let dir = fresh_dir("attach");
    let prefix = dir.join("a");
    let mut p = Talk::start(&prog("attach_threads", opt), &[], &dir);
    let pid = p.pid();
    attach(pid, &prefix);
    p.say("go");
    p.expect("quiet");
    let snap = snapshot(pid);
    let s = load(&snap);
    let src = "attach_threads.c";
    // (line, block size, blocks, their total as tracemalloc prints it:
    // 7 x 4242 B = 29694 B = 29.0 KiB)
    let want = [
        (line_of(src, "ATTACH_KEPT"), 4242u64, 7u64, "29.0 KiB"),
        (line_of(src, "ATTACH_CALLOC"), 1665, 3, "4995 B"),
        (line_of(src, "ATTACH_REALLOC"), 3333, 1, "3333 B"),
        (line_of(src, "ATTACH_STRDUP"), 100, 1, "100 B"),
    ];
    let mut lines = top(&snap);
    lines.sort();
    let mut expect: Vec<String> = want
        .iter()
        .map(|&(line, size, n, shown)| {
            format!("{src}:{line}: size={shown}, count={n}, average={size} B")
        })
        .collect();
    expect.sort();
    let got: Vec<String> = lines
        .iter()
        .map(|l| l.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(got, expect, "{}", s.describe());
    let bytes: u64 = want.iter().map(|w| w.1 * w.2).sum();
    assert_eq!((s.total_count(), s.total_bytes()), (12, bytes));
    assert_eq!(s.header.traced_bytes, bytes);
    let j = stats_json(&snap);
    assert_eq!(j["live"]["blocks"], 12);
    assert_eq!(j["live"]["size"], bytes);
    assert_eq!(j["tracing_began"]["by"], "attach", "{j}");
    assert!(j["tracing_began"]["seconds_after_start"].as_f64().unwrap() > 0.0);
    // Everything allocated since the attach and freed was allocated since
    // the attach: no frees of blocks memtrace never saw.
    assert_eq!(s.header.alloc_count - s.header.free_count, 12);
    // The snapshot says when tracing began.
    let summary = memtrace(&["summary", snap.to_str().unwrap()]);
    assert!(
        text(&summary.stdout).contains("(memtrace attach)"),
        "{}",
        text(&summary.stdout)
    );

    p.say("end");
    let (rest, stderr, code) = p.finish();
    assert_eq!(rest, "threads 4, errors 0\n", "stderr: {stderr}");
    assert_eq!(code, Some(0), "stderr: {stderr}");
    // The exit snapshot: the 7 kept blocks, after 49 frees of blocks from
    // before the attach (no negative counts, no false frees).
    let exit = load(snap_path(&prefix, "exit"));
    assert_eq!((exit.total_count(), exit.total_bytes()), (7, 7 * 4242));
    assert_eq!(exit.header.alloc_count - exit.header.free_count, 7);
}

#[test]
fn busy_program_o0() {
    busy_program(Opt::O0);
}

#[test]
fn busy_program_o2() {
    busy_program(Opt::O2);
}

/// A library dlopen()ed after the attach: its allocations are seen.
#[test]
fn library_loaded_after_the_attach() {
    let dir = fresh_dir("attach-dlopen");
    let prefix = dir.join("d");
    let lib = shared_lib("libattach_plugin");
    let mut p = Talk::start(&prog("attach_dlopen", Opt::O2), &[&lib], &dir);
    let pid = p.pid();
    attach(pid, &prefix);
    p.say("go");
    p.expect("quiet");
    let s = load(snapshot(pid));
    assert_eq!(s.count_of(6161), 5, "{}", s.describe());
    assert_eq!(s.count_of(5 * 8), 1, "{}", s.describe());
    assert_eq!(s.total_count(), 6, "{}", s.describe());
    let lines = top(&snapshot(pid));
    let block = line_of("libattach_plugin.c", "PLUGIN_BLOCK");
    assert!(
        lines.iter().any(|l| l.contains(&format!(
            "libattach_plugin.c:{block}: size=30.1 KiB, count=5"
        ))),
        "{lines:?}"
    );
    p.say("end");
    let (rest, stderr, code) = p.finish();
    assert_eq!((rest.as_str(), code), ("done\n", Some(0)), "{stderr}");
}

/// A non-PIE executable that takes malloc's address (Debian's python3):
/// its direct calls and those through the pointer are both seen.
#[test]
fn non_pie_executable_taking_malloc_address() {
    let dir = fresh_dir("attach-nopie");
    let prefix = dir.join("n");
    for opt in BOTH {
        let mut p = Talk::start(&prog("nopie_attach_fnptr", opt), &[], &dir);
        let pid = p.pid();
        attach(pid, &prefix);
        p.say("go");
        p.expect("quiet");
        let s = load(snapshot(pid));
        assert_eq!(
            (s.count_of(5151), s.count_of(5252)),
            (4, 2),
            "{}",
            s.describe()
        );
        assert_eq!(s.total_count(), 6, "{}", s.describe());
        p.say("end");
        let (rest, stderr, code) = p.finish();
        assert_eq!((rest.as_str(), code), ("done\n", Some(0)), "{stderr}");
        for f in list_dir(&dir) {
            std::fs::remove_file(dir.join(f)).unwrap();
        }
    }
}

/// A thread that never waits in a system call: caught as it enters one
/// (its non-blocking poll), and traced exactly from then on.
#[test]
fn thread_that_never_waits() {
    let dir = fresh_dir("attach-busy");
    let prefix = dir.join("b");
    let mut p = Talk::start(&prog("attach_busy_single", Opt::O2), &[], &dir);
    let pid = p.pid();
    attach(pid, &prefix);
    p.say("go");
    p.expect("quiet");
    let snap = snapshot(pid);
    let s = load(&snap);
    assert_eq!(
        (s.total_count(), s.count_of(7373)),
        (9, 9),
        "{}",
        s.describe()
    );
    let line = line_of("attach_busy_single.c", "ATTACH_BUSY_BLOCK");
    let lines = top(&snap);
    assert!(
        lines[0].ends_with(&format!(
            "attach_busy_single.c:{line}: size=64.8 KiB, count=9, average=7373 B"
        )),
        "{lines:?}"
    );
    p.say("end");
    let (rest, stderr, code) = p.finish();
    assert_eq!((rest.as_str(), code), ("done\n", Some(0)), "{stderr}");
    // The history (on by default, as under `memtrace run`) says so too.
    let history = dir.join("b.history");
    let out = memtrace(&["summary", history.to_str().unwrap()]);
    let summary = text(&out.stdout);
    assert!(
        summary.contains("Tracing began:") && summary.contains("(memtrace attach)"),
        "{summary}{}",
        text(&out.stderr)
    );
}

/// A statically linked program is refused with one line and runs on.
#[test]
fn static_binary_is_refused() {
    let dir = fresh_dir("attach-static");
    let mut p = Talk::start(&prog("static_attach_target", Opt::O0), &[], &dir);
    let out = memtrace(&[
        "attach",
        &p.pid().to_string(),
        "--out",
        dir.join("s").to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is statically linked"), "{err}");
    p.say("x");
    let (rest, stderr, code) = p.finish();
    assert_eq!((rest.as_str(), code), ("done\n", Some(0)), "{stderr}");
    assert!(list_dir(&dir).is_empty(), "{:?}", list_dir(&dir));
}

/// Refusals that leave the process alone: no such process; a process
/// traced already (by LD_PRELOAD); a program with its own malloc.
#[test]
fn refusals_are_one_line() {
    let out = memtrace(&["attach", "999999999"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "memtrace: no process 999999999\n");

    let dir = fresh_dir("attach-refused");
    let mut traced = Command::new(prog("attach_dlopen", Opt::O0));
    traced
        .arg("/nonexistent.so")
        .env("LD_PRELOAD", libtrace())
        .env("MEMTRACE_OUT", dir.join("t"));
    let mut p = Talk::spawn(traced, &dir);
    let out = memtrace(&["attach", &p.pid().to_string()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is traced by memtrace already"), "{err}");
    p.say("end");
    let (_, _, code) = p.finish();
    assert_eq!(code, Some(2)); // "end" is not "go": the program's own answer

    let mut own = Command::new(prog("attach_own_malloc", Opt::O0));
    own.env_remove("LD_PRELOAD");
    let mut p = Talk::spawn(own, &dir);
    let out = memtrace(&["attach", &p.pid().to_string()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("malloc comes from") && err.contains("attach_own_malloc"),
        "{err}"
    );
    p.say("x");
    let (rest, _, code) = p.finish();
    assert_eq!((rest.as_str(), code), ("done\n", Some(0)));
}

/// Without the right to ptrace the process (another user's, here root's
/// process attached from `nobody`): one line, and the process runs on.
#[test]
fn no_permission_is_refused() {
    let dir = fresh_dir("attach-eperm");
    // memtrace and libtrace.so where `nobody` can reach them (the build
    // directory may not be).
    let copies = std::env::temp_dir().join(format!("memtrace-eperm-{}", std::process::id()));
    std::fs::create_dir_all(&copies).unwrap();
    for from in [memtrace_bin(), libtrace()] {
        std::fs::copy(&from, copies.join(from.file_name().unwrap())).unwrap();
    }
    let mut p = Talk::start(&prog("attach_busy_single", Opt::O0), &[], &dir);
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(copies.join("memtrace"))
        .args(["attach", &p.pid().to_string(), "--out", "/tmp/never"])
        .output()
        .expect("setpriv (util-linux) runs");
    let _ = std::fs::remove_dir_all(&copies);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err,
        format!(
            "memtrace: cannot attach to process {}: permission denied\n",
            p.pid()
        )
    );
    p.say("go");
    p.expect("quiet");
    p.say("end");
    let (rest, stderr, code) = p.finish();
    assert_eq!((rest.as_str(), code), ("done\n", Some(0)), "{stderr}");
    assert!(list_dir(&dir).is_empty(), "{:?}", list_dir(&dir));
}
