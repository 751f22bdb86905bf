//! Snapshot files: names, contents, headers, the snapshot signal and its
//! settings, stack depth and completeness.

use memtrace_format::SnapshotKind;
use memtrace_tests::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The "done when" of issue 2: raise the signal twice, exit; MEMTRACE_OUT=dir/k
/// leaves exactly k.1.snap, k.2.snap and k.exit.snap with the exact live sets;
/// the program runs exactly as untraced.
fn two_signals_and_exit(opt: Opt) {
    let dir = fresh_dir("snap-basic");
    let exe = prog("snap_basic", opt);
    let prefix = dir.join("k");
    let t0 = now_ns();
    let out = Run::new(&exe, &dir).out(&prefix).arg("USR2").run();
    let t1 = now_ns();
    out.assert_ok();
    assert_eq!(
        out.stderr, "",
        "stderr must stay empty without MEMTRACE_VERBOSE"
    );
    assert_eq!(
        list_dir(&dir),
        ["k.1.snap", "k.2.snap", "k.exit.snap"],
        "files left in the output directory"
    );
    let snaps = check_expects(&prefix, &out, 7);
    let plain = Run::new(&exe, &dir).untraced().arg("USR2").run();
    plain.assert_ok();
    assert_eq!(out.stdout, plain.stdout);

    let (s1, s2, se) = (&snaps["1"], &snaps["2"], &snaps["exit"]);
    assert_eq!((s1.header.kind, s1.header.index), (SnapshotKind::Signal, 1));
    assert_eq!((s2.header.kind, s2.header.index), (SnapshotKind::Signal, 2));
    assert_eq!(se.header.kind, SnapshotKind::Exit);
    for (tag, s) in &snaps {
        let h = &s.header;
        assert_eq!(h.pid, out.pid, "{tag}: pid");
        assert_eq!(
            h.cmdline,
            vec![exe.to_str().unwrap().as_bytes().to_vec(), b"USR2".to_vec()],
            "{tag}: command line"
        );
        assert_eq!(
            std::path::Path::new(std::str::from_utf8(&h.exe).unwrap()),
            exe.canonicalize().unwrap()
        );
        assert_eq!(h.frame_limit, 32, "{tag}: default MEMTRACE_FRAMES is 32");
        assert!(
            h.time_ns >= t0 && h.time_ns <= t1,
            "{tag}: time_ns {} outside the run [{t0}, {t1}]",
            h.time_ns
        );
        assert_eq!(h.sample_rate, 0, "{tag}: every allocation is recorded");
        assert!(
            s.module_named(&exe).is_some(),
            "{tag}: the module map lacks the program"
        );
        assert!(
            s.modules
                .iter()
                .any(|m| String::from_utf8_lossy(&m.path).contains("libc.so")),
            "{tag}: the module map lacks libc"
        );
    }
    // Order and the program's own counts: the header counts at least what
    // the program did itself (libc adds its own).
    assert!(
        s1.header.seq < s2.header.seq && s2.header.seq <= se.header.seq,
        "seq must grow"
    );
    assert!(s1.header.time_ns <= s2.header.time_ns && s2.header.time_ns <= se.header.time_ns);
    assert!(s1.header.alloc_count >= 1000);
    assert!(s2.header.alloc_count >= 1500 && s2.header.free_count >= 300);
    assert!(se.header.alloc_count >= 1501 && se.header.free_count >= 800);
    // Peak: at least the 1000 x 1000 + 500 x 4000 held together before snapshot 2.
    assert!(
        se.header.peak_bytes >= 700 * 1000 + 500 * 4000,
        "peak {}",
        se.header.peak_bytes
    );
    // The two sites have different stacks, each through the program.
    assert_stacks_in(s2, 1000, &exe);
    assert_stacks_in(s2, 4000, &exe);
    let a: Vec<_> = s2.stacks_of_size(1000).iter().map(|s| s.id).collect();
    let b: Vec<_> = s2.stacks_of_size(4000).iter().map(|s| s.id).collect();
    assert!(
        a.iter().all(|x| !b.contains(x)),
        "sites A and B share a stack"
    );
}

#[test]
fn two_signals_and_exit_o0() {
    two_signals_and_exit(Opt::O0);
}

#[test]
fn two_signals_and_exit_o2() {
    two_signals_and_exit(Opt::O2);
}

/// Without MEMTRACE_OUT the files are memtrace.<pid>.* in the working directory.
#[test]
fn default_prefix_is_memtrace_pid() {
    let dir = fresh_dir("snap-default");
    let out = Run::new(prog("snap_basic", Opt::O2), &dir).run();
    out.assert_ok();
    let p = out.pid;
    assert_eq!(
        list_dir(&dir),
        [
            format!("memtrace.{p}.1.snap"),
            format!("memtrace.{p}.2.snap"),
            format!("memtrace.{p}.exit.snap")
        ]
    );
    check_expects(&dir.join(format!("memtrace.{p}")), &out, 7);
}

fn signal_setting(setting: &str, raise: &str, own_handler: bool, expect_snapshots: bool) {
    let dir = fresh_dir("snap-signal");
    let prefix = dir.join("k");
    let mut r = Run::new(prog("snap_basic", Opt::O2), &dir)
        .out(&prefix)
        .arg(raise);
    if own_handler {
        r = r.arg("own-handler");
    }
    if !setting.is_empty() {
        r = r.env("MEMTRACE_SIGNAL", setting);
    }
    let out = r.run();
    out.assert_ok();
    if own_handler {
        assert_eq!(
            out.value("handler_calls").as_deref(),
            Some("2"),
            "the program's own handler must run for each signal"
        );
    }
    if expect_snapshots {
        assert_eq!(list_dir(&dir), ["k.1.snap", "k.2.snap", "k.exit.snap"]);
        check_expects(&prefix, &out, 7);
    } else {
        assert_eq!(
            list_dir(&dir),
            ["k.exit.snap"],
            "MEMTRACE_SIGNAL={setting}: {raise} must not snapshot"
        );
        let s = load(snap_path(&prefix, "exit"));
        assert_eq!(s.count_of(1000), 700);
        assert_eq!(s.count_of(12345), 1);
    }
}

#[test]
fn signal_usr1() {
    signal_setting("USR1", "USR1", false, true);
}

#[test]
fn signal_sigusr1_spelling() {
    signal_setting("SIGUSR1", "USR1", false, true);
}

#[test]
fn signal_by_number() {
    signal_setting(&libc::SIGUSR1.to_string(), "USR1", false, true);
}

/// MEMTRACE_SIGNAL=USR1: SIGUSR2 is the program's, untouched.
#[test]
fn signal_usr1_leaves_usr2_alone() {
    signal_setting("USR1", "USR2", true, false);
}

/// MEMTRACE_SIGNAL=off: no signal snapshots; the program's handler runs.
#[test]
fn signal_off() {
    signal_setting("off", "USR2", true, false);
}

/// The program installs its own SIGUSR2 handler (sigaction, after the
/// preload's constructor): it still runs, and the snapshots still happen.
#[test]
fn own_handler_gets_plain_deliveries_only() {
    // A program with its own handler (PostgreSQL uses SIGUSR2 internally)
    // gets every plain delivery, and they make no snapshot: only memtrace's
    // own requests do (tests/process_end.rs, program_handler_keeps_its_signal).
    signal_setting("", "USR2", true, false);
}

/// 1000 signals from outside in about a second while a thread churns:
/// no crash, every file readable and exact, memory bounded.
#[test]
fn storm_of_1000_signals() {
    let dir = fresh_dir("storm");
    let prefix = dir.join("k");
    let mut r = Run::new(prog("snap_storm", Opt::O2), &dir)
        .out(&prefix)
        .timeout(120)
        .spawn();
    r.wait_for("READY");
    let start = std::time::Instant::now();
    for i in 0..1000u32 {
        let rc = unsafe { libc::kill(r.pid as i32, libc::SIGUSR2) };
        assert_eq!(rc, 0, "kill failed at signal {i}: the process died?");
        std::thread::sleep(Duration::from_micros(900));
    }
    let sent_in = start.elapsed();
    let out = r.wait();
    out.assert_ok();
    eprintln!("1000 signals sent in {sent_in:?}");
    check_expects(&prefix, &out, 1);
    let maxrss = out.value_u64("maxrss_kb");
    assert!(
        maxrss < 512 * 1024,
        "peak RSS {maxrss} KiB: memory not bounded under the storm"
    );
    let files = snap_files(&dir);
    let signal_files: Vec<_> = files.iter().filter(|f| *f != "k.exit.snap").collect();
    assert!(!signal_files.is_empty(), "no signal snapshot at all");
    assert!(
        signal_files.len() <= 1000,
        "{} signal snapshots for 1000 signals",
        signal_files.len()
    );
    for f in &signal_files {
        let n: u64 = f
            .strip_prefix("k.")
            .and_then(|x| x.strip_suffix(".snap"))
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("unexpected file {f}"));
        assert!((1..=1000).contains(&n), "{f}");
        let s = load(dir.join(f));
        s.check_consistent(f);
        assert_eq!(s.count_of(7777), 100, "{f}: the 100 held blocks");
    }
    let leftovers: Vec<_> = list_dir(&dir)
        .into_iter()
        .filter(|f| !f.ends_with(".snap"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
    eprintln!(
        "storm: {} signal snapshots, peak RSS {maxrss} KiB, {:?}",
        signal_files.len(),
        out.elapsed
    );
}

fn deep(frames_env: Option<&str>, depth: u32) -> (memtrace_format::Snapshot, Output) {
    let dir = fresh_dir("deep");
    let prefix = dir.join("k");
    let mut r = Run::new(prog("deep", Opt::O0), &dir)
        .out(&prefix)
        .arg(depth.to_string());
    if let Some(f) = frames_env {
        r = r.env("MEMTRACE_FRAMES", f);
    }
    let out = r.run();
    out.assert_ok();
    let snaps = check_expects(&prefix, &out, 2);
    (snaps["1"].clone(), out)
}

/// MEMTRACE_FRAMES=8: every stack has at most 8 frames, the deep one is cut
/// and says so; the shallow one (main → libc start → _start) is complete.
#[test]
fn frames_8_truncates_deep_stacks() {
    let (s, out) = deep(Some("8"), 50);
    assert_eq!(s.header.frame_limit, 8);
    assert!(s.stacks.iter().all(|st| st.frames.len() <= 8));
    let d = s.stacks_of_size(9999);
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].frames.len(),
        8,
        "the deep stack holds the 8 most recent frames"
    );
    assert!(
        d[0].truncated,
        "a 50-deep stack cut to 8 must be marked truncated"
    );
    let sh = s.stacks_of_size(8888);
    assert!(
        !sh[0].truncated,
        "main's own allocation is 8 frames deep at most: not truncated ({:x?})",
        sh[0].frames
    );
    assert_eq!(out.stderr, "");
}

#[test]
fn frames_default_32_truncates() {
    let (s, _) = deep(None, 50);
    assert_eq!(s.header.frame_limit, 32);
    let d = s.stacks_of_size(9999);
    assert_eq!(d[0].frames.len(), 32);
    assert!(d[0].truncated);
}

/// MEMTRACE_FRAMES=256 and a 100-deep recursion: the whole stack, not cut.
#[test]
fn frames_256_holds_the_whole_stack() {
    let exe = prog("deep", Opt::O0);
    let (s, _) = deep(Some("256"), 100);
    assert_eq!(s.header.frame_limit, 256);
    let d = s.stacks_of_size(9999);
    assert!(!d[0].truncated, "a ~105-frame stack fits in 256");
    let m = s.module_named(&exe).expect("module map lacks the program");
    let recurse = symbol(&exe, "recurse");
    let n = d[0]
        .frames
        .iter()
        .filter(|&&a| in_function(m, recurse, a))
        .count();
    assert_eq!(
        n, 101,
        "recurse() frames in the stack (depth 100 + the first call)"
    );
    let main = symbol(&exe, "main");
    assert!(
        d[0].frames.iter().any(|&a| in_function(m, main, a)),
        "the stack does not reach main"
    );
}

/// Stacks are complete through code without frame pointers: a program
/// built -O2 -fomit-frame-pointer allocates in its qsort comparator, called
/// from glibc (no frame pointers either); the stack reaches main.
#[test]
fn stacks_complete_without_frame_pointers_qsort() {
    for opt in BOTH {
        let dir = fresh_dir("qsort");
        let exe = prog("qsort_cmp", opt);
        let prefix = dir.join("k");
        let out = Run::new(&exe, &dir).out(&prefix).run();
        out.assert_ok();
        let snaps = check_expects(&prefix, &out, 1);
        let s = &snaps["1"];
        let m = s.module_named(&exe).expect("module map lacks the program");
        let main = symbol(&exe, "main");
        let cmp = symbol(&exe, "cmp");
        let stacks = s.stacks_of_size(4567);
        assert!(!stacks.is_empty());
        for st in stacks {
            assert!(
                st.frames.iter().any(|&a| in_function(m, cmp, a)),
                "{opt:?}: no frame in cmp: {:x?}",
                st.frames
            );
            let libc = st.frames.iter().any(|&a| {
                s.module_of(a - 1)
                    .is_some_and(|md| String::from_utf8_lossy(&md.path).contains("libc.so"))
            });
            assert!(
                libc,
                "{opt:?}: no frame in libc's qsort between cmp and main: {:x?}",
                st.frames
            );
            assert!(
                st.frames.iter().any(|&a| in_function(m, main, a)),
                "{opt:?}: the stack stops before main (frames {:x?}, main at {:x?} + base {:x})",
                st.frames,
                main,
                m.base
            );
        }
    }
}
