//! Garbage in the MEMTRACE_* variables not covered by faults.rs
//! (MEMTRACE_FRAMES, MEMTRACE_SIGNAL) or sampling.rs (MEMTRACE_SAMPLE):
//! one line on stderr naming the variable, and the default is used.

use memtrace_tests::*;

fn one_warning(out: &Output, var: &str) {
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{var}: want a one-line warning, got: {:?}",
        out.stderr
    );
    assert!(
        lines[0].starts_with("memtrace: ") && lines[0].contains(var),
        "{:?}",
        lines[0]
    );
}

fn garbage_flag(var: &str, value: &str) {
    let dir = fresh_dir("garbage-flag");
    let prefix = dir.join("k");
    let out = Run::new(prog("snap_basic", Opt::O2), &dir)
        .out(&prefix)
        .env(var, value)
        .run();
    out.assert_ok();
    one_warning(&out, var);
    assert_eq!(list_dir(&dir), ["k.1.snap", "k.2.snap", "k.exit.snap"]);
    check_expects(&prefix, &out, 7);
}

#[test]
fn garbage_memtrace_verbose() {
    garbage_flag("MEMTRACE_VERBOSE", "maybe");
}

#[test]
fn garbage_memtrace_follow_exec() {
    garbage_flag("MEMTRACE_FOLLOW_EXEC", "2");
}

/// A prefix that names a directory, or nothing: the default `memtrace.%p`
/// in the working directory.
#[test]
fn garbage_memtrace_out() {
    for value in ["", "somewhere/"] {
        let dir = fresh_dir("garbage-out");
        let out = Run::new(prog("snap_basic", Opt::O2), &dir)
            .env("MEMTRACE_OUT", value)
            .run();
        out.assert_ok();
        one_warning(&out, "MEMTRACE_OUT");
        let p = format!("memtrace.{}", out.pid);
        assert_eq!(
            list_dir(&dir),
            [
                format!("{p}.1.snap"),
                format!("{p}.2.snap"),
                format!("{p}.exit.snap")
            ],
            "MEMTRACE_OUT={value:?}"
        );
        check_expects(&dir.join(&p), &out, 7);
    }
}
