//! Every allocation hook, C++'s operators and containers, exceptions.

use memtrace_tests::*;

fn hooks(opt: Opt) {
    let dir = fresh_dir("hooks");
    let exe = prog("hooks", opt);
    let prefix = dir.join("k");
    let out = Run::new(&exe, &dir).out(&prefix).run();
    out.assert_ok();
    assert!(out.stdout.contains("done"), "{}", out.stdout);
    let snaps = check_expects(&prefix, &out, 30);
    // Every hook's blocks were allocated by the program: their stacks pass through it.
    let s1 = &snaps["1"];
    for size in [
        1000, 777, 5001, 3003, 60001, 2222, 221, 899, 1111, 1280, 1333, 1444, 1555,
    ] {
        assert_stacks_in(s1, size, &exe);
    }
    // The failed calls (calloc/realloc/reallocarray overflow) left no trace of
    // an impossible size anywhere.
    for (tag, s) in &snaps {
        assert!(
            s.traces.iter().all(|t| t.size < (1 << 40)),
            "snapshot {tag} holds a group with an impossible size: {}",
            s.describe()
        );
    }
}

#[test]
fn every_hook_o0_frame_pointers() {
    hooks(Opt::O0);
}

#[test]
fn every_hook_o2_no_frame_pointers() {
    hooks(Opt::O2);
}

/// Output is the same traced and untraced (the hooks keep glibc's semantics:
/// the program CHECKs each result and exits 99 on any difference).
#[test]
fn hooks_program_runs_as_untraced() {
    let dir = fresh_dir("hooks-same");
    let exe = prog("hooks", Opt::O2);
    let a = Run::new(&exe, &dir).untraced().run();
    a.assert_ok();
    let b = Run::new(&exe, &dir).out(dir.join("t")).run();
    b.assert_ok();
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(
        b.stderr, "",
        "the preload printed on stderr without MEMTRACE_VERBOSE"
    );
}

fn cpp(opt: Opt) {
    let dir = fresh_dir("cpp");
    let exe = prog("cpp_containers", opt);
    let prefix = dir.join("k");
    let traced = Run::new(&exe, &dir).out(&prefix).run();
    traced.assert_ok();
    let snaps = check_expects(&prefix, &traced, 12);
    // operator new's blocks are attributed to the program's code.
    let s1 = &snaps["1"];
    for size in [1016, 1234, 77777] {
        assert_stacks_in(s1, size, &exe);
    }
    // Exceptions through allocating frames, the host's own backtrace() and
    // unwinder: output identical to an untraced run.
    let plain = Run::new(&exe, &dir).untraced().run();
    plain.assert_ok();
    assert_eq!(
        traced.stdout, plain.stdout,
        "traced output differs from untraced"
    );
    assert_eq!(traced.value("caught").as_deref(), Some("100"));
    assert_eq!(traced.value("backtrace_frames_ok").as_deref(), Some("1"));
    assert_eq!(
        traced.value("backtrace_from").as_deref(),
        Some("libc.so.6"),
        "backtrace() of the traced program does not resolve to glibc's"
    );
    assert_eq!(
        traced.value("unwind_from").as_deref(),
        Some("libgcc_s.so.1"),
        "_Unwind_RaiseException of the traced program does not resolve to libgcc_s"
    );
}

#[test]
fn cpp_new_delete_containers_exceptions_o0() {
    cpp(Opt::O0);
}

#[test]
fn cpp_new_delete_containers_exceptions_o2() {
    cpp(Opt::O2);
}

/// calloc overflow returns NULL with ENOMEM and records nothing: between two
/// snapshots the program makes 300 overflowing calloc calls and 5 good
/// mallocs, so the allocation count grows by exactly 5.
#[test]
fn calloc_overflow_records_nothing() {
    failures_record_nothing("calloc");
}
