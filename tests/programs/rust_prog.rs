// A Rust program traced end to end (issue 3): 1000 x 1000 B at line A,
// snapshot 1; 500 x 4000 B at line B, snapshot 2. Built by tests/tests/rust.rs
// with rustc (not by build.rs, which builds the C and C++ programs).
extern "C" {
    fn raise(sig: i32) -> i32;
}
const SIGUSR2: i32 = 12;

#[inline(never)]
fn fill(n: usize, size: usize, byte: u8) -> Vec<Vec<u8>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(vec![byte; size]); // MARK: alloc
    }
    v
}

fn main() {
    let a = fill(1000, 1000, 1);
    // SAFETY: raise() only sends a signal to this process.
    unsafe { raise(SIGUSR2) };
    let b = fill(500, 4000, 2);
    unsafe { raise(SIGUSR2) };
    let total: usize = a.iter().chain(b.iter()).map(|x| x.len() * x[0] as usize).sum();
    println!("total={total}");
}
