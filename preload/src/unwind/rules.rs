//! The rule cache: each return address's `.eh_frame` rule, pre-digested
//! into one word and kept in a lock-free direct-mapped table.
//!
//! Hit path: one load, a tag compare, a few shifts; no lock, no allocation,
//! no syscall. Miss path (once per distinct return address):
//! `dl_iterate_phdr` to find the module, gimli on its `.eh_frame_hdr`
//! binary-search table and the FDE, with gimli's context on the stack
//! (nothing allocated). Racing threads may both compute a rule and both
//! store it: the word is the same, and a torn state cannot exist (one
//! 64-bit store).

use gimli::UnwindSection;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// Cache slots (a power of two). 8 bytes each: 512 KiB of address space,
/// touched only where return addresses land.
const SLOTS: usize = 1 << 16;
const SLOT_BITS: u32 = 16;

/// One cache word: `tag | kind | rule`.
/// - bits 0..31: `pc >> SLOT_BITS` (the slot index supplies the low bits;
///   user-space pcs are below 2^47, so the tag fits in 31 bits);
/// - bits 32..33: kind: 0 empty, 1 simple, 2 outermost, 3 not simple;
/// - bit 34: CFA based on rbp (else rsp);
/// - bits 35..51: CFA offset / 8 (0..2^17);
/// - bit 52: rbp saved; bits 53..60: its offset from the CFA / 8 (i8).
const KIND_SIMPLE: u64 = 1;
const KIND_LAST: u64 = 2;
const KIND_OTHER: u64 = 3;

static CACHE: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());

/// Bumped by `invalidate`: shadows recorded under older rules are ignored.
static GEN: AtomicU64 = AtomicU64::new(0);

/// Maps the rule cache. Called once from the constructor; until then (and if
/// the mapping fails) `RuleCache::get` gives None and the fast walk declines
/// every capture.
pub fn init() -> bool {
    if !CACHE.load(Ordering::Acquire).is_null() {
        return true;
    }
    match crate::sys::mmap_anon(SLOTS * 8) {
        Some(p) => {
            CACHE.store(p.cast(), Ordering::Release);
            true
        }
        None => false,
    }
}

/// Forgets every cached rule: after a dlclose, another object may be mapped
/// where the closed one was, with other rules at the same addresses.
pub fn invalidate() {
    GEN.fetch_add(1, Ordering::Relaxed);
    let c = CACHE.load(Ordering::Acquire);
    if c.is_null() {
        return;
    }
    for i in 0..SLOTS {
        // SAFETY: `c` points to SLOTS atomics mapped by init() and never unmapped.
        unsafe { (*c.add(i)).store(0, Ordering::Relaxed) };
    }
}

/// The cache's generation: records made under another one are stale.
#[inline(always)]
pub fn generation() -> u64 {
    GEN.load(Ordering::Relaxed)
}

/// A digested rule.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Rule {
    /// CFA = (rbp if `cfa_rbp`, else rsp) + `cfa_off`; return address at
    /// CFA − 8; rbp saved at CFA + `rbp_off`, or unchanged.
    Simple {
        cfa_rbp: bool,
        cfa_off: u64,
        rbp_off: Option<i64>,
    },
    /// The return address or rbp is undefined: the walk ends here.
    Last,
    /// Anything else: libunwind takes the capture.
    Other,
}

/// The pc the entry state's rule is looked up at. Real lookups are at a
/// return address − 1, and a return address below 0x4000 ends the walk, so
/// this one names no code.
pub const ENTRY_PC: usize = 1;
/// The entry state's rule: the ABI's at a call (CFA = rsp + 8, return
/// address at CFA − 8, rbp unchanged). Starting there instead of in our own
/// frames gives the stack libunwind gives once our frames are dropped, and
/// spares walking them.
pub const ENTRY_RULE: Rule = Rule::Simple {
    cfa_rbp: false,
    cfa_off: 8,
    rbp_off: None,
};

fn pack(pc: usize, r: Rule) -> u64 {
    let tag = (pc >> SLOT_BITS) as u64 & 0x7fff_ffff;
    let rest = match r {
        Rule::Simple {
            cfa_rbp,
            cfa_off,
            rbp_off,
        } => {
            let mut w = KIND_SIMPLE | (cfa_rbp as u64) << 2 | (cfa_off / 8) << 3;
            if let Some(k) = rbp_off {
                w |= 1 << 20 | ((k / 8) as i8 as u8 as u64) << 21;
            }
            w
        }
        Rule::Last => KIND_LAST,
        Rule::Other => KIND_OTHER,
    };
    tag | rest << 32
}

#[inline(always)]
fn unpack(w: u64) -> Rule {
    let rest = w >> 32;
    match rest & 3 {
        KIND_SIMPLE => Rule::Simple {
            cfa_rbp: rest & 4 != 0,
            cfa_off: ((rest >> 3) & 0x1ffff) * 8,
            rbp_off: if rest & (1 << 20) != 0 {
                Some(((rest >> 21) as u8 as i8 as i64) * 8)
            } else {
                None
            },
        },
        KIND_LAST => Rule::Last,
        _ => Rule::Other,
    }
}

/// The mapped cache, for one walk.
#[derive(Clone, Copy)]
pub struct RuleCache {
    slots: *const AtomicU64,
}

impl RuleCache {
    /// The cache, if `init` has mapped it.
    #[inline(always)]
    pub fn get() -> Option<RuleCache> {
        let slots = CACHE.load(Ordering::Acquire);
        (!slots.is_null()).then_some(RuleCache { slots })
    }

    /// The rule for looking up `pc` (already `RA − 1` for callers' frames).
    #[inline(always)]
    pub fn rule(self, pc: usize) -> Rule {
        if pc >> 47 != 0 {
            return Rule::Other;
        }
        // SAFETY: the index is masked to SLOTS; the mapping lives for good.
        let slot = unsafe { &*self.slots.add(pc & (SLOTS - 1)) };
        let w = slot.load(Ordering::Relaxed);
        if w >> 32 != 0 && (w & 0x7fff_ffff) as usize == pc >> SLOT_BITS {
            return unpack(w);
        }
        let r = compute(pc);
        slot.store(pack(pc, r), Ordering::Relaxed);
        r
    }
}

// Miss path: find the module and the FDE, digest the row for `pc`.

const RBP: gimli::Register = gimli::Register(6);
const RSP: gimli::Register = gimli::Register(7);
const RA: gimli::Register = gimli::Register(16);

#[derive(Default)]
struct Found {
    pc: usize,
    hdr: usize,
    hdr_len: usize,
    /// End of the PT_LOAD segment holding `.eh_frame`, to bound the slice.
    frame_seg_end: usize,
    found: bool,
    /// End of the PT_LOAD segment holding `pc`.
    pc_seg_end: usize,
    /// (start, end) of the module's PT_LOADs, to bound the eh_frame slice.
    loads: [(usize, usize); 8],
    nloads: usize,
}

/// dl_iterate_phdr callback: the module holding `Found::pc`, its
/// `.eh_frame_hdr` and PT_LOADs.
///
/// # Safety
/// `data` must be a `&mut Found`; `info` the loader's.
unsafe extern "C" fn find_cb(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the &mut Found `compute` passed, not otherwise used
    // while dl_iterate_phdr runs; the loader passes a valid `info`.
    let (f, info) = unsafe { (&mut *(data as *mut Found), &*info) };
    let base = info.dlpi_addr as usize;
    // SAFETY: the loader's program headers for this object are mapped.
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let seg = phdrs.iter().find(|ph| {
        ph.p_type == libc::PT_LOAD && {
            let s = base.wrapping_add(ph.p_vaddr as usize);
            f.pc >= s && f.pc - s < ph.p_memsz as usize
        }
    });
    let Some(seg) = seg else {
        return 0;
    };
    f.pc_seg_end = base.wrapping_add((seg.p_vaddr + seg.p_memsz) as usize);
    f.found = true;
    for ph in phdrs {
        if ph.p_type == libc::PT_GNU_EH_FRAME {
            f.hdr = base.wrapping_add(ph.p_vaddr as usize);
            f.hdr_len = ph.p_memsz as usize;
        } else if ph.p_type == libc::PT_LOAD && f.nloads < f.loads.len() {
            let s = base.wrapping_add(ph.p_vaddr as usize);
            f.loads[f.nloads] = (s, s + ph.p_memsz as usize);
            f.nloads += 1;
        }
    }
    1
}

#[cold]
#[inline(never)]
fn compute(pc: usize) -> Rule {
    if pc == ENTRY_PC {
        return ENTRY_RULE;
    }
    let mut f = Found {
        pc,
        ..Default::default()
    };
    // SAFETY: the callback only reads what the loader hands it.
    unsafe { libc::dl_iterate_phdr(Some(find_cb), &mut f as *mut Found as *mut libc::c_void) };
    if !f.found || f.hdr == 0 || f.hdr_len < 4 {
        return Rule::Other;
    }
    // A return address at a sigreturn trampoline (`mov $15, %rax; syscall`,
    // glibc's __restore_rt) is a signal frame whatever FDE `pc` = RA − 1
    // falls in: libunwind recognises it by this code, so must we.
    const SIGRETURN: [u8; 9] = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];
    if pc + 1 + SIGRETURN.len() <= f.pc_seg_end {
        // SAFETY: pc+1 .. pc+10 lies inside the mapped PT_LOAD holding pc.
        let code = unsafe { std::slice::from_raw_parts((pc + 1) as *const u8, SIGRETURN.len()) };
        if code == SIGRETURN {
            return Rule::Other;
        }
    }
    // SAFETY: PT_GNU_EH_FRAME lies inside a mapped PT_LOAD of a loaded object.
    let hdr = unsafe { std::slice::from_raw_parts(f.hdr as *const u8, f.hdr_len) };
    let bases = gimli::BaseAddresses::default().set_eh_frame_hdr(f.hdr as u64);
    let Ok(parsed) = gimli::EhFrameHdr::new(hdr, gimli::NativeEndian).parse(&bases, 8) else {
        return Rule::Other;
    };
    let gimli::Pointer::Direct(eh_frame) = parsed.eh_frame_ptr() else {
        return Rule::Other;
    };
    let eh_frame = eh_frame as usize;
    f.frame_seg_end = match f.loads[..f.nloads]
        .iter()
        .find(|&&(s, e)| eh_frame >= s && eh_frame < e)
    {
        Some(&(_, e)) => e,
        None => return Rule::Other,
    };
    let Some(table) = parsed.table() else {
        return Rule::Other;
    };
    // SAFETY: eh_frame..frame_seg_end is inside one mapped PT_LOAD segment.
    let section =
        unsafe { std::slice::from_raw_parts(eh_frame as *const u8, f.frame_seg_end - eh_frame) };
    let eh = gimli::EhFrame::new(section, gimli::NativeEndian);
    let bases = bases.set_eh_frame(eh_frame as u64);
    // On our stack, never the heap: an allocation failure here must not
    // abort the program (RLIMIT_AS tests), and 2 KiB is fine on the miss path.
    let mut ctx = gimli::UnwindContext::<usize, SmallStore>::new_in();
    let Ok(fde) = table.fde_for_address(&eh, &bases, pc as u64, |s, b, o| s.cie_from_offset(b, o))
    else {
        return Rule::Other;
    };
    if fde.cie().is_signal_trampoline() || fde.cie().return_address_register() != RA {
        return Rule::Other;
    }
    let Ok(row) = fde.unwind_info_for_address(&eh, &bases, &mut ctx, pc as u64) else {
        return Rule::Other;
    };
    digest(row)
}

/// gimli's rule storage, in line and small: x86-64 CFI sets a handful of
/// rules and nests remember_state at most once in practice. More than this
/// is an error from gimli, i.e. "not simple": libunwind takes the capture.
struct SmallStore;

impl<T: gimli::ReaderOffset> gimli::UnwindContextStorage<T> for SmallStore {
    type Rules = [(gimli::Register, gimli::RegisterRule<T>); 32];
    type Stack = [gimli::UnwindTableRow<T, Self>; 2];
}

/// The row's rule if it is one the fast walk (and libunwind's fast path)
/// handles exactly; `Other` otherwise.
fn digest<T: gimli::ReaderOffset, S: gimli::UnwindContextStorage<T>>(
    row: &gimli::UnwindTableRow<T, S>,
) -> Rule {
    use gimli::{CfaRule, RegisterRule};
    // libunwind: an undefined return address, or an undefined rbp ("end of
    // call chain" in the x86-64 ABI), ends the walk after this frame.
    match row.register(RA) {
        Some(RegisterRule::Undefined) => return Rule::Last,
        Some(RegisterRule::Offset(-8)) => {}
        _ => return Rule::Other,
    }
    let rbp_off = match row.register(RBP) {
        None | Some(RegisterRule::SameValue) => None,
        Some(RegisterRule::Undefined) => return Rule::Last,
        Some(RegisterRule::Offset(k)) if k % 8 == 0 && (-1024..1024).contains(&k) => Some(k),
        _ => return Rule::Other,
    };
    if row.register(RSP).is_some() {
        return Rule::Other;
    }
    match *row.cfa() {
        CfaRule::RegisterAndOffset { register, offset }
            if (register == RSP || register == RBP)
                && offset >= 0
                && offset % 8 == 0
                && offset < (1 << 20) =>
        {
            Rule::Simple {
                cfa_rbp: register == RBP,
                cfa_off: offset as u64,
                rbp_off,
            }
        }
        _ => Rule::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_roundtrip() {
        let pc = 0x7f12_3456_789a;
        for r in [
            Rule::Simple {
                cfa_rbp: false,
                cfa_off: 8,
                rbp_off: None,
            },
            Rule::Simple {
                cfa_rbp: true,
                cfa_off: 16,
                rbp_off: Some(-16),
            },
            Rule::Simple {
                cfa_rbp: false,
                cfa_off: (1 << 20) - 8,
                rbp_off: Some(1016),
            },
            Rule::Simple {
                cfa_rbp: false,
                cfa_off: 0,
                rbp_off: Some(-1024),
            },
            Rule::Last,
            Rule::Other,
        ] {
            let w = pack(pc, r);
            assert_eq!(unpack(w), r);
            assert_eq!((w & 0x7fff_ffff) as usize, pc >> SLOT_BITS);
            assert_ne!(w >> 32, 0);
        }
    }
}
