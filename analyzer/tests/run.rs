//! `memtrace run`: a real program under the real libtrace.so.
//!
//! libtrace.so is taken from next to the memtrace binary under test, else
//! target/release/ (built with `cargo build --release -p memtrace-preload`,
//! which this test runs once when neither exists).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
use common::*;

/// The libtrace.so to use, or why there is none.
fn preload() -> Result<PathBuf, String> {
    let next = Path::new(BIN).parent().unwrap().join("libtrace.so");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let release = root.join("target/release/libtrace.so");
    for p in [&next, &release] {
        if p.is_file() {
            return Ok(p.clone());
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let o = Command::new(cargo)
        .args(["build", "--release", "-p", "memtrace-preload"])
        .current_dir(&root)
        .output()
        .map_err(|e| e.to_string())?;
    if release.is_file() {
        Ok(release)
    } else {
        Err(format!(
            "no libtrace.so: cargo build -p memtrace-preload failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

macro_rules! need_preload {
    () => {
        match preload() {
            Ok(p) => p,
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                return;
            }
        }
    };
}

fn memtrace(preload: &Path, dir: &Path, args: &[&str]) -> Out {
    let o = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("MEMTRACE_PRELOAD", preload)
        .output()
        .unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

const PROG: &str = r#"#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

static void *keep[100];

int main(int argc, char **argv) {
    for (int i = 0; i < 100; i++)
        keep[i] = malloc(1000);                 /* line 11 */
    if (argc > 1 && strcmp(argv[1], "raise") == 0)
        raise(atoi(argv[2]));
    if (argc > 1 && strcmp(argv[1], "wait") == 0) {
        /* tell the test we run, then wait until the snapshot file appears */
        printf("ready\n");
        fflush(stdout);
        for (int i = 0; i < 1000 && access(argv[2], F_OK) != 0; i++)
            usleep(10000);
    }
    if (argc > 1 && strcmp(argv[1], "exit") == 0)
        return atoi(argv[2]);
    if (argc > 1 && strcmp(argv[1], "_exit") == 0)
        _exit(0);
    return 0;
}
"#;

fn compile(dir: &Path, name: &str, flags: &[&str]) -> Result<PathBuf, String> {
    let src = dir.join("prog.c");
    std::fs::write(&src, PROG).unwrap();
    let out = dir.join(name);
    let o = Command::new("gcc")
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    Ok(out)
}

#[test]
fn dynamic_program_status_and_snapshot() {
    let pre = need_preload!();
    let dir = tmpdir("dyn");
    let prog = compile(&dir, "prog", &["-g", "-O0"]).unwrap();
    let p = prog.to_str().unwrap();
    // exit code forwarded, the exit snapshot listed, relative to the prefix as given
    std::fs::create_dir(dir.join("out")).unwrap();
    let o = memtrace(
        &pre,
        &dir,
        &[
            "run", "--out", "out/app", "--frames", "16", "--", p, "exit", "7",
        ],
    );
    assert_eq!(o.code, 7, "{}", o.stderr);
    assert_eq!(
        o.stderr,
        "memtrace: wrote out/app.exit.snap\nmemtrace: wrote out/app.history (history)\n"
    );
    let o = memtrace(&pre, &dir, &["top", "out/app.exit.snap"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let src = dir.join("prog.c");
    assert_eq!(
        o.stdout.lines().nth(1).unwrap(),
        format!(
            "{}:11: size=97.7 KiB, count=100, average=1000 B",
            src.display()
        )
    );
    let o = memtrace(&pre, &dir, &["stats", "out/app.exit.snap", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["frame_limit"], 16);
    assert_eq!(v["cmdline"][1], "exit");

    // the default prefix memtrace.%p; PATH lookup; a second run lists only its own file
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run_path = |args: &[&str]| {
        let o = Command::new(BIN)
            .args(args)
            .current_dir(&dir)
            .env("MEMTRACE_PRELOAD", &pre)
            .env("PATH", &path)
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err1) = run_path(&["run", "prog"]);
    assert_eq!(code, 0, "{err1}");
    let (code, err2) = run_path(&["run", "--", "prog", "exit", "3"]);
    assert_eq!(code, 3);
    for e in [&err1, &err2] {
        // The exit snapshot, then the history `memtrace run` turns on.
        assert_eq!(e.lines().count(), 2, "{e}");
        assert!(
            e.lines().nth(1).unwrap().ends_with(".history (history)"),
            "{e}"
        );
        let name = e
            .lines()
            .next()
            .unwrap()
            .strip_prefix("memtrace: wrote ")
            .unwrap();
        assert!(
            name.starts_with("memtrace.") && name.ends_with(".exit.snap"),
            "{e}"
        );
        assert!(dir.join(name).is_file());
    }
    assert_ne!(err1, err2);

    // an existing LD_PRELOAD stays (after ours; libtrace.so leaves itself in only with --follow-exec)
    let o = Command::new(BIN)
        .args([
            "run",
            "--out",
            "out/keep",
            "--follow-exec",
            "--",
            "/bin/sh",
            "-c",
            "echo \"$LD_PRELOAD\"",
        ])
        .current_dir(&dir)
        .env("MEMTRACE_PRELOAD", &pre)
        .env("LD_PRELOAD", "libm.so.6")
        .output()
        .unwrap();
    let canon = std::fs::canonicalize(&pre).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("{}:libm.so.6", canon.display())
    );

    // CMD starts with the signal mask it would have had without memtrace (not the one
    // memtrace blocks to forward signals)
    let direct = Command::new("grep")
        .args(["SigBlk", "/proc/self/status"])
        .output()
        .unwrap();
    let o = Command::new(BIN)
        .args([
            "run",
            "--out",
            "out/mask",
            "--",
            "grep",
            "SigBlk",
            "/proc/self/status",
        ])
        .current_dir(&dir)
        .env("MEMTRACE_PRELOAD", &pre)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&direct.stdout)
    );

    // _exit writes the exit snapshot too (issue 11)
    let o = memtrace(&pre, &dir, &["run", "--", p, "_exit"]);
    assert_eq!(o.code, 0);
    assert!(
        o.stderr.starts_with("memtrace: wrote memtrace.") && o.stderr.contains(".exit.snap"),
        "{}",
        o.stderr
    );
    // no snapshot at all: said once, with reasons, and the status still forwarded
    let o = memtrace(&pre, &dir, &["run", "--out", "nodir/x", "--", p]);
    assert_eq!(o.code, 0);
    assert!(
        o.stderr
            .ends_with("wrote no snapshot: its output directory nodir/ does not exist\n"),
        "{}",
        o.stderr
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn signals_forwarded_as_128_plus_n() {
    let pre = need_preload!();
    let dir = tmpdir("sig");
    let prog = compile(&dir, "prog", &["-g", "-O2"]).unwrap();
    let p = prog.to_str().unwrap();
    // killed by a signal: 128 + n
    let o = memtrace(&pre, &dir, &["run", "--", p, "raise", "15"]);
    assert_eq!(o.code, 128 + 15, "{}", o.stderr);
    let o = memtrace(&pre, &dir, &["run", "--", p, "raise", "9"]);
    assert_eq!(o.code, 128 + 9, "{}", o.stderr);
    assert_eq!(o.stderr, format!("memtrace: {p} wrote no snapshot: it was killed by SIGKILL, which leaves no time for the exit snapshot\n"));
    let o = memtrace(&pre, &dir, &["run", "--", p, "raise", "6"]);
    assert_eq!(o.code, 128 + 6, "{}", o.stderr);

    // the snapshot signal sent to memtrace reaches the program
    let snap1 = dir.join("w.1.snap");
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--out",
            "w",
            "--signal",
            "USR1",
            "--",
            p,
            "wait",
            snap1.to_str().unwrap(),
        ])
        .current_dir(&dir)
        .env("MEMTRACE_PRELOAD", &pre)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "memtrace: wrote w.1.snap\nmemtrace: wrote w.exit.snap\nmemtrace: wrote w.history (history)\n"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// SIGINT, SIGQUIT and SIGHUP sent to memtrace (not typed at a terminal)
/// reach CMD, as a shell passes them to its job: CMD dies of it, memtrace
/// exits 128 + n. A refused --signal says why.
#[test]
fn interrupt_sent_to_memtrace_reaches_cmd() {
    let pre = need_preload!();
    let dir = tmpdir("sigint");
    let prog = compile(&dir, "prog", &["-g", "-O2"]).unwrap();
    let p = prog.to_str().unwrap();
    for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGHUP] {
        let never = dir.join("never");
        let mut child = Command::new(BIN)
            .args([
                "run",
                "--out",
                "i",
                "--",
                p,
                "wait",
                never.to_str().unwrap(),
            ])
            .current_dir(&dir)
            .env("MEMTRACE_PRELOAD", &pre)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        let started = std::time::Instant::now();
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(128 + sig),
            "signal {sig}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "CMD did not get signal {sig}"
        );
    }
    let o = memtrace(&pre, &dir, &["run", "--signal", "KILL", "--", p]);
    assert_eq!(o.code, 2);
    assert_eq!(o.stderr, "memtrace: --signal KILL: SIGKILL and SIGSTOP cannot be caught, so they cannot ask for a snapshot\n");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn static_program_is_refused() {
    let pre = need_preload!();
    let dir = tmpdir("static");
    let prog = match compile(&dir, "sprog", &["-static", "-O0"]) {
        Ok(p) => p,
        Err(why) => {
            eprintln!(
                "SKIPPED: gcc -static failed (no static libc? libc6-dev ships libc.a): {why}"
            );
            return;
        }
    };
    let p = prog.to_str().unwrap();
    let o = memtrace(&pre, &dir, &["run", "--out", "s", "--", p, "exit", "5"]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr,
        format!("memtrace: {p} is statically linked: LD_PRELOAD cannot trace it\n")
    );
    // it did not run: it would have exited 5
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2); // prog.c, sprog

    // a script whose interpreter is static is refused too
    let script = dir.join("script");
    std::fs::write(&script, format!("#!{p}\n")).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = memtrace(&pre, &dir, &["run", "--", script.to_str().unwrap()]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("is statically linked: LD_PRELOAD cannot trace it"),
        "{}",
        o.stderr
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn setuid_program_is_refused() {
    let pre = need_preload!();
    // SAFETY: getters.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    let dir = tmpdir("suid");
    let prog = compile(&dir, "prog", &["-O0"]).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let p = prog.to_str().unwrap();
    // a set-user-ID program owned by someone else
    let other = if uid == 0 { 65534 } else { 0 };
    let c = std::ffi::CString::new(p).unwrap();
    // SAFETY: chown/chmod of a file we just created.
    let ok = unsafe {
        libc::chown(c.as_ptr(), other, u32::MAX) == 0 && libc::chmod(c.as_ptr(), 0o4755) == 0
    };
    if !ok || euid != 0 && uid != 0 {
        eprintln!("SKIPPED: cannot give the test program another owner (not root)");
        return;
    }
    let o = memtrace(&pre, &dir, &["run", "--", p]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr,
        format!("memtrace: {p} is set-user-ID (owner uid {other}): the loader ignores LD_PRELOAD for it, so it cannot be traced\n")
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn usage_and_missing_command() {
    let pre = need_preload!();
    let dir = tmpdir("usage");
    let o = memtrace(&pre, &dir, &["run"]);
    assert_eq!(o.code, 2);
    let o = memtrace(&pre, &dir, &["run", "--frames", "0", "--", "true"]);
    assert_eq!(o.code, 2);
    let o = memtrace(&pre, &dir, &["run", "--", "no-such-command-xyz"]);
    assert_eq!(o.code, 127);
    assert_eq!(
        o.stderr,
        "memtrace: no-such-command-xyz: command not found\n"
    );
    let o = memtrace(&pre, &dir, &["run", "--", "./missing"]);
    assert_eq!(o.code, 127);
    let o = Command::new(BIN)
        .args(["run", "--", "true"])
        .env("MEMTRACE_PRELOAD", "/nonexistent/libtrace.so")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "memtrace: MEMTRACE_PRELOAD=/nonexistent/libtrace.so: no such file\n"
    );
    std::fs::remove_dir_all(&dir).ok();
}
