//! Harness for memtrace's end-to-end tests.
//!
//! The C and C++ programs in `tests/programs/` are built by `build.rs` into
//! OUT_DIR (`NAME-O0` with frame pointers, `NAME-O2` without). A test runs one
//! under `LD_PRELOAD=<target>/release/libtrace.so` in a fresh directory, then
//! reads the snapshots it left with `memtrace_format::decode` and checks them
//! against what the program says it holds (`EXPECT <snap> <size> <count>`
//! lines on its stdout, see `programs/common.h`).
//!
//! libtrace.so and the `memtrace` binary are built by the harness itself,
//! once per test binary: `cargo build --release -p memtrace-preload -p
//! memtrace` in the workspace (a no-op when `make test` has built them).
//! Set `MEMTRACE_TESTS_NO_BUILD=1` to use what is in target/release as is.

use memtrace_format::{Module, Snapshot, Stack};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use memtrace_format as format;

pub mod chromium;

/// Where build.rs put the compiled programs.
pub const PROGRAMS_DIR: &str = env!("OUT_DIR");

/// The workspace root (the parent of this package).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The workspace's target directory (honours CARGO_TARGET_DIR).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace().join(d)
            }
        }
        None => workspace().join("target"),
    }
}

static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();

/// Builds libtrace.so and memtrace (once per process); panics if that fails.
pub fn ensure_built() {
    let r = BUILT.get_or_init(|| {
        if std::env::var_os("MEMTRACE_TESTS_NO_BUILD").is_some() {
            return Ok(());
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args([
                "build",
                "--release",
                "-p",
                "memtrace-preload",
                "-p",
                "memtrace",
            ])
            .current_dir(workspace())
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = r {
        panic!(
            "cargo build --release -p memtrace-preload -p memtrace failed:\n{}",
            tail(e, 4000)
        );
    }
}

/// `target/release/libtrace.so`, built first if needed.
pub fn libtrace() -> PathBuf {
    ensure_built();
    let p = target_dir().join("release").join("libtrace.so");
    if !p.exists() {
        panic!(
            "{} does not exist: build it first with `cargo build --release -p memtrace-preload` \
             (make test does)",
            p.display()
        );
    }
    warn_if_stale(&p, &workspace().join("preload"));
    p
}

/// `target/release/memtrace`, built first if needed.
pub fn memtrace_bin() -> PathBuf {
    ensure_built();
    let p = target_dir().join("release").join("memtrace");
    if !p.exists() {
        panic!(
            "{} does not exist: build it first with `cargo build --release -p memtrace` (make test does)",
            p.display()
        );
    }
    warn_if_stale(&p, &workspace().join("analyzer"));
    p
}

fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut best = None;
    let rd = std::fs::read_dir(dir).ok()?;
    for e in rd.flatten() {
        let p = e.path();
        let t = if p.is_dir() {
            newest_mtime(&p)
        } else {
            e.metadata().ok().and_then(|m| m.modified().ok())
        };
        if let Some(t) = t {
            if best.is_none_or(|b| t > b) {
                best = Some(t);
            }
        }
    }
    best
}

fn warn_if_stale(artifact: &Path, src: &Path) {
    let a = artifact.metadata().and_then(|m| m.modified()).ok();
    let s = newest_mtime(src);
    if let (Some(a), Some(s)) = (a, s) {
        if s > a {
            eprintln!(
                "warning: {} is older than the sources in {}: rebuild with cargo build --release",
                artifact.display(),
                src.display()
            );
        }
    }
}

/// A compiled test program: `prog("hooks", Opt::O2)` is `OUT_DIR/hooks-O2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    /// -O0 -fno-omit-frame-pointer
    O0,
    /// -O2 -fomit-frame-pointer
    O2,
}

pub const BOTH: [Opt; 2] = [Opt::O0, Opt::O2];

pub fn prog(name: &str, opt: Opt) -> PathBuf {
    let v = match opt {
        Opt::O0 => "O0",
        Opt::O2 => "O2",
    };
    let p = Path::new(PROGRAMS_DIR).join(format!("{name}-{v}"));
    assert!(p.exists(), "test program {} was not built", p.display());
    p
}

/// A shared library built from `programs/libNAME.c`.
pub fn shared_lib(name: &str) -> PathBuf {
    let p = Path::new(PROGRAMS_DIR).join(format!("{name}.so"));
    assert!(p.exists(), "test library {} was not built", p.display());
    p
}

/// The source of a test program, `tests/programs/<file>`.
pub fn source(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("programs")
        .join(file)
}

/// 1-based line number of the only line of `file` containing `marker`.
pub fn line_of(file: &str, marker: &str) -> u32 {
    let text = std::fs::read_to_string(source(file)).unwrap();
    let hits: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(marker))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "marker {marker:?} must appear exactly once in {file}"
    );
    hits[0] as u32
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty directory under `target/memtrace-tests/`, removed when
/// the test passes and kept (its path printed) when it fails.
pub fn fresh_dir(name: &str) -> TestDir {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let d = target_dir()
        .join("memtrace-tests")
        .join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TestDir(d)
}

pub struct TestDir(PathBuf);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("MEMTRACE_TESTS_KEEP").is_some() {
            eprintln!("test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// What a finished run left.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub pid: u32,
    pub elapsed: Duration,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics unless the program exited with status 0.
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.status.success(),
            "program failed: {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.status,
            tail(&self.stdout, 3000),
            tail(&self.stderr, 3000)
        );
        self
    }

    /// Lines of stdout that are not EXPECT lines.
    pub fn plain_stdout(&self) -> String {
        self.stdout
            .lines()
            .filter(|l| !l.starts_with("EXPECT "))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// The value of the first `KEY=VALUE` word printed on stdout.
    pub fn value(&self, key: &str) -> Option<String> {
        let pre = format!("{key}=");
        self.stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(pre.as_str()).map(|v| v.to_string()))
    }

    pub fn value_u64(&self, key: &str) -> u64 {
        self.value(key)
            .unwrap_or_else(|| {
                panic!(
                    "the program printed no {key}=...; stdout:\n{}",
                    tail(&self.stdout, 2000)
                )
            })
            .parse()
            .unwrap()
    }
}

pub fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        s
    } else {
        let mut i = s.len() - n;
        while !s.is_char_boundary(i) {
            i += 1;
        }
        &s[i..]
    }
}

/// A program run, traced by default.
pub struct Run {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    traced: bool,
    dir: PathBuf,
    timeout: Duration,
    stdin: Option<Vec<u8>>,
    shell_prefix: Option<String>,
}

impl Run {
    /// Runs `program` traced, in `dir` (its working directory), with
    /// `MEMTRACE_OUT` unset (so the default `memtrace.%p` lands in `dir`)
    /// unless `.out()` sets it.
    pub fn new(program: impl AsRef<Path>, dir: &Path) -> Run {
        Run {
            program: program.as_ref().to_path_buf(),
            args: vec![],
            env: vec![],
            traced: true,
            dir: dir.to_path_buf(),
            timeout: Duration::from_secs(60),
            stdin: None,
            shell_prefix: None,
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.env.push((k.to_string(), v.into()));
        self
    }

    /// Sets `MEMTRACE_OUT`.
    pub fn out(self, prefix: impl AsRef<Path>) -> Self {
        let p = prefix.as_ref().to_str().unwrap().to_string();
        self.env("MEMTRACE_OUT", p)
    }

    /// Runs without the preload. `MT_UNTRACED=1` tells the program to
    /// ignore the snapshot signals (see programs/common.h).
    pub fn untraced(mut self) -> Self {
        self.traced = false;
        self.env("MT_UNTRACED", "1")
    }

    pub fn timeout(mut self, secs: u64) -> Self {
        self.timeout = Duration::from_secs(secs);
        self
    }

    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// Runs the program through `sh -c '<prefix>; exec "$0" "$@"'`
    /// (e.g. `umask 000`); LD_PRELOAD is set only for the final exec.
    pub fn shell_prefix(mut self, s: &str) -> Self {
        self.shell_prefix = Some(s.to_string());
        self
    }

    fn command(&self) -> Command {
        let mut c = match &self.shell_prefix {
            Some(pre) => {
                // LD_PRELOAD is set for the program only, not for sh: the
                // preload does not follow exec by default.
                let mut c = Command::new("/bin/sh");
                let preload = if self.traced {
                    libtrace().display().to_string()
                } else {
                    String::new()
                };
                c.arg("-c")
                    .arg(format!("{pre}; if [ -n \"$MT_PRELOAD\" ]; then export LD_PRELOAD=\"$MT_PRELOAD\"; fi; unset MT_PRELOAD; exec \"$0\" \"$@\""))
                    .arg(&self.program)
                    .env("MT_PRELOAD", preload);
                c
            }
            None => Command::new(&self.program),
        };
        c.args(&self.args).current_dir(&self.dir);
        for (k, _) in std::env::vars_os() {
            if k.to_str()
                .is_some_and(|k| k.starts_with("MEMTRACE_") || k == "LD_PRELOAD")
            {
                c.env_remove(k);
            }
        }
        if self.traced && self.shell_prefix.is_none() {
            c.env("LD_PRELOAD", libtrace());
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Starts the program; the caller drives it (stdin piped).
    pub fn spawn(&self) -> Running {
        let mut c = self.command();
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let (otx, orx) = std::sync::mpsc::channel::<String>();
        let stdout_thread = std::thread::spawn(move || {
            // Lines as they come (for READY handshakes), all of it at the end.
            let mut all = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match out.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        all.extend_from_slice(&buf[..n]);
                        let _ = otx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                    }
                }
            }
            String::from_utf8_lossy(&all).into_owned()
        });
        let stderr_thread = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        });
        Running {
            pid: child.id(),
            child,
            started: Instant::now(),
            timeout: self.timeout,
            stdout_thread: Some(stdout_thread),
            stderr_thread: Some(stderr_thread),
            chunks: orx,
            seen: String::new(),
            program: self.program.clone(),
        }
    }

    /// Runs to the end (or kills it at the timeout and panics).
    pub fn run(&self) -> Output {
        let mut r = self.spawn();
        let data = self.stdin.clone().unwrap_or_default();
        {
            let mut stdin = r.child.stdin.take().unwrap();
            let _ = stdin.write_all(&data);
        }
        r.wait()
    }
}

pub struct Running {
    pub pid: u32,
    pub child: std::process::Child,
    started: Instant,
    timeout: Duration,
    stdout_thread: Option<std::thread::JoinHandle<String>>,
    stderr_thread: Option<std::thread::JoinHandle<String>>,
    chunks: std::sync::mpsc::Receiver<String>,
    seen: String,
    program: PathBuf,
}

impl Running {
    /// Waits until stdout contains `text` (panics at the timeout).
    pub fn wait_for(&mut self, text: &str) {
        while !self.seen.contains(text) {
            let left = self.timeout.saturating_sub(self.started.elapsed());
            match self.chunks.recv_timeout(left) {
                Ok(c) => self.seen.push_str(&c),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "{} did not print {text:?} (exited or timed out); stdout so far:\n{}",
                        self.program.display(),
                        self.seen
                    );
                }
            }
        }
    }

    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    pub fn write_stdin(&mut self, data: &[u8]) {
        self.child.stdin.as_mut().unwrap().write_all(data).unwrap();
        self.child.stdin.as_mut().unwrap().flush().unwrap();
    }

    pub fn wait(mut self) -> Output {
        self.close_stdin();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if self.started.elapsed() > self.timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let so = self.stdout_thread.take().unwrap().join().unwrap();
                let se = self.stderr_thread.take().unwrap().join().unwrap();
                panic!(
                    "{} did not finish within {:?} (hang?); killed.\n--- stdout:\n{}\n--- stderr:\n{}",
                    self.program.display(),
                    self.timeout,
                    tail(&so, 3000),
                    tail(&se, 3000)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = self.started.elapsed();
        let stdout = self.stdout_thread.take().unwrap().join().unwrap();
        let stderr = self.stderr_thread.take().unwrap().join().unwrap();
        Output {
            status,
            stdout,
            stderr,
            pid: self.pid,
            elapsed,
        }
    }
}

// ------------------------------------------------------------ snapshots

/// Reads and decodes a snapshot; panics with the path and the reason.
pub fn load(path: impl AsRef<Path>) -> Snapshot {
    let path = path.as_ref();
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "cannot read snapshot {}: {e}\n(files there: {:?})",
            path.display(),
            list_dir(path.parent().unwrap())
        )
    });
    memtrace_format::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// File names in `dir`, sorted.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Names in `dir` ending in `.snap`, sorted.
pub fn snap_files(dir: &Path) -> Vec<String> {
    list_dir(dir)
        .into_iter()
        .filter(|n| n.ends_with(".snap"))
        .collect()
}

/// Questions the tests ask of a snapshot.
pub trait SnapExt {
    /// Live blocks of exactly `size` requested bytes.
    fn count_of(&self, size: u64) -> u64;
    /// Σ size × count over the groups of that size.
    fn bytes_of(&self, size: u64) -> u64;
    fn total_bytes(&self) -> u64;
    fn total_count(&self) -> u64;
    fn stack(&self, id: u64) -> &Stack;
    /// Stacks of the groups with this size.
    fn stacks_of_size(&self, size: u64) -> Vec<&Stack>;
    fn module_of(&self, addr: u64) -> Option<&Module>;
    /// The module whose path is `exe` (canonicalized comparison).
    fn module_named(&self, exe: &Path) -> Option<&Module>;
    /// Internal consistency: header totals agree with the groups.
    fn check_consistent(&self, what: &str);
    /// A short listing of the groups (for failure messages).
    fn describe(&self) -> String;
}

/// True if the path bytes `a` (from a snapshot) name the file `b`.
pub fn same_file(a: &[u8], b: &Path) -> bool {
    let a = Path::new(std::str::from_utf8(a).unwrap_or(""));
    if a == b {
        return true;
    }
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

impl SnapExt for Snapshot {
    fn count_of(&self, size: u64) -> u64 {
        self.traces
            .iter()
            .filter(|t| t.size == size)
            .map(|t| t.count)
            .sum()
    }
    fn bytes_of(&self, size: u64) -> u64 {
        self.traces
            .iter()
            .filter(|t| t.size == size)
            .map(|t| t.size * t.count)
            .sum()
    }
    fn total_bytes(&self) -> u64 {
        self.traces.iter().map(|t| t.size * t.count).sum()
    }
    fn total_count(&self) -> u64 {
        self.traces.iter().map(|t| t.count).sum()
    }
    fn stack(&self, id: u64) -> &Stack {
        self.stacks
            .iter()
            .find(|s| s.id == id)
            .expect("trace names an unknown stack")
    }
    fn stacks_of_size(&self, size: u64) -> Vec<&Stack> {
        self.traces
            .iter()
            .filter(|t| t.size == size)
            .map(|t| self.stack(t.stack))
            .collect()
    }
    fn module_of(&self, addr: u64) -> Option<&Module> {
        self.modules.iter().find(|m| m.contains(addr))
    }
    fn module_named(&self, exe: &Path) -> Option<&Module> {
        self.modules.iter().find(|m| same_file(&m.path, exe))
    }
    fn check_consistent(&self, what: &str) {
        let h = &self.header;
        assert_eq!(
            h.traced_bytes,
            self.total_bytes(),
            "{what}: header traced_bytes differs from the sum of the live groups"
        );
        assert!(
            h.peak_bytes >= h.traced_bytes,
            "{what}: peak_bytes {} < traced_bytes {}",
            h.peak_bytes,
            h.traced_bytes
        );
        assert!(
            self.total_count() <= h.alloc_count,
            "{what}: {} live blocks but only {} allocations counted",
            self.total_count(),
            h.alloc_count
        );
        for t in &self.traces {
            assert!(
                t.count > 0,
                "{what}: a group with count 0 (size {})",
                t.size
            );
        }
        // (stack, size) groups are unique.
        let mut keys: Vec<(u64, u64)> = self.traces.iter().map(|t| (t.stack, t.size)).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(n, keys.len(), "{what}: a (stack, size) group appears twice");
    }
    fn describe(&self) -> String {
        let mut by_size: BTreeMap<u64, u64> = BTreeMap::new();
        for t in &self.traces {
            *by_size.entry(t.size).or_default() += t.count;
        }
        let mut s = format!(
            "pid {} kind {:?} index {} traced {} peak {} allocs {} frees {}; live by size: ",
            self.header.pid,
            self.header.kind,
            self.header.index,
            self.header.traced_bytes,
            self.header.peak_bytes,
            self.header.alloc_count,
            self.header.free_count
        );
        for (k, v) in by_size.iter().take(200) {
            s.push_str(&format!("{k}x{v} "));
        }
        s
    }
}

/// One `EXPECT <snap> <size> <count>` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    pub snap: String,
    pub size: u64,
    pub count: u64,
}

pub fn parse_expects(stdout: &str) -> Vec<Expect> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("EXPECT ")?.split_whitespace();
            let snap = w.next()?.to_string();
            let size = w.next()?.parse().ok()?;
            let count = w.next()?.parse().ok()?;
            Some(Expect { snap, size, count })
        })
        .collect()
}

/// Path of `<prefix>.<tag>.snap`.
pub fn snap_path(prefix: &Path, tag: &str) -> PathBuf {
    PathBuf::from(format!("{}.{tag}.snap", prefix.display()))
}

/// Checks every EXPECT line of `out` against `<prefix>.<snap>.snap`, and that
/// each snapshot named is internally consistent. Requires at least
/// `min_expects` lines (so a program that printed nothing cannot pass).
/// Returns the snapshots read, by tag.
pub fn check_expects(
    prefix: &Path,
    out: &Output,
    min_expects: usize,
) -> BTreeMap<String, Snapshot> {
    check_expects_with(out, min_expects, |tag| snap_path(prefix, tag))
}

/// Like `check_expects`, with the file of each EXPECT tag given by `file_of`.
pub fn check_expects_with(
    out: &Output,
    min_expects: usize,
    file_of: impl Fn(&str) -> PathBuf,
) -> BTreeMap<String, Snapshot> {
    let exps = parse_expects(&out.stdout);
    assert!(
        exps.len() >= min_expects,
        "the program printed {} EXPECT lines, at least {min_expects} were wanted; stdout:\n{}",
        exps.len(),
        tail(&out.stdout, 2000)
    );
    let mut snaps: BTreeMap<String, Snapshot> = BTreeMap::new();
    let mut failures = Vec::new();
    for e in &exps {
        let s = snaps.entry(e.snap.clone()).or_insert_with(|| {
            let path = file_of(&e.snap);
            let s = load(&path);
            s.check_consistent(&path.display().to_string());
            s
        });
        let got = s.count_of(e.size);
        if got != e.count || s.bytes_of(e.size) != e.size * e.count {
            failures.push(format!(
                "snapshot {}: size {}: {} live blocks ({} bytes), the program holds {} ({} bytes)",
                e.snap,
                e.size,
                got,
                s.bytes_of(e.size),
                e.count,
                e.size * e.count
            ));
        }
    }
    if !failures.is_empty() {
        let mut msg = failures.join("\n");
        for (tag, s) in &snaps {
            msg.push_str(&format!("\n[{tag}] {}", s.describe()));
        }
        panic!("{msg}");
    }
    snaps
}

/// Checks that every group of `size` has a stack passing through `exe`.
pub fn assert_stacks_in(snap: &Snapshot, size: u64, exe: &Path) {
    let m = snap
        .module_named(exe)
        .unwrap_or_else(|| panic!("the snapshot's module map does not list {}", exe.display()));
    let stacks = snap.stacks_of_size(size);
    assert!(!stacks.is_empty(), "no live group of size {size}");
    for st in stacks {
        assert!(
            st.frames.iter().any(|&a| m.contains(a.wrapping_sub(1))),
            "the stack of a {size}-byte group has no frame in {}: {:x?}",
            exe.display(),
            st.frames
        );
    }
}

/// `(start, size)` of a function symbol of an ELF file, from `nm -S`.
pub fn symbol(binary: &Path, name: &str) -> (u64, u64) {
    let out = Command::new("nm")
        .arg("-S")
        .arg("--defined-only")
        .arg(binary)
        .output()
        .expect("nm");
    let text = String::from_utf8_lossy(&out.stdout);
    for l in text.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() == 4 && w[3] == name && (w[2] == "T" || w[2] == "t") {
            return (
                u64::from_str_radix(w[0], 16).unwrap(),
                u64::from_str_radix(w[1], 16).unwrap(),
            );
        }
    }
    panic!("no function symbol {name} in {}", binary.display());
}

/// True if `addr` (a return address) lies in function `sym` of module `m`.
pub fn in_function(m: &Module, (start, size): (u64, u64), addr: u64) -> bool {
    let off = addr.wrapping_sub(1).wrapping_sub(m.base);
    off >= start && off < start + size
}

/// Runs `failures MODE` (programs/failures.c): between two snapshots only
/// failing allocation calls and 5 good mallocs happen, so the header's
/// allocation count must grow by exactly 5 and the free count not at all.
pub fn failures_record_nothing(mode: &str) {
    let dir = fresh_dir(&format!("failures-{mode}"));
    let exe = prog("failures", Opt::O2);
    let prefix = dir.join("k");
    let out = Run::new(&exe, &dir).out(&prefix).arg(mode).run();
    out.assert_ok();
    let snaps = check_expects(&prefix, &out, 6);
    let (h1, h2) = (&snaps["1"].header, &snaps["2"].header);
    assert!(out.value_u64("failed") > 0);
    assert_eq!(
        h2.alloc_count.wrapping_sub(h1.alloc_count),
        out.value_u64("alloc_delta"),
        "allocations counted between the snapshots (the program made {} failing calls and 5 good ones)",
        out.value_u64("failed")
    );
    assert_eq!(
        h2.free_count.wrapping_sub(h1.free_count),
        out.value_u64("free_delta"),
        "frees counted between the snapshots"
    );
    for (tag, s) in &snaps {
        assert!(
            s.traces.iter().all(|t| t.size < (1 << 40)),
            "snapshot {tag}: {}",
            s.describe()
        );
    }
}

/// Runs `fork_stress` (programs/fork_stress.c: fork while three threads are
/// inside malloc, 100 times) with the extra environment `env`, and checks
/// what every run must give: all children succeed, the parent writes its
/// exit snapshot, each child (exit() or _exit()) writes its own, consistent and
/// exact (the 3 blocks of 5151 bytes it holds). Returns the children's
/// snapshots for the caller's own checks.
pub fn fork_stress_children(tag: &str, env: &[(&str, &str)]) -> Vec<(String, Snapshot)> {
    let dir = fresh_dir(tag);
    let mut run = Run::new(prog("fork_stress", Opt::O2), &dir)
        .out(dir.join("k.%p"))
        .timeout(120);
    for (k, v) in env {
        run = run.env(k, *v);
    }
    let out = run.run();
    out.assert_ok();
    assert_eq!(out.value_u64("children_ok"), 100);
    let parent = format!("k.{}.exit.snap", out.pid);
    let files = snap_files(&dir);
    assert!(files.contains(&parent), "{files:?}");
    let children: Vec<String> = files.into_iter().filter(|f| *f != parent).collect();
    assert_eq!(
        children.len() as u64,
        out.value_u64("children_with_exit"),
        "child exit snapshots: {children:?}"
    );
    children
        .into_iter()
        .map(|f| {
            let s = load(dir.join(&f));
            s.check_consistent(&f);
            assert_eq!(s.count_of(5151), 3, "{f}: {}", s.describe());
            (f, s)
        })
        .collect()
}

// ------------------------------------------------------------ valgrind DHAT

/// `exe` run untraced under `valgrind --tool=dhat` in `dir` (stdout piped as
/// in a traced run), or None when valgrind is not installed.
pub fn run_dhat(exe: &Path, dir: &Path) -> Option<Output> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        return None;
    }
    let v = Run::new("valgrind", dir)
        .untraced()
        .args([
            "--tool=dhat",
            "--run-libc-freeres=no",
            "--dhat-out-file=/dev/null",
            exe.to_str().unwrap(),
        ])
        .timeout(120)
        .run();
    v.assert_ok();
    Some(v)
}

/// The two numbers DHAT prints after `label` (`Total:`, `At t-gmax:`):
/// bytes and blocks.
pub fn parse_dhat(text: &str, label: &str) -> (u64, u64) {
    let line = text
        .lines()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("DHAT printed no {label:?} line:\n{text}"));
    let rest = &line[line.find(label).unwrap() + label.len()..];
    let nums: Vec<u64> = rest
        .split_whitespace()
        .filter_map(|w| w.replace(',', "").parse().ok())
        .collect();
    assert!(nums.len() >= 2, "cannot read {line:?}");
    (nums[0], nums[1])
}

/// tests/programs/history_plot.c run to its own SIGKILL with a history every
/// 50 ms (prefix `dir/NAME.%p`): its output and its history file.
pub fn killed_history_plot(dir: &Path, name: &str) -> (Output, PathBuf) {
    let out = Run::new(prog("history_plot", Opt::O2), dir)
        .out(dir.join(format!("{name}.%p")))
        .env("MEMTRACE_HISTORY", "50ms")
        .run();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(9), // SIGKILL
        "{}",
        out.stderr
    );
    let history = dir.join(format!("{name}.{}.history", out.pid));
    (out, history)
}

/// `memtrace ARGS…`, which must succeed: its stdout.
pub fn memtrace_ok(args: &[&str]) -> String {
    let out = Command::new(memtrace_bin())
        .args(args)
        .output()
        .expect("run memtrace");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "memtrace {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
