//! Snapshot-signal storms beyond snapshots.rs's paced one (issue 4): 1000
//! signals in one burst (a pending standard signal coalesces in the kernel,
//! and the preload keeps 64 pending moments at most), and a
//! storm under MEMTRACE_SAMPLE. Memory stays bounded: the traced process's
//! peak RSS is checked against a tight bound, not just "no crash".

use memtrace_tests::*;
use std::time::Duration;

fn storm(sample: Option<&str>, pause: Duration) -> (Output, TestDir) {
    let dir = fresh_dir("storm2");
    let prefix = dir.join("k");
    let mut run = Run::new(prog("snap_storm", Opt::O2), &dir)
        .out(&prefix)
        .timeout(120);
    if let Some(s) = sample {
        run = run.env("MEMTRACE_SAMPLE", s);
    }
    let mut r = run.spawn();
    r.wait_for("READY");
    for i in 0..1000u32 {
        // SAFETY: signalling our own child.
        let rc = unsafe { libc::kill(r.pid as i32, libc::SIGUSR2) };
        assert_eq!(rc, 0, "kill failed at signal {i}: the process died?");
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    let out = r.wait();
    out.assert_ok();
    (out, dir)
}

fn check_files(dir: &std::path::Path, exact: bool, rate: u64) -> usize {
    let files = snap_files(dir);
    assert!(files.contains(&"k.exit.snap".to_string()), "{files:?}");
    let mut n = 0;
    for f in &files {
        let s = load(dir.join(f));
        s.check_consistent(f);
        assert_eq!(s.header.sample_rate, rate, "{f}");
        if exact {
            assert_eq!(s.count_of(7777), 100, "{f}: {}", s.describe());
        }
        n += 1;
    }
    let leftovers: Vec<_> = list_dir(dir)
        .into_iter()
        .filter(|f| !f.ends_with(".snap"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
    n
}

/// 1000 signals back to back: no crash, every file whole and exact, peak
/// RSS under 64 MiB (it is ≈ 6 MiB here; the program itself needs ≈ 2).
#[test]
fn burst_of_1000_signals_stays_small() {
    let (out, dir) = storm(None, Duration::ZERO);
    let n = check_files(&dir, true, 0);
    assert!(n >= 2, "no signal snapshot at all");
    let rss = out.value_u64("maxrss_kb");
    eprintln!("burst: {n} files, peak RSS {rss} KiB");
    assert!(rss < 64 * 1024, "peak RSS {rss} KiB");
}

/// The paced storm under sampling: same bounds, files carry the rate.
#[test]
fn storm_under_sampling_stays_small() {
    let (out, dir) = storm(Some("4K"), Duration::from_micros(900));
    let n = check_files(&dir, false, 4096);
    assert!(n >= 2, "no signal snapshot at all");
    let rss = out.value_u64("maxrss_kb");
    eprintln!("sampled storm: {n} files, peak RSS {rss} KiB");
    assert!(rss < 64 * 1024, "peak RSS {rss} KiB");
}
