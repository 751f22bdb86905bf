//! Sampled snapshots (header `sample_rate` R > 0): every statistic is the
//! unbiased estimate Σ c/p(s) blocks and Σ s·c/p(s) bytes with
//! p(s) = 1 − exp(−s/R), rounded per statistic; headers say "estimated".
//! And snapshots whose program's malloc is not libtrace.so's (`malloc_owner`).

use memtrace::format::{format_size, statistic_diff_str, statistic_str};
use memtrace_format::{encode, Header, Snapshot, SnapshotKind, Stack, TraceGroup};
use serde_json::Value;
use std::path::Path;

mod common;
use common::*;

fn header(rate: u64, owner: &[u8]) -> Header {
    Header {
        kind: SnapshotKind::Signal,
        index: 1,
        pid: 77,
        time_ns: 1_700_000_000_000_000_000,
        seq: 5,
        frame_limit: 32,
        traced_bytes: 1234,
        peak_bytes: 5678,
        alloc_count: 100,
        free_count: 50,
        sample_rate: rate,
        cmdline: vec![b"./app".to_vec()],
        exe: b"/nonexistent/app".to_vec(),
        malloc_owner: owner.to_vec(),
    }
}

/// Stacks 1..=3 of one frame each, in no module: labels `<unknown 0x..>:0`.
const ADDR: [u64; 3] = [0x1000, 0x2000, 0x3000];

/// (stack, size, count)
const GROUPS: &[(u64, u64, u64)] = &[
    (1, 1000, 3),
    (1, 100_000, 2),
    (1, 48, 1),
    (2, 2 << 20, 5),
    (3, 64, 7),
    (3, 0, 2),
];

fn write(path: &Path, rate: u64, owner: &[u8], groups: &[(u64, u64, u64)]) {
    let s = Snapshot {
        header: header(rate, owner),
        modules: vec![],
        stacks: ADDR
            .iter()
            .enumerate()
            .map(|(i, &a)| Stack {
                id: i as u64 + 1,
                frames: vec![a],
                truncated: false,
            })
            .collect(),
        traces: groups
            .iter()
            .map(|&(stack, size, count)| TraceGroup { stack, size, count })
            .collect(),
        ..Default::default()
    };
    std::fs::write(path, encode(&s)).unwrap();
}

/// The estimator, written out from its definition.
fn expect(rate: u64, groups: &[(u64, u64, u64)], stack: u64) -> (u64, u64) {
    let (mut bytes, mut blocks) = (0f64, 0f64);
    for &(st, s, c) in groups.iter().filter(|g| g.0 == stack) {
        let p = if rate == 0 || s == 0 {
            1.0
        } else {
            1.0 - (-(s as f64) / rate as f64).exp()
        };
        blocks += c as f64 / p;
        bytes += s as f64 * c as f64 / p;
        let _ = st;
    }
    (bytes.round() as u64, blocks.round() as u64)
}

fn label(stack: u64) -> String {
    format!("<unknown {:#x}>:0", ADDR[stack as usize - 1])
}

#[test]
fn top_traceback_and_json_are_estimated() {
    let dir = tmpdir("top");
    let rate = 512 * 1024;
    let snap = dir.join("s.1.snap");
    write(&snap, rate, b"", GROUPS);
    let p = snap.to_str().unwrap();
    let mut want: Vec<(String, u64, u64)> = (1..=3)
        .map(|st| {
            let (b, c) = expect(rate, GROUPS, st);
            (label(st), b, c)
        })
        .collect();
    want.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)));
    // sanity of the formula's effect: the small blocks are scaled up a lot
    assert!(want.iter().any(|w| w.0 == label(3) && w.2 > 1000));

    let o = run(&["top", p]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stderr, "");
    let mut text = String::from("[ Top 10 ] (estimated from samples, 1 per 512 KiB)\n");
    for (l, b, c) in &want {
        text += &statistic_str(l, *b, *c);
        text += "\n";
    }
    assert_eq!(o.stdout, text);

    let o = run(&["top", p, "--json"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["sample_rate"], rate);
    assert_eq!(v["estimated"], true);
    assert_eq!(v["malloc_owner"], Value::Null);
    for (i, (l, b, c)) in want.iter().enumerate() {
        assert_eq!(v["statistics"][i]["label"], *l);
        assert_eq!(v["statistics"][i]["size"], *b);
        assert_eq!(v["statistics"][i]["count"], *c);
    }
    // the total is the estimate over all groups, rounded once
    let (mut tb, mut tc) = (0f64, 0f64);
    for &(_, s, c) in GROUPS {
        let p = if s == 0 {
            1.0
        } else {
            1.0 - (-(s as f64) / rate as f64).exp()
        };
        tb += s as f64 * c as f64 / p;
        tc += c as f64 / p;
    }
    assert_eq!(v["total"]["size"], tb.round() as u64);
    assert_eq!(v["total"]["count"], tc.round() as u64);

    let o = run(&["top", p, "--pretty"]);
    assert!(
        o.stdout
            .starts_with("Top 10 lines (estimated from samples, 1 per 512 KiB)\n"),
        "{}",
        o.stdout
    );

    let o = run(&["traceback", p]);
    assert_eq!(
        o.stdout.lines().next().unwrap(),
        format!(
            "{} memory blocks: {:.1} KiB (estimated from samples, 1 per 512 KiB)",
            want[0].2,
            want[0].1 as f64 / 1024.0
        )
    );
    let o = run(&["traceback", p, "--json"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["estimated"], true);
    assert_eq!(v["size"], want[0].1);

    // an odd rate prints as tracemalloc's _format_size does
    write(&snap, 4000, b"", GROUPS);
    let o = run(&["top", p, "--limit", "1"]);
    assert_eq!(
        o.stdout.lines().next().unwrap(),
        format!(
            "[ Top 1 ] (estimated from samples, 1 per {})",
            format_size(4000.0, false)
        )
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn diff_of_sampled_and_exact_snapshots() {
    let dir = tmpdir("diff");
    let rate = 1 << 20;
    let old = dir.join("s.1.snap");
    let new = dir.join("s.2.snap");
    let old_groups: &[(u64, u64, u64)] = &[(1, 1000, 3), (2, 2 << 20, 1)];
    write(&old, 0, b"", old_groups);
    write(&new, rate, b"", GROUPS);
    let o = run(&[
        "diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["estimated"], true);
    assert_eq!(v["old_sample_rate"], 0);
    assert_eq!(v["new_sample_rate"], rate);
    for st in v["statistics"].as_array().unwrap() {
        let stack = (1..=3).find(|&s| st["label"] == label(s)).unwrap();
        let (nb, nc) = expect(rate, GROUPS, stack);
        let (ob, oc) = expect(0, old_groups, stack);
        assert_eq!(st["size"], nb);
        assert_eq!(st["count"], nc);
        assert_eq!(st["size_diff"], nb as i64 - ob as i64);
        assert_eq!(st["count_diff"], nc as i64 - oc as i64);
        assert_eq!(
            st["text"],
            statistic_diff_str(
                &label(stack),
                nb,
                nb as i64 - ob as i64,
                nc,
                nc as i64 - oc as i64
            )
        );
    }
    let o = run(&["diff", old.to_str().unwrap(), new.to_str().unwrap()]);
    assert_eq!(
        o.stdout.lines().next().unwrap(),
        "[ Top 10 differences ] (estimated from samples: old every allocation, new 1 per 1024 KiB)"
    );
    let o = run(&["diff", new.to_str().unwrap(), new.to_str().unwrap()]);
    assert_eq!(
        o.stdout.lines().next().unwrap(),
        "[ Top 10 differences ] (estimated from samples, 1 per 1024 KiB)"
    );
    let o = run(&["diff", old.to_str().unwrap(), old.to_str().unwrap()]);
    assert_eq!(o.stdout.lines().next().unwrap(), "[ Top 10 differences ]");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn stats_shows_rate_and_estimates() {
    let dir = tmpdir("stats");
    let rate = 512 * 1024;
    let snap = dir.join("s.1.snap");
    write(&snap, rate, b"", GROUPS);
    let o = run(&["stats", snap.to_str().unwrap()]);
    assert_eq!(o.code, 0);
    let (mut tb, mut tc) = (0f64, 0f64);
    let (mut rb, mut rc) = (0u64, 0u64);
    for &(_, s, c) in GROUPS {
        let p = if s == 0 {
            1.0
        } else {
            1.0 - (-(s as f64) / rate as f64).exp()
        };
        tb += s as f64 * c as f64 / p;
        tc += c as f64 / p;
        rb += s * c;
        rc += c;
    }
    let (tb, tc) = (tb.round() as u64, tc.round() as u64);
    assert!(
        o.stdout.contains(&format!(
        "\nLive blocks:    {tc} ({}, {tb} B) estimated from {rc} sampled ({rb} B) in 3 stacks\n",
        format_size(tb as f64, false)
    )),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("\nSampling:       1 sample per 512 KiB (524288 B) on average: live blocks and sizes are estimated\n"), "{}", o.stdout);
    let o = run(&["stats", snap.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["sample_rate"], rate);
    assert_eq!(v["estimated"], true);
    assert_eq!(v["live"]["blocks"], tc);
    assert_eq!(v["live"]["size"], tb);
    assert_eq!(v["live"]["sampled"]["blocks"], rc);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn malloc_owner_is_warned_about() {
    let dir = tmpdir("owner");
    let owner = b"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    let snap = dir.join("j.exit.snap");
    write(&snap, 0, owner, &[]);
    let p = snap.to_str().unwrap();
    let warning = format!(
        "memtrace: warning: {p}: the program's malloc comes from /usr/lib/x86_64-linux-gnu/libjemalloc.so.2, not glibc: its allocations were not traced\n"
    );
    for args in [vec!["top", p], vec!["top", p, "--pretty"], vec!["stats", p]] {
        let o = run(&args);
        assert_eq!(o.code, 0, "{args:?}");
        assert_eq!(o.stderr, warning, "{args:?}");
    }
    let o = run(&["top", p]);
    assert_eq!(o.stdout, "[ Top 10 ]\n");
    // traceback: no group to show is still bad input, after the warning
    let o = run(&["traceback", p]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.starts_with(&warning), "{}", o.stderr);
    // diff: once per file
    let other = dir.join("plain.snap");
    write(&other, 0, b"", GROUPS);
    let o = run(&["diff", other.to_str().unwrap(), p]);
    assert_eq!(o.code, 0);
    assert_eq!(o.stderr, warning);
    let o = run(&["diff", p, p]);
    assert_eq!(o.stderr, warning);
    let o = run(&["diff", other.to_str().unwrap(), p, "--json"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["old_malloc_owner"], Value::Null);
    assert_eq!(
        v["new_malloc_owner"],
        "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
    );
    // stats: a line and a field
    let o = run(&["stats", p]);
    assert!(o.stdout.contains("\nAllocator:      /usr/lib/x86_64-linux-gnu/libjemalloc.so.2, not glibc: its allocations were not traced\n"), "{}", o.stdout);
    let o = run(&["stats", p, "--json"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        v["malloc_owner"],
        "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
    );
    let o = run(&["top", p, "--json"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        v["malloc_owner"],
        "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
    );
    // a plain snapshot says nothing
    let o = run(&["stats", other.to_str().unwrap()]);
    assert_eq!(o.stderr, "");
    assert!(!o.stdout.contains("Allocator:"));
    std::fs::remove_dir_all(&dir).ok();
}
