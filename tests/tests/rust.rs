//! A Rust program traced by libtrace.so, at -O0 with frame pointers and at
//! -O2 without: `memtrace top` names the program's own line (not
//! alloc::raw_vec or __rdl_alloc) with exact sizes, and `diff` the growth.

use memtrace_tests::*;
use std::path::Path;
use std::process::Command;

fn build(dir: &Path, opt: Opt) -> std::path::PathBuf {
    let exe = dir.join("rust_prog");
    let flags: &[&str] = match opt {
        Opt::O0 => &["-C", "opt-level=0", "-C", "force-frame-pointers=yes"],
        Opt::O2 => &["-C", "opt-level=2"],
    };
    let st = Command::new("rustc")
        .args(["-g", "--edition", "2021"])
        .args(flags)
        .arg(source("rust_prog.rs"))
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("run rustc");
    assert!(st.success(), "rustc failed");
    exe
}

#[test]
fn rust_program_top_and_diff_name_its_line() {
    let line = line_of("rust_prog.rs", "MARK: alloc");
    for opt in BOTH {
        let dir = fresh_dir("rust");
        let exe = build(&dir, opt);
        let prefix = dir.join("k");
        let out = Run::new(&exe, &dir).out(&prefix).run();
        out.assert_ok();
        let (a, b) = (snap_path(&prefix, "1"), snap_path(&prefix, "2"));
        assert_eq!(load(&a).count_of(1000), 1000, "{opt:?}");
        assert_eq!(load(&b).count_of(4000), 500, "{opt:?}");
        let site = format!("{}:{line}", source("rust_prog.rs").display());
        let top = memtrace_ok(&["top", a.to_str().unwrap()]);
        let want = format!("{site}: size=977 KiB, count=1000, average=1000 B");
        assert!(
            top.lines().any(|l| l == want),
            "{opt:?}: no line {want:?} in\n{top}"
        );
        let diff = memtrace_ok(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
        // Both fills allocate at the same line: 1000 x 1000 + 500 x 4000 B.
        let want = format!("{site}: size=2930 KiB (+1953 KiB), count=1500 (+500), average=2000 B");
        assert!(
            diff.lines().nth(1) == Some(want.as_str()),
            "{opt:?}: want {want:?} first in\n{diff}"
        );
    }
}
