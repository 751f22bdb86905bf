//! Fixtures for the unwinder's unit tests: a fake stack (words at a chosen
//! address), fake programs laid out on it (one rule per function), and
//! captures made as the hooks make them, checked as `MEMTRACE_UNWIND=check`
//! checks them: against a walk by rule alone (no shadow).

use super::ehframe::{walk, Caller, Walk};
use super::memory::Memory;
use super::rules::{Rule, ENTRY_PC, ENTRY_RULE};
use super::shadow::Shadow;
use std::collections::HashMap;

/// A fake stack: `words[i]` is the word at `base + 8 i`. Reads outside it
/// panic: the walk's bounds checks, and the records' rule that a frame's
/// slots lie inside it, are tested with it.
pub struct FakeStack {
    pub base: usize,
    pub words: Vec<usize>,
}

/// Where fake stacks start (a user-space stack address).
pub const STACK: usize = 0x7ffd_0000_0000;

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
            at >= self.base && at < self.top() && (at - self.base).is_multiple_of(8),
            "read at {at:#x}, outside the fake stack {:#x}..{:#x} or unaligned",
            self.base,
            self.top()
        );
        (at - self.base) / 8
    }

    pub fn get(&self, at: usize) -> usize {
        self.words[self.index(at)]
    }

    pub fn set(&mut self, at: usize, v: usize) {
        let i = self.index(at);
        self.words[i] = v;
    }
}

impl Memory for FakeStack {
    unsafe fn word(&self, at: usize) -> usize {
        self.get(at)
    }
}

/// Where fake code lives: function j is `CODE + j·FUNC_BYTES ..`.
pub const CODE: usize = 0x40_0000;
const FUNC_BYTES: usize = 0x1000;

/// A return address into function `func`, after its call site `site`.
pub fn ra_into(func: usize, site: usize) -> usize {
    CODE + func * FUNC_BYTES + 0x10 + 0x10 * site
}

/// An rsp-based frame of `size` bytes (CFA = rsp + size), rbp untouched.
pub fn rsp(size: u64) -> Rule {
    Rule::Simple {
        cfa_rbp: false,
        cfa_off: size,
        rbp_off: None,
    }
}

/// An rsp-based frame of `size` bytes that saves rbp just below its return
/// address (push rbp, no frame pointer).
pub fn rsp_saving_rbp(size: u64) -> Rule {
    Rule::Simple {
        cfa_rbp: false,
        cfa_off: size,
        rbp_off: Some(-16),
    }
}

/// A frame-pointer frame: CFA = rbp + 16, rbp saved at CFA − 16.
pub const RBP_FRAME: Rule = Rule::Simple {
    cfa_rbp: true,
    cfa_off: 16,
    rbp_off: Some(-16),
};

/// A fake program: function j's rule is `rules[j]` at every pc in it; a pc
/// in no function has no rule (`Other`).
pub struct Program {
    pub rules: Vec<Rule>,
}

impl Program {
    pub fn rule(&self, pc: usize) -> Rule {
        if pc == ENTRY_PC {
            return ENTRY_RULE;
        }
        match pc.checked_sub(CODE).map(|o| o / FUNC_BYTES) {
            Some(j) if j < self.rules.len() => self.rules[j],
            _ => Rule::Other,
        }
    }
}

/// One frame of a fake stack: the function it runs, the call site in it
/// that its callee returns to, and its size (CFA − the sp it was entered at).
#[derive(Clone, Copy, Debug)]
pub struct Call {
    pub func: usize,
    pub site: usize,
    pub size: usize,
}

/// A stack laid out by `lay_out`.
pub struct Laid {
    /// The hook's entry state.
    pub caller: Caller,
    /// The return addresses a walk gives: into each frame, innermost first.
    pub ras: Vec<usize>,
    /// Each frame's CFA (its caller's sp).
    pub cfas: Vec<usize>,
}

/// The rbp in the state after the outermost frame (program data).
const OUTER_RBP: usize = 0x0bad_cafe;

/// Lays `calls` (innermost first, each in a function of `prog`) out on
/// `stack` below the hook's entry sp `at` (which holds the return address
/// into the first): return addresses, saved rbps, and the rbp each state
/// has (a frame pointer where a frame's CFA comes from rbp, program data
/// elsewhere). The outermost frame returns to `end_ra`.
pub fn lay_out(
    stack: &mut FakeStack,
    prog: &Program,
    at: usize,
    calls: &[Call],
    end_ra: usize,
) -> Laid {
    let mut cfas = Vec::new();
    let mut sp = at + 8;
    for c in calls {
        cfas.push(sp + c.size);
        sp += c.size;
    }
    let mut ras: Vec<usize> = calls.iter().map(|c| ra_into(c.func, c.site)).collect();
    stack.set(at, ras[0]);
    for (i, &cfa) in cfas.iter().enumerate() {
        stack.set(cfa - 8, ras.get(i + 1).copied().unwrap_or(end_ra));
    }
    // From the outermost frame in: the rbp on entry to frame i is what
    // frame i restores it to... unless frame i saves it, then anything.
    let mut bp_after = OUTER_RBP;
    for i in (0..calls.len()).rev() {
        let Rule::Simple {
            cfa_rbp,
            cfa_off,
            rbp_off,
        } = prog.rules[calls[i].func]
        else {
            continue;
        };
        let bp_on_entry = match rbp_off {
            Some(off) => {
                stack.set(cfas[i].wrapping_add(off as usize), bp_after);
                if cfa_rbp {
                    cfas[i] - cfa_off as usize
                } else {
                    0xda7a_0000 + i
                }
            }
            None => {
                assert!(!cfa_rbp, "a frame-pointer frame saves rbp");
                bp_after
            }
        };
        if !cfa_rbp {
            assert_eq!(
                cfa_off as usize, calls[i].size,
                "an rsp-based rule's offset is the frame's size"
            );
        }
        bp_after = bp_on_entry;
    }
    if end_ra >= 0x4000 {
        ras.push(end_ra);
    }
    Laid {
        caller: Caller { at, bp: bp_after },
        ras,
        cfas,
    }
}

/// Walks `stack` from `caller` with the rules of `prog`, the stack's top at
/// `hi`, into a buffer of `cap`: what the walk returned and the return
/// addresses it wrote.
pub fn capture_to(
    stack: &FakeStack,
    prog: &Program,
    caller: Caller,
    hi: usize,
    cap: usize,
    shadow: Option<&mut Shadow>,
) -> (Option<Walk>, Vec<usize>) {
    let mut buf = vec![0usize; cap];
    let sh = shadow.map_or(std::ptr::null_mut(), |s| s as *mut Shadow);
    // SAFETY: buf has room for cap entries; the fake stack checks every read;
    // `sh` is null or a shadow no one else uses.
    let walked = unsafe {
        walk(
            stack,
            |pc| prog.rule(pc),
            caller,
            hi,
            buf.as_mut_ptr(),
            cap,
            sh,
        )
    };
    let n = match walked {
        Some(Walk::Frames { n, .. }) => n,
        _ => 0,
    };
    buf.truncate(n);
    (walked, buf)
}

/// `capture_to` up to the stack's own top.
pub fn capture(
    stack: &FakeStack,
    prog: &Program,
    caller: Caller,
    cap: usize,
    shadow: Option<&mut Shadow>,
) -> (Option<Walk>, Vec<usize>) {
    capture_to(stack, prog, caller, stack.top(), cap, shadow)
}

/// An empty shadow, as a thread's zeroed ring scratch is.
pub fn new_shadow() -> Box<Shadow> {
    // SAFETY: all-zero bytes are a valid Shadow (integers, bools false,
    // arrays of them): the empty record and table (shadow.rs).
    unsafe { Box::<Shadow>::new_zeroed().assume_init() }
}

/// Stack ids, as intern.rs gives them.
#[derive(Default)]
pub struct Interner {
    ids: HashMap<Vec<usize>, u32>,
    stacks: Vec<Vec<usize>>,
}

impl Interner {
    pub fn intern(&mut self, frames: &[usize]) -> u32 {
        if let Some(&id) = self.ids.get(frames) {
            return id;
        }
        self.stacks.push(frames.to_vec());
        let id = self.stacks.len() as u32;
        self.ids.insert(frames.to_vec(), id);
        id
    }

    pub fn stack(&self, id: u32) -> &[usize] {
        &self.stacks[id as usize - 1]
    }
}

/// Where a checked capture's id came from.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    /// The walk's frames, interned.
    Walked,
    /// The shadow (the record's own id, or the id cache).
    Shadow,
}

/// A capture as the hooks make it (the walk with the thread's shadow, the
/// frames interned and their id remembered), checked as check mode checks
/// it: the stack must be the one a walk by rule alone gives.
pub fn checked(
    stack: &FakeStack,
    prog: &Program,
    caller: Caller,
    cap: usize,
    sh: &mut Shadow,
    interner: &mut Interner,
) -> (u32, Source) {
    let (by_rule, expected) = capture(stack, prog, caller, cap, None);
    assert!(
        matches!(by_rule, Some(Walk::Frames { .. })),
        "the walk by rule declined"
    );
    match capture(stack, prog, caller, cap, Some(sh)) {
        (Some(Walk::Id(id)), _) => {
            assert_eq!(
                interner.stack(id),
                &expected[..],
                "the shadow's id names another stack"
            );
            (id, Source::Shadow)
        }
        (Some(Walk::Frames { keyed, whole, .. }), frames) => {
            assert_eq!(
                frames, expected,
                "the walk with the shadow gives another stack"
            );
            let id = interner.intern(&frames);
            if keyed {
                sh.remember(id);
            }
            if whole {
                sh.remember_whole(id);
            }
            (id, Source::Walked)
        }
        (None, _) => panic!("the walk with the shadow declined"),
    }
}
