//! The process ends when its last thread ends, traced as untraced: the
//! writer thread must never keep a process alive (issue 4, CPython's
//! test_threading does both of these).

use memtrace_tests::*;
use std::time::Duration;

/// main() calls pthread_exit() while a worker runs on: when the worker
/// returns, the process exits with status 0 (glibc's last-thread exit),
/// leaves its exit snapshot with what was never freed, and does so at once.
#[test]
fn main_thread_pthread_exit_ends_the_process() {
    for opt in BOTH {
        let dir = fresh_dir("pthread-exit");
        let prefix = dir.join("k");
        let exe = prog("lifecycle", opt);
        let out = Run::new(&exe, &dir)
            .out(&prefix)
            .arg("main_exit")
            .timeout(20)
            .run();
        out.assert_ok();
        assert!(
            out.elapsed < Duration::from_secs(5),
            "took {:?} (the writer kept the process alive?)",
            out.elapsed
        );
        let snaps = check_expects(&prefix, &out, 4);
        assert_stacks_in(&snaps["exit"], 777, &exe);
        assert_eq!(list_dir(&dir), ["k.1.snap", "k.exit.snap"]);
        let plain = Run::new(&exe, &dir)
            .untraced()
            .arg("main_exit")
            .timeout(20)
            .run();
        assert_eq!(plain.code(), out.code());
    }
}

/// A child forked from a non-main thread: that thread is the child's only
/// one; when it returns, the child exits 0 and writes its exit snapshot.
#[test]
fn child_forked_from_a_thread_ends_with_its_thread() {
    let dir = fresh_dir("fork-thread");
    let exe = prog("lifecycle", Opt::O2);
    let out = Run::new(&exe, &dir)
        .out(dir.join("k.%p"))
        .arg("fork_thread")
        .timeout(30)
        .run();
    out.assert_ok();
    assert_eq!(
        out.value("child_exited").as_deref(),
        Some("1"),
        "stdout: {}",
        out.stdout
    );
    assert_eq!(out.value_u64("child_status"), 0);
    assert!(
        out.value_u64("child_ms") < 5000,
        "the child took {} ms to end",
        out.value_u64("child_ms")
    );
    let child = out.value_u64("child_pid");
    let s = load(dir.join(format!("k.{child}.exit.snap")));
    s.check_consistent("child exit snapshot");
    assert_eq!(s.count_of(888), 1, "{}", s.describe());
    assert_eq!(
        s.count_of(777),
        1,
        "the live set inherited from the parent: {}",
        s.describe()
    );
    let parent = load(dir.join(format!("k.{}.exit.snap", out.pid)));
    assert_eq!(parent.count_of(888), 0);
    assert_eq!(parent.count_of(777), 1);
}

/// The writer blocks every signal while program threads exist: a program
/// that blocks SIGTERM everywhere and sigwait()s for it must get it there,
/// not die of it on our thread.
#[test]
fn sigwait_gets_a_signal_blocked_by_all_program_threads() {
    let dir = fresh_dir("sigwait");
    let prefix = dir.join("k");
    let mut r = Run::new(prog("lifecycle", Opt::O2), &dir)
        .out(&prefix)
        .arg("sigwait")
        .timeout(20)
        .spawn();
    r.wait_for("READY");
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(r.pid as i32, libc::SIGTERM) }, 0);
    let out = r.wait();
    out.assert_ok();
    assert_eq!(out.value_u64("got_signal"), libc::SIGTERM as u64);
    check_expects(&prefix, &out, 1);
}

/// When our writer is the last thread it runs the program's exit handlers;
/// it must not block signals then: SIGTERM ends the process as it would
/// untraced (before the fix only SIGKILL could).
#[test]
fn last_thread_exit_handlers_stay_killable() {
    use std::os::unix::process::ExitStatusExt;
    for traced in [false, true] {
        let dir = fresh_dir("slow-atexit");
        let mut run = Run::new(prog("lifecycle", Opt::O2), &dir)
            .out(dir.join("k"))
            .arg("slow_atexit")
            .timeout(20);
        if !traced {
            run = run.untraced();
        }
        let mut r = run.spawn();
        r.wait_for("IN_ATEXIT");
        let t0 = std::time::Instant::now();
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(r.pid as i32, libc::SIGTERM) }, 0);
        let out = r.wait();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGTERM),
            "traced={traced}: {:?}",
            out.status
        );
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "traced={traced}: SIGTERM took {:?}",
            t0.elapsed()
        );
    }
}
