//! A program whose malloc is not glibc's (issue 4): the preload cannot see
//! its allocations, says so in one line, and names the allocator's module in
//! every snapshot's header (`malloc_owner`) instead of writing an empty
//! profile silently.

use memtrace_tests::*;

#[test]
fn own_malloc_is_named_in_every_snapshot() {
    for opt in BOTH {
        let dir = fresh_dir("own-malloc");
        let prefix = dir.join("k");
        let exe = prog("own_malloc", opt);
        let out = Run::new(&exe, &dir).out(&prefix).run();
        out.assert_ok();
        let plain = Run::new(&exe, &dir).untraced().run();
        assert_eq!(out.stdout.lines().last(), plain.stdout.lines().last());
        let want = format!(
            "memtrace: this program's malloc comes from {}, not glibc: its allocations are not traced",
            exe.canonicalize().unwrap().display()
        );
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines, [want.as_str()], "stderr: {}", out.stderr);
        assert_eq!(snap_files(&dir), ["k.1.snap", "k.exit.snap"]);
        for f in snap_files(&dir) {
            let s = load(dir.join(&f));
            s.check_consistent(&f);
            assert!(
                same_file(&s.header.malloc_owner, &exe),
                "{f}: malloc_owner {:?}, want {}",
                String::from_utf8_lossy(&s.header.malloc_owner),
                exe.display()
            );
            // The program's own 1000..1015-byte blocks never reached us.
            for size in 1000..1016 {
                assert_eq!(s.count_of(size), 0, "{f}: {}", s.describe());
            }
        }
    }
}

/// The usual case: glibc's malloc, hooked; the field stays empty.
#[test]
fn glibc_malloc_leaves_malloc_owner_empty() {
    let dir = fresh_dir("glibc-malloc");
    let prefix = dir.join("k");
    let out = Run::new(prog("snap_basic", Opt::O2), &dir)
        .out(&prefix)
        .run();
    out.assert_ok();
    assert_eq!(out.stderr, "");
    for f in snap_files(&dir) {
        assert!(load(dir.join(&f)).header.malloc_owner.is_empty(), "{f}");
    }
}
