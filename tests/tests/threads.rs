//! Exactness across threads: cross-thread frees with address reuse, a
//! snapshot while other threads allocate, thousands of short-lived threads.

use memtrace_tests::*;

const SHARED_ARENA: &str = "glibc.malloc.tcache_count=0:glibc.malloc.arena_max=1";

fn xfree(opt: Opt, tag: &str, base: u64, tunables: Option<&str>) {
    let dir = fresh_dir(&format!("xfree-{tag}"));
    let prefix = dir.join("k");
    let mut r = Run::new(prog("threads_xfree", opt), &dir)
        .out(&prefix)
        .args([base.to_string(), "10000".to_string()])
        .timeout(120);
    if let Some(t) = tunables {
        r = r.env("GLIBC_TUNABLES", t);
    }
    let out = r.run();
    out.assert_ok();
    let snaps = check_expects(&prefix, &out, 8);
    // The kept blocks really are there at exit (the program's own count).
    let kept = out.value_u64("kept");
    let s = &snaps["exit"];
    let live: u64 = (base..base + 4).map(|sz| s.count_of(sz)).sum();
    assert_eq!(live, kept);
    eprintln!(
        "xfree {tag}: cross-thread reuses seen by the program: {}",
        out.value_u64("cross_reuse")
    );
}

/// 4 threads pass blocks round a ring and free each other's; glibc's tcache
/// hands the freed address out again at once on the freeing thread. The
/// mid-run snapshot (all threads at a barrier) and the exit snapshot equal
/// the program's own bookkeeping.
#[test]
fn cross_thread_free_address_reuse_4_threads_o2() {
    xfree(Opt::O2, "tcache-o2", 2001, None);
}

#[test]
fn cross_thread_free_address_reuse_4_threads_o0() {
    xfree(Opt::O0, "tcache-o0", 2001, None);
}

/// The same with no tcache and a single arena: every free makes the address
/// available to all four threads at once (fastbin sizes 97..100 and
/// unsorted-bin sizes 2001..2004). A free recorded after the real free
/// (instead of before) loses blocks here.
#[test]
fn cross_thread_free_address_reuse_shared_arena_fastbin() {
    for i in 0..5 {
        xfree(Opt::O2, &format!("arena-fast-{i}"), 97, Some(SHARED_ARENA));
    }
}

#[test]
fn cross_thread_free_address_reuse_shared_arena_unsorted() {
    for i in 0..3 {
        xfree(
            Opt::O2,
            &format!("arena-2001-{i}"),
            2001,
            Some(SHARED_ARENA),
        );
    }
}

/// Snapshots while three other threads keep allocating and freeing: the
/// sizes main owns are exact, and each churn thread holds 1 or 2 tickets.
#[test]
fn snapshot_while_other_threads_allocate() {
    for opt in BOTH {
        let dir = fresh_dir("busy");
        let prefix = dir.join("k");
        let out = Run::new(prog("threads_busy", opt), &dir).out(&prefix).run();
        out.assert_ok();
        let snaps = check_expects(&prefix, &out, 7);
        for tag in ["1", "2"] {
            let tickets = snaps[tag].count_of(6001);
            assert!(
                (3..=6).contains(&tickets),
                "snapshot {tag}: {tickets} live 6001-byte tickets, the three threads hold between 3 and 6"
            );
        }
    }
}

/// 2000 short-lived threads (half joined, half detached), each allocating
/// a known amount: the exit snapshot is exact, no event lost.
#[test]
fn two_thousand_short_lived_threads() {
    let dir = fresh_dir("many");
    let prefix = dir.join("k");
    let out = Run::new(prog("threads_many", Opt::O2), &dir)
        .out(&prefix)
        .timeout(120)
        .run();
    out.assert_ok();
    assert_eq!(out.value_u64("threads"), 2000);
    let snaps = check_expects(&prefix, &out, 3);
    let h = &snaps["exit"].header;
    assert!(
        h.alloc_count >= 3 * 2000,
        "alloc_count {} < the program's 6000",
        h.alloc_count
    );
    assert!(
        h.free_count >= 2000 + 1333,
        "free_count {} < the program's 3333",
        h.free_count
    );
}
