//! Ends of a process that atexit does not see (`_exit`, `exec`), and the
//! snapshot signal in a program that handles it itself (issue 11).

use memtrace_tests::*;

/// Runs `process_ends MODE ARG` with the prefix `k`; returns the run.
fn ends(tag: &str, mode: &str, arg: &str) -> (TestDir, Output) {
    let dir = fresh_dir(tag);
    let out = Run::new(prog("process_ends", Opt::O2), &dir)
        .out(dir.join("k"))
        .args([mode, arg])
        .run();
    (dir, out)
}

/// The exit snapshot is written and holds exactly the program's 21 blocks.
fn exit_snapshot_exact(dir: &TestDir, out: &Output) {
    assert_eq!(list_dir(dir), ["k.exit.snap"], "stderr: {}", out.stderr);
    check_expects(&dir.join("k"), out, 1);
}

#[test]
fn underscore_exit_writes_the_exit_snapshot() {
    for (mode, status) in [("_exit", 5), ("_Exit", 6)] {
        let (dir, out) = ends(mode, mode, "");
        assert_eq!(out.code(), Some(status), "{mode}: {}", out.stderr);
        exit_snapshot_exact(&dir, &out);
    }
}

/// execl is variadic, its arguments past the sixth on the stack: the stub
/// in front of it must hand them over untouched.
#[test]
fn exec_writes_the_exit_snapshot_first() {
    let (dir, out) = ends("execl", "execl", "/bin/echo");
    out.assert_ok();
    assert!(out.stdout.contains("a b c d e f g h"), "{}", out.stdout);
    exit_snapshot_exact(&dir, &out);
    let (dir, out) = ends("execvp", "execvp", "echo");
    out.assert_ok();
    assert!(out.stdout.lines().any(|l| l == "p"), "{}", out.stdout);
    exit_snapshot_exact(&dir, &out);
}

/// An exec that cannot succeed writes nothing early: the program goes on
/// and its real exit writes the one exit snapshot.
#[test]
fn failing_exec_writes_no_early_snapshot() {
    let (dir, out) = ends("execfail", "execfail", "");
    out.assert_ok();
    assert_eq!(out.value("exec_failed").as_deref(), Some("1"));
    exit_snapshot_exact(&dir, &out);
}

/// A vfork child shares its parent's memory: it must not write anything,
/// nor must a fork child that execs without allocating.
#[test]
fn vfork_and_bare_fork_exec_children_write_nothing() {
    for mode in ["vfork", "forkexec"] {
        let (dir, out) = ends(mode, mode, "/bin/true");
        out.assert_ok();
        assert_eq!(out.value("child_status").as_deref(), Some("0"), "{mode}");
        let cp = out.value_u64("child_pid");
        let files = list_dir(&dir);
        assert!(
            !files.iter().any(|f| f.contains(&cp.to_string())),
            "{mode}: {files:?}"
        );
        exit_snapshot_exact(&dir, &out);
    }
}

/// A program with its own SIGUSR2 handler (PostgreSQL): a plain kill goes
/// to its handler only; memtrace's sigqueue request makes a snapshot and
/// never reaches the handler.
#[test]
fn program_handler_keeps_its_signal() {
    let dir = fresh_dir("handler");
    let out = Run::new(prog("process_ends", Opt::O2), &dir)
        .out(dir.join("k"))
        .arg("handler")
        .run();
    out.assert_ok();
    assert_eq!(
        out.value("handled").as_deref(),
        Some("1"),
        "the handler's deliveries"
    );
    assert_eq!(list_dir(&dir), ["k.1.snap", "k.exit.snap"]);
    check_expects(&dir.join("k"), &out, 2);
}

/// `memtrace snapshot PID` on a running program that handles SIGUSR2
/// itself: prints the path of the complete snapshot, which holds exactly
/// the program's blocks; the program's handler never sees the request,
/// while a plain `kill -USR2` still reaches it and writes nothing.
#[test]
fn memtrace_snapshot_pid() {
    let dir = fresh_dir("snapshot-pid");
    let mut r = Run::new(prog("process_ends", Opt::O2), &dir)
        .out(dir.join("k"))
        .arg("serve")
        .spawn();
    r.wait_for("READY");
    let o = std::process::Command::new(memtrace_bin())
        .args(["snapshot", &r.pid.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "memtrace snapshot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(stdout.trim(), dir.join("k.1.snap").to_str().unwrap());
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(r.pid as i32, libc::SIGUSR2) }, 0);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let out = r.wait();
    out.assert_ok();
    assert_eq!(
        out.value("handled").as_deref(),
        Some("1"),
        "the program's handler: the plain kill only"
    );
    assert_eq!(list_dir(&dir), ["k.1.snap", "k.exit.snap"]);
    check_expects(&dir.join("k"), &out, 2);
}

/// A process without libtrace.so: one clear line, a non-zero status.
#[test]
fn memtrace_snapshot_refuses_an_untraced_process() {
    let dir = fresh_dir("snapshot-untraced");
    let mut r = Run::new(prog("process_ends", Opt::O2), &dir)
        .untraced()
        .arg("serve")
        .spawn();
    r.wait_for("READY");
    let o = std::process::Command::new(memtrace_bin())
        .args(["snapshot", &r.pid.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr, format!("memtrace: process {} is not traced by memtrace (libtrace.so is not loaded in it; start it with `memtrace run` or LD_PRELOAD, or `memtrace attach PID`)\n", r.pid));
    r.wait().assert_ok();
}

/// A fatal signal leaves no exit snapshot; with MEMTRACE_VERBOSE=1 that is
/// said on stderr, and the program still dies of the signal.
#[test]
fn fatal_signal_is_reported_when_verbose() {
    use std::os::unix::process::ExitStatusExt;
    for verbose in ["0", "1"] {
        let dir = fresh_dir(&format!("segv-{verbose}"));
        let out = Run::new(prog("process_ends", Opt::O2), &dir)
            .out(dir.join("k"))
            .env("MEMTRACE_VERBOSE", verbose)
            .arg("segv")
            .run();
        assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{}", out.stderr);
        assert!(list_dir(&dir).is_empty(), "{:?}", list_dir(&dir));
        let said = format!(
            "memtrace: pid {} ends by SIGSEGV: no exit snapshot",
            out.pid
        );
        assert_eq!(out.stderr.contains(&said), verbose == "1", "{}", out.stderr);
    }
}
