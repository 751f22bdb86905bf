//! fork, exec, dlopen/dlclose, ways to exit.

use memtrace_format::SnapshotKind;
use memtrace_tests::*;
use std::path::Path;

/// With `%p` in the prefix each process writes under its own pid; the
/// child starts from the live set it inherited.
#[test]
fn fork_child_has_its_own_files_percent_p() {
    for opt in BOTH {
        let dir = fresh_dir("fork-p");
        let out = Run::new(prog("forker", opt), &dir)
            .out(dir.join("k.%p"))
            .run();
        out.assert_ok();
        assert_eq!(out.value("child_status").as_deref(), Some("0"));
        let (pp, cp) = (out.value_u64("parent_pid"), out.value_u64("child_pid"));
        assert_eq!(pp, out.pid as u64);
        let snaps = check_expects_with(&out, 10, |tag| {
            let (who, t) = tag.split_once('.').unwrap();
            let pid = if who == "parent" { pp } else { cp };
            dir.join(format!("k.{pid}.{t}.snap"))
        });
        assert_eq!(snaps["child.1"].header.pid as u64, cp);
        assert_eq!(snaps["child.exit"].header.pid as u64, cp);
        assert_eq!(snaps["parent.1"].header.pid as u64, pp);
        let mut want = vec![
            format!("k.{pp}.1.snap"),
            format!("k.{pp}.exit.snap"),
            format!("k.{cp}.1.snap"),
            format!("k.{cp}.exit.snap"),
        ];
        want.sort();
        assert_eq!(list_dir(&dir), want);
        // The child's snapshot numbering starts again at 1 in its own files.
        assert_eq!(snaps["child.1"].header.kind, SnapshotKind::Signal);
        assert_eq!(snaps["child.1"].header.index, 1);
    }
}

/// A prefix without `%p`: the child's files get `.<childpid>` appended, so
/// nothing of the parent's is overwritten.
#[test]
fn fork_child_prefix_without_percent_p() {
    let dir = fresh_dir("fork-nop");
    let out = Run::new(prog("forker", Opt::O2), &dir)
        .out(dir.join("k"))
        .run();
    out.assert_ok();
    let cp = out.value_u64("child_pid");
    check_expects_with(&out, 10, |tag| {
        let (who, t) = tag.split_once('.').unwrap();
        if who == "parent" {
            dir.join(format!("k.{t}.snap"))
        } else {
            dir.join(format!("k.{cp}.{t}.snap"))
        }
    });
    let mut want = vec![
        "k.1.snap".to_string(),
        "k.exit.snap".into(),
        format!("k.{cp}.1.snap"),
        format!("k.{cp}.exit.snap"),
    ];
    want.sort();
    assert_eq!(list_dir(&dir), want);
}

fn fork_exec(follow: bool) -> (TestDir, Output) {
    let dir = fresh_dir(if follow { "exec-follow" } else { "exec" });
    let target = prog("exec_target", Opt::O2);
    let mut r = Run::new(prog("forker", Opt::O2), &dir)
        .out(dir.join("k.%p"))
        .args(["exec", target.to_str().unwrap()]);
    if follow {
        r = r.env("MEMTRACE_FOLLOW_EXEC", "1");
    }
    let out = r.run();
    out.assert_ok();
    assert_eq!(
        out.value("child_status").as_deref(),
        Some("0"),
        "the exec'd program failed"
    );
    assert_eq!(out.value_u64("exec_target_pid"), out.value_u64("child_pid"));
    (dir, out)
}

fn check_parent(dir: &Path, out: &Output) {
    let pp = out.pid;
    for tag in ["1", "exit"] {
        let s = load(dir.join(format!("k.{pp}.{tag}.snap")));
        s.check_consistent(tag);
        assert_eq!(s.count_of(1000), 1000);
        assert_eq!(s.count_of(5005), 50);
        assert_eq!(
            s.count_of(6006),
            0,
            "the exec'd program's blocks in the parent's snapshot"
        );
    }
}

/// fork then exec: the exec'd program is not traced by default.
#[test]
fn fork_exec_not_followed_by_default() {
    let (dir, out) = fork_exec(false);
    let cp = out.value_u64("child_pid");
    assert_eq!(
        out.value("exec_target_preload").as_deref(),
        Some("no"),
        "LD_PRELOAD still names libtrace.so after exec"
    );
    check_parent(&dir, &out);
    let child_files: Vec<_> = list_dir(&dir)
        .into_iter()
        .filter(|f| f.starts_with(&format!("k.{cp}.")))
        .collect();
    assert!(
        child_files.is_empty(),
        "the exec'd program was traced: {child_files:?}"
    );
}

/// MEMTRACE_FOLLOW_EXEC=1: the exec'd program is traced into its own files.
#[test]
fn fork_exec_followed_with_memtrace_follow_exec() {
    let (dir, out) = fork_exec(true);
    let cp = out.value_u64("child_pid");
    assert_eq!(out.value("exec_target_preload").as_deref(), Some("yes"));
    check_parent(&dir, &out);
    let s = load(dir.join(format!("k.{cp}.exit.snap")));
    s.check_consistent("exec'd program");
    assert_eq!(s.count_of(6006), 50, "{}", s.describe());
    assert_eq!(
        s.count_of(1000),
        0,
        "the exec'd program cannot hold the parent's blocks"
    );
    assert_eq!(s.header.pid as u64, cp);
}

/// dlopen a library that allocates, dlclose it, snapshot: the blocks are
/// there and the module map keeps the library, marked unloaded, with the
/// blocks' stacks pointing into it.
#[test]
fn dlopen_dlclose_module_kept_as_unloaded() {
    for opt in BOTH {
        let dir = fresh_dir("dlopen");
        let prefix = dir.join("k");
        let lib = shared_lib("libdlalloc");
        let out = Run::new(prog("dl_prog", opt), &dir)
            .out(&prefix)
            .arg(lib.to_str().unwrap())
            .run();
        out.assert_ok();
        assert_eq!(
            out.value("unloaded").as_deref(),
            Some("yes"),
            "the library did not unload (test setup)"
        );
        let snaps = check_expects(&prefix, &out, 2);
        let s = &snaps["1"];
        let m = s.module_named(&lib).unwrap_or_else(|| {
            panic!(
                "the module map lacks the dlclose'd library: {:?}",
                s.modules
                    .iter()
                    .map(|m| String::from_utf8_lossy(&m.path).into_owned())
                    .collect::<Vec<_>>()
            )
        });
        assert!(m.unloaded, "the dlclose'd library is not marked unloaded");
        assert!(!m.segments.is_empty());
        let f = symbol(&lib, "dl_alloc_one");
        for st in s.stacks_of_size(7070) {
            assert!(
                st.frames.iter().any(|&a| in_function(m, f, a)),
                "no frame in dl_alloc_one of the unloaded library: {:x?}",
                st.frames
            );
        }
    }
}

fn exit_mode(mode: &str, status: i32) {
    let dir = fresh_dir(&format!("exit-{mode}"));
    let prefix = dir.join("k");
    let out = Run::new(prog("exit_paths", Opt::O2), &dir)
        .out(&prefix)
        .arg(mode)
        .run();
    assert_eq!(
        out.code(),
        Some(status),
        "exit status; stderr: {}",
        out.stderr
    );
    assert_eq!(list_dir(&dir), ["k.exit.snap"]);
    check_expects(&prefix, &out, 1);
}

#[test]
fn exit_by_return_from_main() {
    exit_mode("return", 0);
}

#[test]
fn exit_status_kept() {
    exit_mode("status7", 7);
}

#[test]
fn exit_from_nested_function() {
    exit_mode("exit", 0);
}

#[test]
fn exit_from_another_thread() {
    exit_mode("thread", 3);
}
