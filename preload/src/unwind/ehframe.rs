//! The fast unwinder: x86-64 `.eh_frame` rules, pre-digested per return
//! address into one word and kept in a lock-free direct-mapped cache.
//!
//! A capture walks the stack itself while every frame's rule is "simple" —
//! CFA = rsp|rbp + N, return address at CFA − 8, rbp unchanged or saved at
//! CFA + k — which is what compilers emit for nearly all code. It gives up
//! (the caller then runs libunwind for the whole stack, so the result is
//! libunwind's by construction) on anything else: DWARF expressions, signal
//! frames (an S-augmented FDE, or a return address at glibc's sigreturn
//! code), a pc in no module or without an FDE, a read outside the thread's
//! stack, a walk that starts on another stack (sigaltstack, makecontext).
//! The frames accepted here are a subset of what libunwind 1.6's own fast
//! path (`tdep_trace`, "standard" frames) accepts, and on those we compute
//! what it computes: the same CFA, return address and rbp, the same return
//! address recorded per frame (rules looked up at RA − 1), the same stop
//! rules (RA or rbp rule undefined = outermost frame; RA < 0x4000 = end).
//! `MEMTRACE_UNWIND=check` compares the two on every capture.
//!
//! The walk starts at the hook's caller (`Caller`, from the entry stub), as
//! if in a frame whose rule is the ABI's at a call. Each thread also keeps
//! its previous capture (`shadow.rs`, in its ring's scratch): where the walk
//! reaches one of its frame states, the frames above are verified by
//! re-reading the slots they were read from instead of being unwound, and a
//! stack verified to its end may have its id in the thread's id cache.
//!
//! Hit path: no lock, no allocation, no syscall. Miss path (once per
//! distinct return address): `dl_iterate_phdr` to find the module, gimli on
//! its `.eh_frame_hdr` binary-search table and the FDE, with gimli's context
//! on the stack (nothing allocated).

use super::shadow::{bits, Frame, Frames, Shadow, Step, DEPTH, INNER, STEPS};
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

/// Maps the rule cache. Called once from the constructor; until then (and if
/// the mapping fails) `backtrace` declines every capture.
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

/// A digested rule.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rule {
    Simple { cfa_rbp: bool, cfa_off: u64, rbp_off: Option<i64> },
    Last,
    Other,
}

fn pack(pc: usize, r: Rule) -> u64 {
    let tag = (pc >> SLOT_BITS) as u64 & 0x7fff_ffff;
    let rest = match r {
        Rule::Simple { cfa_rbp, cfa_off, rbp_off } => {
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
            rbp_off: if rest & (1 << 20) != 0 { Some(((rest >> 21) as u8 as i8 as i64) * 8) } else { None },
        },
        KIND_LAST => Rule::Last,
        _ => Rule::Other,
    }
}

/// The rule for looking up `pc` (already `RA − 1` for callers' frames).
#[inline(always)]
fn rule_for(cache: *const AtomicU64, pc: usize) -> Rule {
    if pc >> 47 != 0 {
        return Rule::Other;
    }
    // SAFETY: the index is masked to SLOTS; the mapping lives for good.
    let slot = unsafe { &*cache.add(pc & (SLOTS - 1)) };
    let w = slot.load(Ordering::Relaxed);
    if w >> 32 != 0 && (w & 0x7fff_ffff) as usize == pc >> SLOT_BITS {
        return unpack(w);
    }
    let r = compute(pc);
    slot.store(pack(pc, r), Ordering::Relaxed);
    r
}

extern "C" {
    /// ld.so's record of the initial stack pointer (the address of argc):
    /// the main thread's frames all lie below it.
    static __libc_stack_end: *mut libc::c_void;
}

/// The top of the calling thread's stack, found without locks or malloc.
/// Not pthread_getattr_np: glibc holds the thread's lock while that calls
/// realloc (and fopen on the main thread), so calling it from inside a
/// malloc made by the program's own pthread_getattr_np deadlocks (Rust's
/// runtime does exactly that on every thread).
/// - A glibc thread's descriptor (pthread_self) sits at the top of its
///   stack block, above its static TLS, which is above its stack (x86-64
///   TLS variant II; also for stacks given with pthread_attr_setstack):
///   every frame lies below it.
/// - The main thread's descriptor is allocated elsewhere; its frames lie
///   below `__libc_stack_end`.
///
/// Either bound must lie above `sp` and within 1 GiB of it, else the
/// bounds are unknown (1): this capture goes to libunwind, the next asks
/// again (cheap: no system call).
#[cold]
fn find_stack_hi(sp: usize) -> usize {
    const NEAR: usize = 1 << 30;
    let near = |top: usize| top > sp && top - sp <= NEAR;
    // SAFETY: pthread_self only reads the thread pointer.
    let this = unsafe { libc::pthread_self() } as usize;
    if near(this) {
        return this;
    }
    // SAFETY: a plain read of ld.so's exported variable.
    let end = unsafe { __libc_stack_end } as usize;
    if near(end) {
        return end;
    }
    1
}

#[inline(always)]
fn stack_hi(sp: usize) -> usize {
    let h = &crate::tls::hot().stack_hi;
    let v = h.get();
    if v != 0 {
        return v;
    }
    let v = find_stack_hi(sp);
    // Unknown is not kept: the first capture may run on a signal stack.
    if v != 1 {
        h.set(v);
    }
    v
}

/// Where a walk starts: the state on entry to the hook the program called,
/// handed over by the hook's entry stub (hooks.rs). `at` is the stack
/// pointer there, i.e. the address of the return address into the program,
/// and `bp` the program's rbp at the call.
#[derive(Clone, Copy)]
pub struct Caller {
    pub at: usize,
    pub bp: usize,
}

/// The pc the entry state's rule is looked up at. Real lookups are at a
/// return address − 1, and a return address below 0x4000 ends the walk, so
/// this one names no code.
const ENTRY_PC: usize = 1;
/// The entry state's rule: the ABI's at a call (CFA = rsp + 8, return
/// address at CFA − 8, rbp unchanged). Starting there instead of in our own
/// frames gives the stack libunwind gives once our frames are dropped, and
/// spares walking them.
const ENTRY_RULE: Rule = Rule::Simple { cfa_rbp: false, cfa_off: 8, rbp_off: None };

/// What a walk found.
pub enum Walk {
    /// `n` return addresses in `buf`; `keyed`: the shadow holds the key
    /// their id is to be remembered under (`Shadow::remember`); `whole`:
    /// the thread's current record now holds exactly this stack, so its id
    /// goes there too (`Shadow::remember_whole`).
    Frames { n: usize, keyed: bool, whole: bool },
    /// The stack is one the thread interned recently: its id.
    Id(u32),
}

/// Unwinds the stack of the hook's caller into `buf[..cap]` as libunwind's
/// `unw_backtrace` (1.6) does, minus our own frames: the return address of
/// each frame (rules are looked up at RA − 1), starting with the one into
/// the program. `None` if some frame is not simple (or the cache is not
/// mapped): then nothing in `buf` is meaningful and the caller must use
/// libunwind. `sh`: the thread's shadow, or null.
///
/// # Safety
/// `buf` must have room for `cap` entries; `caller` must be the entry state
/// of a hook on this thread's stack, still running; `sh` null or this
/// thread's own shadow.
#[inline(never)]
pub unsafe fn backtrace(buf: *mut usize, cap: usize, caller: Caller, sh: *mut Shadow) -> Option<Walk> {
    let cache = CACHE.load(Ordering::Acquire);
    if cache.is_null() {
        return None;
    }
    let (mut sp, mut bp, mut look) = (caller.at, caller.bp, ENTRY_PC);
    let lo = sp;
    let hi = stack_hi(sp);
    if hi < 16 || sp >= hi || hi - sp < 16 {
        // Unknown bounds, or running on another stack (sigaltstack,
        // coroutine): libunwind decides.
        return None;
    }
    let in_stack = |a: usize| a.wrapping_sub(lo) <= hi - 8 - lo;
    let gen = GEN.load(Ordering::Relaxed);
    // The record for this entry point (stack address, return address).
    // SAFETY: sp + 8 <= hi - 8 (checked above): a slot of the live stack.
    let ra0 = (sp as *const usize).read_unaligned();
    type Parts<'a> = (Option<&'a mut Frames>, Option<&'a mut [Frame; DEPTH + 1]>, Option<&'a mut [Step; STEPS]>);
    let (rec, mut tmp, mut steps): Parts = match sh.as_mut() {
        Some(s) => {
            // SAFETY: (sp, bp) is the entry state of our hook (the caller's).
            let i = s.pick(sp, ra0, bp, gen);
            (Some(&mut s.recs[i]), Some(&mut s.tmp), Some(&mut s.steps))
        }
        None => (None, None, None),
    };
    let old_ok = rec.as_ref().is_some_and(|r| r.valid && r.gen == gen);
    // The next record position to try a join at (its sp is not below ours).
    let mut p = match &rec {
        Some(r) if old_ok => r.base,
        _ => DEPTH,
    };
    // Scratch entries not copied (bit i: tmp[i] is the record's f[p0 + i]):
    // runs verified where the walk's frame count matches the record's
    // (`p0 + n` = position), which the final write finds in place if the
    // walk ends at the record's depth. Else they are copied then.
    let p0 = p;
    let mut in_place = 0u64;
    // Some((q, n0)): the walk joined the record at position q after n0
    // frames of its own and verified every frame above: unless the walk goes
    // on, those frames stay where they are and only tmp[..n0] is placed below.
    let mut pending: Option<(usize, usize)> = None;
    // The walk ended at a frame whose rule ends every walk (Rule::Last).
    let mut ended_by_rule = false;
    // Every frame walked here may go in the record (Frame::recordable).
    let mut recordable = true;
    let mut n = 0;
    while n < cap {
        if let Some(r) = rec.as_deref() {
            while p < DEPTH && r.f[p].sp < sp {
                p += 1;
            }
            // Join the previous capture where this walk reaches one of its
            // frame states (same sp, rbp and pc): from there every frame is
            // the same as long as the slots it read still hold the same
            // values, so only those are re-read, no rule is looked up.
            if p < DEPTH && r.f[p].sp == sp && r.f[p].pc == look && (r.f[p].bp == bp || r.bp_free(p)) {
                let (q, n0) = (p, n);
                let end = DEPTH.min(q + (cap - n));
                // Frame k read its return address just below the next
                // frame's sp, and maybe the rbp it restores.
                // SAFETY: recorded frames read only inside themselves, so
                // these slots lie between our sp (= f[q].sp) and the
                // record's last sp, in this thread's stack (shadow.rs).
                let k = unsafe { r.first_changed(q, end) };
                n = n0 + (k - q);
                if k == end && (n == cap || end == DEPTH) {
                    // Verified up to the buffer's end or the record's. Their
                    // return addresses go to buf only if needed (not when
                    // the id cache knows the stack). The record's last state
                    // (f[DEPTH]) is walked as usual below, which normally
                    // ends the walk there; the record knows if it does.
                    pending = Some((q, n0));
                    if n >= cap || r.last_ends {
                        break;
                    }
                    let e = r.f[DEPTH];
                    (sp, bp, look) = (e.sp, e.bp, e.pc);
                    p = DEPTH;
                } else {
                    // Frame k's slots changed: keep the verified frames in
                    // buf and the scratch, walk frame k, look for a later
                    // join (never at k again: that would loop).
                    fill_ras(buf, n0, r, q..k);
                    if q == p0 + n0 {
                        in_place |= bits(n0, n0 + (k - q));
                    } else if let Some(t) = tmp.as_deref_mut() {
                        copy_frames(t, n0, &r.f[q..k]);
                    }
                    let e = r.f[k];
                    // rbp at k: the recorded one, unless the join ignored a
                    // different recorded rbp and no frame since restored it
                    // from the stack (then it is still ours).
                    if r.f[q].bp == bp || r.f[q..k].iter().any(|f| f.bp_at() != 0) {
                        bp = e.bp;
                    }
                    (sp, look) = (e.sp, e.pc);
                    p = k + 1;
                    if n >= cap {
                        break;
                    }
                    // Frame k itself is the recorded one (same sp and pc:
                    // same rule), only its slots changed: unless its CFA
                    // comes from rbp (then the rule walk below recomputes
                    // it), its caller's sp is the recorded one and its slots
                    // are known. No rule lookup.
                    if !e.cfa_rbp() {
                        let cfa = r.f[k + 1].sp;
                        // SAFETY: frame k's slots lie inside it (recorded
                        // frames), in the live stack above our sp.
                        let Some((ra, fe)) = (unsafe { known_frame(sp, &mut bp, look, cfa, e.bp_at()) }) else {
                            break;
                        };
                        if k == p0 + n && fe == e {
                            in_place |= 1 << n;
                        } else if let Some(t) = tmp.as_deref_mut().filter(|_| n <= DEPTH) {
                            t[n] = fe;
                        }
                        // SAFETY: n < cap and buf has room for cap entries.
                        unsafe { *buf.add(n) = ra };
                        n += 1;
                        (sp, look) = (cfa, ra - 1);
                        continue;
                    }
                }
            }
        }
        // A state walked by rule recently: its CFA and slots are known.
        let slot = Step::slot(sp, look);
        let known = steps.as_deref().map(|st| st[slot]).filter(|m| m.sp == sp && m.pc == look && m.gen == gen);
        let (cfa, ra, e) = if let Some(m) = known {
            // SAFETY: the step's slots lie inside its frame, which starts at
            // our sp, and were checked to lie in this thread's stack (whose
            // top does not move) when it was walked by rule.
            let Some((ra, e)) = known_frame(sp, &mut bp, look, m.cfa, m.bp_at) else {
                break;
            };
            (m.cfa, ra, e)
        } else {
            let (cfa_rbp, cfa_off, rbp_off) = match rule_for(cache, look) {
                Rule::Simple { cfa_rbp, cfa_off, rbp_off } => (cfa_rbp, cfa_off, rbp_off),
                Rule::Last => {
                    ended_by_rule = true;
                    break;
                }
                Rule::Other => return None,
            };
            let cfa = if cfa_rbp { bp } else { sp }.wrapping_add(cfa_off as usize);
            let ra_at = cfa.wrapping_sub(8);
            if !in_stack(ra_at) {
                return None;
            }
            // SAFETY: ra_at..ra_at+8 lies between our caller's rsp and the
            // top of this thread's stack, which is mapped.
            let ra = (ra_at as *const usize).read_unaligned();
            if ra < 0x4000 {
                break;
            }
            let mut e = Frame::new(sp, bp, look, cfa_rbp);
            if let Some(k) = rbp_off {
                let at = cfa.wrapping_add(k as usize);
                if !in_stack(at) {
                    return None;
                }
                // SAFETY: as above, `at` was checked to lie in the live stack.
                bp = (at as *const usize).read_unaligned();
                e.set_bp_at(at);
            }
            let inside = e.recordable(cfa);
            recordable &= inside;
            if let Some(st) = steps.as_deref_mut().filter(|_| inside && !cfa_rbp) {
                st[slot] = Step { sp, pc: look, cfa, bp_at: e.bp_at(), gen };
            }
            (cfa, ra, e)
        };
        sp = cfa;
        // The stack goes on past a joined record's end (rare: it was cut
        // there): the joined frames move to the scratch like any others.
        if let Some((q, n0)) = pending.take() {
            if let Some(r) = rec.as_deref() {
                fill_ras(buf, n0, r, q..DEPTH);
                if q == p0 + n0 {
                    in_place |= bits(n0, n0 + (DEPTH - q));
                } else if let Some(t) = tmp.as_deref_mut() {
                    copy_frames(t, n0, &r.f[q..DEPTH]);
                }
            }
        }
        if let Some(t) = tmp.as_deref_mut() {
            if n <= DEPTH {
                t[n] = e;
            }
        }
        // SAFETY: n < cap and buf has room for cap entries.
        *buf.add(n) = ra;
        n += 1;
        look = ra - 1;
    }
    let Some(r) = rec else {
        return Some(Walk::Frames { n, keyed: false, whole: false });
    };
    let t = tmp.expect("scratch comes with the record");
    if let Some((q, n0)) = pending {
        // Joined at the record's base with no frame of its own, everything
        // verified to the record's end: the record's own stack.
        if n0 == 0 && q == r.base && n < cap && r.id != 0 {
            return Some(Walk::Id(r.id));
        }
        // The joined run (record positions q..q + len) is not in buf yet:
        // first what the id-cache key reads (writing the record below
        // changes only positions under q).
        let len = n - n0;
        let first = len.min(INNER);
        fill_ras(buf, n0, r, q..q + first);
        let mut keyed = false;
        let whole = recordable && n0 <= q && n < cap;
        if recordable && n0 <= q {
            r.gen = gen;
            write_back(r, t, q - n0, n0, p0, in_place);
            r.base = q - n0;
            r.valid = true;
            // The walk ended at the record's end (not cut by the buffer):
            // the stack may be one whose id this thread already knows.
            if n < cap {
                // SAFETY: buf[..n0 + first] is written: all the key reads
                // (at most INNER frames).
                let frames = std::slice::from_raw_parts(buf, n0 + first);
                if let Some(key) = (*sh).key(q, n0, frames) {
                    match (*sh).id(&key) {
                        Some(i) => {
                            // The record holds this stack now (whole).
                            if whole {
                                r.id = i;
                            }
                            return Some(Walk::Id(i));
                        }
                        None => {
                            (*sh).hold(key);
                            keyed = true;
                        }
                    }
                }
            }
        } else {
            r.valid = false;
        }
        fill_ras(buf, n0 + first, r, q + first..q + len);
        return Some(Walk::Frames { n, keyed, whole });
    }
    r.gen = gen;
    let whole = recordable && n <= DEPTH && n < cap;
    if recordable && n <= DEPTH {
        // A new record, outermost-aligned: the state after the last frame
        // closes it (frame i's return address and restored rbp are read
        // from entry i + 1).
        t[n] = Frame::new(sp, bp, look, true);
        write_back(r, t, DEPTH - n, n + 1, p0, in_place);
        r.base = DEPTH - n;
        r.valid = true;
        r.last_ends = ended_by_rule;
    } else {
        r.valid = false;
    }
    Some(Walk::Frames { n, keyed: false, whole })
}

/// A frame entered in state (sp, bp, look) whose rule is known to compute
/// its CFA `cfa` from rsp and to restore rbp from `bp_at` (0: it does not):
/// its return address and its state, with `bp` moved to the caller's
/// state. None where the return address ends the walk.
///
/// # Safety
/// `cfa − 8` and `bp_at` must be readable slots of the live stack.
#[inline(always)]
unsafe fn known_frame(sp: usize, bp: &mut usize, look: usize, cfa: usize, bp_at: usize) -> Option<(usize, Frame)> {
    let ra = (cfa.wrapping_sub(8) as *const usize).read_unaligned();
    if ra < 0x4000 {
        return None;
    }
    let mut e = Frame::new(sp, *bp, look, false);
    if bp_at != 0 {
        e.set_bp_at(bp_at);
        *bp = (bp_at as *const usize).read_unaligned();
    }
    Some((ra, e))
}

/// Writes the return addresses of the record's frames `range` to
/// `buf[at..]`.
///
/// # Safety
/// `buf` must have room for `at + range.len()` entries.
#[inline(always)]
unsafe fn fill_ras(buf: *mut usize, at: usize, r: &Frames, range: std::ops::Range<usize>) {
    for (i, k) in range.enumerate() {
        *buf.add(at + i) = r.ra(k);
    }
}

/// Writes the walk's `len` frame states to the record from position `from`:
/// the scratch, except the entries `in_place` (found at `p0 + i`), which are
/// already there if `from == p0` and copied into the scratch first if not.
#[inline(always)]
fn write_back(r: &mut Frames, t: &mut [Frame; DEPTH + 1], from: usize, len: usize, p0: usize, in_place: u64) {
    if from == p0 {
        r.write(from, &t[..len], in_place);
        return;
    }
    let mut m = in_place;
    while m != 0 {
        let i = m.trailing_zeros() as usize;
        t[i] = r.f[p0 + i];
        m &= m - 1;
    }
    r.write(from, &t[..len], 0);
}

/// Copies `src` into the scratch from index `at`, as far as it has room.
#[inline(always)]
fn copy_frames(t: &mut [Frame; DEPTH + 1], at: usize, src: &[Frame]) {
    let room = (DEPTH + 1).saturating_sub(at).min(src.len());
    // A plain loop: a few frames, where a memmove call costs more.
    for (d, s) in t[at..at + room].iter_mut().zip(src) {
        *d = *s;
    }
}

/// Bumped by `invalidate`: shadows recorded under older rules are ignored.
static GEN: AtomicU64 = AtomicU64::new(0);

// ---------------------------------------------------------------------------
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

unsafe extern "C" fn find_cb(info: *mut libc::dl_phdr_info, _size: usize, data: *mut libc::c_void) -> libc::c_int {
    // SAFETY (whole function): the loader passes a valid info whose program
    // headers are mapped; `data` is the &mut Found passed by `compute`.
    let f = &mut *(data as *mut Found);
    let info = &*info;
    let base = info.dlpi_addr as usize;
    let phdrs = std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
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
    let mut f = Found { pc, ..Default::default() };
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
    f.frame_seg_end = match f.loads[..f.nloads].iter().find(|&&(s, e)| eh_frame >= s && eh_frame < e) {
        Some(&(_, e)) => e,
        None => return Rule::Other,
    };
    let Some(table) = parsed.table() else {
        return Rule::Other;
    };
    // SAFETY: eh_frame..frame_seg_end is inside one mapped PT_LOAD segment.
    let section = unsafe { std::slice::from_raw_parts(eh_frame as *const u8, f.frame_seg_end - eh_frame) };
    let eh = gimli::EhFrame::new(section, gimli::NativeEndian);
    let bases = bases.set_eh_frame(eh_frame as u64);
    // On our stack, never the heap: an allocation failure here must not
    // abort the program (RLIMIT_AS tests), and 2 KiB is fine on the miss path.
    let mut ctx = gimli::UnwindContext::<usize, SmallStore>::new_in();
    let Ok(fde) = table.fde_for_address(&eh, &bases, pc as u64, |s, b, o| s.cie_from_offset(b, o)) else {
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

/// The row's rule if it is one the fast walk (and libunwind's fast path)
/// handles exactly; `Other` otherwise.
/// gimli's rule storage, in line and small: x86-64 CFI sets a handful of
/// rules and nests remember_state at most once in practice. More than this
/// is an error from gimli, i.e. "not simple": libunwind takes the capture.
struct SmallStore;

impl<T: gimli::ReaderOffset> gimli::UnwindContextStorage<T> for SmallStore {
    type Rules = [(gimli::Register, gimli::RegisterRule<T>); 32];
    type Stack = [gimli::UnwindTableRow<T, Self>; 2];
}

fn digest<T: gimli::ReaderOffset, S: gimli::UnwindContextStorage<T>>(row: &gimli::UnwindTableRow<T, S>) -> Rule {
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
            if (register == RSP || register == RBP) && offset >= 0 && offset % 8 == 0 && offset < (1 << 20) =>
        {
            Rule::Simple { cfa_rbp: register == RBP, cfa_off: offset as u64, rbp_off }
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
            Rule::Simple { cfa_rbp: false, cfa_off: 8, rbp_off: None },
            Rule::Simple { cfa_rbp: true, cfa_off: 16, rbp_off: Some(-16) },
            Rule::Simple { cfa_rbp: false, cfa_off: (1 << 20) - 8, rbp_off: Some(1016) },
            Rule::Simple { cfa_rbp: false, cfa_off: 0, rbp_off: Some(-1024) },
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

