//! Where the walk and the records read stack words from.
//!
//! In the hooks that is the live stack of the running thread, read with
//! plain loads (`LiveStack`, a zero-sized type whose one method is inlined:
//! the walk compiles to the same loads as when it read raw pointers). Unit
//! tests read a fake stack, an array of words at a chosen address
//! (`tests::FakeStack`), and panic on any read outside it: the walk's bounds
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

#[cfg(test)]
pub mod tests {
    use super::Memory;

    /// A fake stack: `words[i]` is the word at `base + 8 i`.
    pub struct FakeStack {
        pub base: usize,
        pub words: Vec<usize>,
    }

    impl FakeStack {
        /// `len` zero words from `base`.
        pub fn new(base: usize, len: usize) -> FakeStack {
            FakeStack {
                base,
                words: vec![0; len],
            }
        }

        /// The address one past the last word (a stack's top).
        pub fn top(&self) -> usize {
            self.base + 8 * self.words.len()
        }

        fn index(&self, at: usize) -> usize {
            assert!(
                at >= self.base && at < self.top() && (at - self.base) % 8 == 0,
                "read at {at:#x}, outside the fake stack {:#x}..{:#x} or unaligned",
                self.base,
                self.top()
            );
            (at - self.base) / 8
        }

        pub fn set(&mut self, at: usize, v: usize) {
            let i = self.index(at);
            self.words[i] = v;
        }
    }

    impl Memory for FakeStack {
        unsafe fn word(&self, at: usize) -> usize {
            self.words[self.index(at)]
        }
    }

    #[test]
    #[should_panic(expected = "outside the fake stack")]
    fn a_read_outside_the_fake_stack_panics() {
        let s = FakeStack::new(0x1000, 4);
        // SAFETY: a fake stack's reads are checked.
        unsafe { s.word(0x1020) };
    }
}
