//! A program that calls pthread_getattr_np() before its first malloc on a
//! thread (every Rust program does) must not deadlock under the preload.

use memtrace_tests::*;

#[test]
fn pthread_getattr_np_before_the_first_malloc() {
    for opt in BOTH {
        let dir = fresh_dir("getattr");
        let prefix = dir.join("k");
        let out = Run::new(prog("getattr_first", opt), &dir)
            .out(&prefix)
            .timeout(20)
            .run();
        out.assert_ok();
        check_expects(&prefix, &out, 2);
    }
}
