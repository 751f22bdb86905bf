//! Where the walk and the records read stack words from.
//!
//! In the hooks that is the live stack of the running thread, read with
//! plain loads (`LiveStack`, a zero-sized type whose one method is inlined:
//! the walk compiles to the same loads as when it read raw pointers). Unit
//! tests read a fake stack, an array of words at a chosen address
//! (`testing::FakeStack`), and panic on any read outside it: the walk's bounds
//! checks and the records' "slots inside the frame" rule are tested with it.
//! (As the `framehop` crate does with its stack-reading closure.)

/// A stack to read words from.
pub trait Memory {
    /// The 8-byte word at `at` (any alignment).
    ///
    /// # Safety
    /// `at..at + 8` must lie in the memory this reader stands for: for the
    /// live stack, inside this thread's stack between the hook's entry sp
    /// and the stack's top (the walk checks that, or the slot lies inside a
    /// frame recorded as such; shadow.rs).
    unsafe fn word(&self, at: usize) -> usize;
}

impl<M: Memory> Memory for &M {
    #[inline(always)]
    unsafe fn word(&self, at: usize) -> usize {
        // SAFETY: the caller's.
        unsafe { (**self).word(at) }
    }
}

/// The calling thread's own stack.
#[derive(Clone, Copy)]
pub struct LiveStack;

impl Memory for LiveStack {
    #[inline(always)]
    unsafe fn word(&self, at: usize) -> usize {
        // SAFETY: the caller's: `at..at + 8` is mapped stack memory of this
        // thread, below the frames still running (none of it changes under us).
        unsafe { (at as *const usize).read_unaligned() }
    }
}
