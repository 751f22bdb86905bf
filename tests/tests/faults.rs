//! Never break the host (issue 4): bad output locations, garbage settings,
//! allocation failures, fork under load, abnormal ends.

use memtrace_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn stderr_lines(out: &Output) -> Vec<&str> {
    out.stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// The output cannot be written (the "directory" is a regular file, which
/// stops root too): one line on stderr, the program's output and exit
/// status unchanged.
#[test]
fn unwritable_output_dir() {
    let dir = fresh_dir("unwritable");
    std::fs::write(dir.join("file"), b"not a directory").unwrap();
    let exe = prog("snap_basic", Opt::O2);
    let out = Run::new(&exe, &dir).out(dir.join("file").join("k")).run();
    let plain = Run::new(&exe, &dir).untraced().run();
    assert_eq!(
        out.code(),
        plain.code(),
        "exit status changed; stderr: {}",
        out.stderr
    );
    assert_eq!(out.stdout, plain.stdout);
    let lines = stderr_lines(&out);
    assert_eq!(
        lines.len(),
        1,
        "want exactly one line on stderr, got: {:?}",
        out.stderr
    );
    assert_eq!(list_dir(&dir), ["file"]);
    assert_eq!(std::fs::read(dir.join("file")).unwrap(), b"not a directory");
}

/// A full disk (a 64 KiB tmpfs): the program runs to its normal end, at most
/// one line on stderr, and whatever snapshot carries a final name is whole.
#[test]
fn disk_full_tmpfs() {
    let dir = fresh_dir("diskfull");
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let m = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .output();
    match m {
        Ok(o) if o.status.success() => {}
        other => {
            eprintln!("SKIPPED disk_full_tmpfs: cannot mount a tmpfs here ({other:?})");
            return;
        }
    }
    struct Umount<'a>(&'a Path);
    impl Drop for Umount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _u = Umount(&mnt);
    // Fill it almost completely.
    let mut filler = vec![0u8; 60 * 1024];
    filler[0] = 1;
    std::fs::write(mnt.join("filler"), &filler).unwrap();
    let exe = prog("snap_basic", Opt::O2);
    let out = Run::new(&exe, &dir).out(mnt.join("k")).run();
    let plain = Run::new(&exe, &dir).untraced().run();
    assert_eq!(out.code(), plain.code(), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, plain.stdout);
    let lines = stderr_lines(&out);
    assert!(
        lines.len() <= 1,
        "want at most one line on stderr, got: {:?}",
        out.stderr
    );
    for f in snap_files(&mnt) {
        load(mnt.join(&f)); // decodes whole, or panics
    }
    assert_eq!(std::fs::read(mnt.join("filler")).unwrap(), filler);
}

fn garbage(var: &str, value: &str) -> Output {
    let dir = fresh_dir("garbage");
    let prefix = dir.join("k");
    let out = Run::new(prog("snap_basic", Opt::O2), &dir)
        .out(&prefix)
        .env(var, value)
        .run();
    out.assert_ok();
    let lines = stderr_lines(&out);
    assert_eq!(
        lines.len(),
        1,
        "{var}={value:?}: want a one-line warning, got: {:?}",
        out.stderr
    );
    assert!(
        lines[0].contains(var),
        "the warning does not name {var}: {:?}",
        lines[0]
    );
    // The default is used: USR2 snapshots, 32 frames.
    assert_eq!(list_dir(&dir), ["k.1.snap", "k.2.snap", "k.exit.snap"]);
    let snaps = check_expects(&prefix, &out, 7);
    assert_eq!(snaps["1"].header.frame_limit, 32);
    out
}

#[test]
fn garbage_memtrace_frames_word() {
    garbage("MEMTRACE_FRAMES", "lots");
}

#[test]
fn garbage_memtrace_frames_negative() {
    garbage("MEMTRACE_FRAMES", "-5");
}

#[test]
fn garbage_memtrace_frames_trailing() {
    garbage("MEMTRACE_FRAMES", "12x");
}

#[test]
fn garbage_memtrace_signal() {
    garbage("MEMTRACE_SIGNAL", "SIGBOGUS");
}

/// Output never clobbers an existing file nor follows a symlink.
#[test]
fn never_clobbers_or_follows_symlinks() {
    let dir = fresh_dir("clobber");
    let prefix = dir.join("k");
    std::fs::write(dir.join("k.1.snap"), b"precious").unwrap();
    std::fs::write(dir.join("victim"), b"victim stays").unwrap();
    std::os::unix::fs::symlink(dir.join("victim"), dir.join("k.2.snap")).unwrap();
    std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("k.exit.snap")).unwrap();
    let exe = prog("snap_basic", Opt::O2);
    let out = Run::new(&exe, &dir).out(&prefix).run();
    let plain = Run::new(&exe, &dir).untraced().run();
    assert_eq!(out.code(), plain.code(), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, plain.stdout);
    assert_eq!(std::fs::read(dir.join("k.1.snap")).unwrap(), b"precious");
    assert_eq!(std::fs::read(dir.join("victim")).unwrap(), b"victim stays");
    assert!(std::fs::symlink_metadata(dir.join("k.2.snap"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(
        !dir.join("nowhere").exists(),
        "a symlink was followed to create its target"
    );
}

/// Files are not world-writable even under umask 000.
#[test]
fn files_not_world_writable() {
    let dir = fresh_dir("perms");
    let prefix = dir.join("k");
    let out = Run::new(prog("snap_basic", Opt::O2), &dir)
        .out(&prefix)
        .shell_prefix("umask 000")
        .run();
    out.assert_ok();
    let files = snap_files(&dir);
    assert_eq!(files.len(), 3, "{files:?}");
    for f in files {
        let mode = std::fs::metadata(dir.join(&f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o002, 0, "{f} is world-writable (mode {mode:o})");
    }
}

/// malloc returning NULL under RLIMIT_AS (ulimit -v) records nothing.
#[test]
fn malloc_null_under_rlimit_as() {
    failures_record_nothing("rlimit");
}

/// The same with the limit set first thing in main, at the current size:
/// the writer thread already has its memory (it allocates before the
/// program starts); without that its first allocation failed and Rust's
/// out-of-memory handler aborted the program.
#[test]
fn rlimit_as_set_first_thing_in_main() {
    failures_record_nothing("rlimit-first");
}

/// Huge sizes through every hook fail with ENOMEM and record nothing.
#[test]
fn huge_sizes_record_nothing() {
    failures_record_nothing("huge");
}

/// fork while three threads are inside malloc, 100 times: no deadlock, all
/// children succeed; those that exit() write their own exact snapshot.
#[test]
fn fork_while_threads_allocate_100_times() {
    fork_stress_children("forkstress", &[]);
}

/// posix_spawn, vfork+exec and longjmp out of allocating frames.
#[test]
fn posix_spawn_vfork_longjmp() {
    let dir = fresh_dir("spawn");
    let prefix = dir.join("k");
    let out = Run::new(prog("spawn", Opt::O2), &dir).out(&prefix).run();
    out.assert_ok();
    for k in ["posix_spawn", "vfork", "longjmp"] {
        assert_eq!(out.value(k).as_deref(), Some("ok"), "{k}");
    }
    check_expects(&prefix, &out, 2);
    assert_eq!(
        list_dir(&dir),
        ["k.exit.snap"],
        "/bin/true was traced (exec is not followed by default)"
    );
}

fn abnormal(mode: &str, sig: i32) {
    let dir = fresh_dir(&format!("abnormal-{mode}"));
    let prefix = dir.join("k");
    let first = snap_path(&prefix, "1");
    let r = Run::new(prog("exit_paths", Opt::O2), &dir)
        .out(&prefix)
        .args([mode, first.to_str().unwrap()]);
    let out = if mode == "kill" {
        let mut run = r.spawn();
        run.wait_for("READY");
        unsafe { libc::kill(run.pid as i32, libc::SIGKILL) };
        run.wait()
    } else {
        r.run()
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(sig),
        "{mode}: {:?}; stderr {}",
        out.status,
        out.stderr
    );
    assert_eq!(
        out.value("snapshot_seen").as_deref(),
        Some("yes"),
        "snapshot 1 never appeared"
    );
    // Snapshot 1 is whole and exact; no other file under a final name is broken.
    let s1 = load(&first);
    s1.check_consistent("k.1.snap");
    assert_eq!(s1.count_of(4242), 42, "{}", s1.describe());
    for f in snap_files(&dir) {
        load(dir.join(&f));
    }
}

#[test]
fn abort_keeps_earlier_snapshots() {
    abnormal("abort", libc::SIGABRT);
}

#[test]
fn segv_keeps_earlier_snapshots() {
    abnormal("segv", libc::SIGSEGV);
}

#[test]
fn sigkill_keeps_earlier_snapshots() {
    abnormal("kill", libc::SIGKILL);
}
