//! The fast unwinder (preload/src/unwind/ehframe.rs) against libunwind.
//!
//! `MEMTRACE_UNWIND=check` runs both on every capture and prints
//! `unwind check: N captures, M mismatches, D declined ...` at exit (and the
//! first mismatching stacks). Here: zero mismatches over programs with
//! qsort callbacks, deep recursion, C++ exceptions and containers, threads,
//! dlopen, signal handlers, sigaltstack, makecontext, longjmp, alloca, mixed
//! frame-pointer code, and python3; and under `fast` the stacks reach main.

use memtrace_tests::*;
use std::path::Path;

/// (captures, mismatches, declined) from the check summary line.
fn check_summary(stderr: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("unwind check:"))
        .unwrap_or_else(|| panic!("no unwind check summary on stderr:\n{}", tail(stderr, 3000)));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    assert!(nums.len() >= 3, "cannot read {line:?}");
    (nums[0], nums[1], nums[2])
}

fn run_checked(name: &str, opt: Opt, args: &[String], min_expects: usize) -> (u64, u64) {
    let dir = fresh_dir(&format!("unwind-check-{name}-{opt:?}"));
    let prefix = dir.join("u");
    let out = Run::new(prog(name, opt), &dir)
        .out(&prefix)
        .env("MEMTRACE_UNWIND", "check")
        .env("MEMTRACE_FRAMES", "256")
        .args(args.iter().cloned())
        .timeout(120)
        .run();
    out.assert_ok();
    let (captures, mismatches, declined) = check_summary(&out.stderr);
    assert_eq!(
        mismatches,
        0,
        "{name} {opt:?}: the fast unwinder disagrees with libunwind:\n{}",
        tail(&out.stderr, 4000)
    );
    assert!(
        !out.stderr.contains("unwind mismatch"),
        "{}",
        tail(&out.stderr, 4000)
    );
    assert!(captures > 0, "{name} {opt:?}: nothing captured");
    if min_expects > 0 {
        check_expects(&prefix, &out, min_expects);
    }
    eprintln!("{name} {opt:?}: {captures} captures, 0 mismatches, {declined} declined");
    (captures, declined)
}

#[test]
fn check_mode_finds_no_mismatch_in_the_test_programs() {
    let lib = shared_lib("libdlalloc").display().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let cases: Vec<(&str, Vec<String>, usize)> = vec![
        ("qsort_cmp", vec![], 1),
        ("deep", s(&["200"]), 1),
        ("cpp_containers", vec![], 1),
        ("threads_xfree", s(&["2001", "2000"]), 1),
        ("threads_busy", vec![], 0),
        ("dl_prog", vec![lib], 1),
        ("hooks", vec![], 1),
        ("unwind_edge", vec![], 8),
    ];
    for (name, args, min) in &cases {
        for opt in BOTH {
            run_checked(name, opt, args, *min);
        }
    }
}

/// The thread's record of its previous capture and the stack-id cache
/// (preload/src/unwind/shadow.rs) against stacks that differ from the
/// previous one only in callers far above, at the same stack addresses, and
/// against longjmp out of the recorded frames: libunwind agrees with every
/// capture, the exit snapshot holds what the program says, and most
/// captures were answered by the id cache (so it was really tested).
#[test]
fn check_mode_shadow_and_id_cache_stay_exact() {
    for opt in BOTH {
        let dir = fresh_dir(&format!("unwind-shadow-{opt:?}"));
        let prefix = dir.join("s");
        let out = Run::new(prog("shadow_stress", opt), &dir)
            .out(&prefix)
            .env("MEMTRACE_UNWIND", "check")
            .timeout(120)
            .run();
        out.assert_ok();
        let (captures, mismatches, declined) = check_summary(&out.stderr);
        assert_eq!(mismatches, 0, "{opt:?}: {}", tail(&out.stderr, 4000));
        assert_eq!(
            declined, 0,
            "{opt:?}: plain frames only, yet {declined} declined"
        );
        let cached = id_cache_answers(&out.stderr);
        assert!(
            captures >= 30_000 && cached * 2 > captures,
            "{opt:?}: {cached} of {captures} captures answered by the id cache"
        );
        check_expects(&prefix, &out, 3);
        eprintln!(
            "shadow_stress {opt:?}: {captures} captures, {cached} from the id cache, 0 mismatches"
        );
    }
}

/// Every allocating entry point (malloc, calloc, realloc, reallocarray,
/// posix_memalign, aligned_alloc, memalign, valloc, pvalloc: all in
/// hooks.c) hands the unwinder its caller's frame through its entry stub.
/// A stub passing the wrong register would not show in the stacks (the
/// capture would fall back to libunwind), only as declined captures.
#[test]
fn entry_stubs_hand_over_the_callers_frame() {
    for opt in BOTH {
        let (captures, declined) = run_checked("hooks", opt, &[], 1);
        assert_eq!(
            declined, 0,
            "{opt:?}: {declined} of {captures} captures declined"
        );
    }
}

/// The id-cache count of the check summary ("…, N answered by its
/// stack-id cache").
fn id_cache_answers(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("unwind check:"))
        .expect("check summary");
    let before = line
        .split(" answered by its stack-id cache")
        .next()
        .unwrap();
    before
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("cannot read {line:?}"))
}

/// Signal handlers, sigaltstack and makecontext stacks are handed to
/// libunwind (declined), the rest is walked by the fast unwinder.
#[test]
fn check_mode_declines_signal_and_foreign_stacks_only() {
    for opt in BOTH {
        let (captures, declined) = run_checked("unwind_edge", opt, &[], 8);
        assert!(
            declined >= 3,
            "{opt:?}: {declined} of {captures} declined, expected the 3 special stacks"
        );
        assert!(
            declined * 2 < captures,
            "{opt:?}: {declined} of {captures} declined"
        );
    }
}

/// With the fast unwinder alone, every stack of unwind_edge reaches main (the
/// coroutine's reaches its own entry; the thread's its start routine), and
/// none is cut.
#[test]
fn fast_stacks_are_complete() {
    for opt in BOTH {
        let exe = prog("unwind_edge", opt);
        let dir = fresh_dir(&format!("unwind-fast-{opt:?}"));
        let prefix = dir.join("f");
        let out = Run::new(&exe, &dir)
            .out(&prefix)
            .env("MEMTRACE_UNWIND", "fast")
            .env("MEMTRACE_FRAMES", "256")
            .run();
        out.assert_ok();
        let snaps = check_expects(&prefix, &out, 8);
        let s = &snaps["exit"];
        let m = s.module_named(&exe).expect("exe in the module map");
        let main = symbol(&exe, "main");
        for size in 1101..=1108u64 {
            let want = match size {
                1103 => "coroutine",
                1108 => "thread_main",
                _ => "main",
            };
            let f = if want == "main" {
                main
            } else {
                symbol(&exe, want)
            };
            for st in s.stacks_of_size(size) {
                assert!(
                    !st.truncated,
                    "{opt:?} size {size}: truncated stack {:x?}",
                    st.frames
                );
                assert!(
                    st.frames.iter().any(|&a| in_function(m, f, a)),
                    "{opt:?} size {size}: no frame in {want}: {:x?}",
                    st.frames
                );
            }
        }
        // Deep recursion: 200 frames of recurse() and then main.
        let deep = prog("deep", opt);
        let prefix = dir.join("d");
        let out = Run::new(&deep, &dir)
            .out(&prefix)
            .env("MEMTRACE_UNWIND", "fast")
            .env("MEMTRACE_FRAMES", "256")
            .arg("200")
            .run();
        out.assert_ok();
        let snaps = check_expects(&prefix, &out, 1);
        let s = &snaps["1"];
        let m = s.module_named(&deep).expect("deep in the module map");
        let main = symbol(&deep, "main");
        for st in s.stacks_of_size(9999) {
            assert!(
                !st.truncated && st.frames.len() > 200,
                "{opt:?}: {} frames",
                st.frames.len()
            );
            assert!(
                st.frames.iter().any(|&a| in_function(m, main, a)),
                "{opt:?}: deep stack misses main"
            );
        }
    }
}

/// python3 (Debian's, -O2 with its own frame layout, threads, pymalloc
/// off so that every object goes through malloc): no mismatch, and the
/// stacks of what it holds at exit pass through the python executable.
#[test]
fn check_mode_python3() {
    let py = Path::new("/usr/bin/python3");
    if !py.exists() {
        eprintln!("no /usr/bin/python3: skipped");
        return;
    }
    let dir = fresh_dir("unwind-python");
    let prefix = dir.join("p");
    let script = "import json, threading, re\n\
                  x = [json.dumps({'a': i, 'b': [i] * 3}) for i in range(20000)]\n\
                  def f(n): return [re.sub('1', 'x', str(i) * 3) for i in range(n)]\n\
                  t = [threading.Thread(target=f, args=(20000,)) for _ in range(3)]\n\
                  [a.start() for a in t]; [a.join() for a in t]\n\
                  print(len(x))\n";
    let out = Run::new(py, &dir)
        .out(&prefix)
        .env("MEMTRACE_UNWIND", "check")
        .env("MEMTRACE_FRAMES", "256")
        .env("PYTHONMALLOC", "malloc")
        .args(["-c", script])
        .timeout(120)
        .run();
    out.assert_ok();
    let (captures, mismatches, declined) = check_summary(&out.stderr);
    assert_eq!(
        mismatches,
        0,
        "python3: mismatches:\n{}",
        tail(&out.stderr, 4000)
    );
    assert!(captures > 100_000, "python3: only {captures} captures");
    eprintln!("python3: {captures} captures, 0 mismatches, {declined} declined");
    let s = load(snap_path(&prefix, "exit"));
    let exe = py.canonicalize().unwrap();
    let m = s.module_named(&exe).expect("python in the module map");
    let (mut through, mut all) = (0u64, 0u64);
    for t in &s.traces {
        let st = s.stack(t.stack);
        all += t.count;
        if st.frames.iter().any(|&a| m.contains(a.wrapping_sub(1))) {
            through += t.count;
        }
    }
    assert!(
        all > 100 && through * 10 >= all * 9,
        "python3: {through} of {all} live blocks have python frames"
    );
}
