//! Redirecting a running program's calls to our hooks: every loaded
//! module's GOT entries (JUMP_SLOT, GLOB_DAT, and R_X86_64_64 function
//! pointers) for the malloc family are rewritten to point at our exports,
//! as the loader would have bound them had we been preloaded.
//!
//! Written by hand: no crate patches a live process's GOT from inside it.
//!
//! libc included: glibc calls its own malloc family through its GOT (so
//! that a replacement malloc sees every call), so strdup's, getline's and
//! fopen's blocks are seen, and a block of ours that libc reallocates or
//! frees is not lost. Skipped: libtrace.so itself; ld.so (it allocates
//! through pointers it set at start, to glibc's malloc when we were not
//! preloaded); modules of other link-map namespaces (dlmopen), which have
//! their own libc whose blocks must not reach ours.
//!
//! Order, for exactness while the program's threads run: first every
//! module's free and realloc, then the allocating functions. A block
//! allocated through a hook is then never freed behind our back; a block
//! allocated before is unknown to the live table, and its free changes
//! nothing there.
//!
//! Safety while threads run: an entry is one aligned 8-byte store (atomic
//! on x86-64): a thread calls either the old or the new function. Entries
//! under RELRO are made writable for the store and read-only again. The
//! walk runs inside `dl_iterate_phdr`, which holds the loader's lock that
//! also guards unloading, so no module goes away under us.

use crate::sys::Locked;
use libc::{c_int, c_void, dl_phdr_info, Elf64_Phdr};
use std::sync::atomic::Ordering;

/// One function to redirect: its symbol name, our replacement, and what the
/// program's entries may hold for it now: what the program's lookup finds
/// (0 when nothing defines it: a weak reference, as to `memtrace_track`
/// without libtrace.so), and libc's definition. They differ when a non-PIE
/// executable takes the function's address (Debian's python3): the lookup
/// finds the executable's PLT stub (the canonical address), the
/// executable's own entry holds libc's function.
#[derive(Clone, Copy)]
struct Redirect {
    name: &'static [u8],
    ours: usize,
    theirs: usize,
    libc: usize,
}

/// The two passes (see the module doc), and the modules never touched
/// (by an address inside each).
struct Plan {
    frees: Vec<Redirect>,
    allocs: Vec<Redirect>,
    skip: [usize; 2],
    r_debug: usize,
}

/// Set by `prepare`; one redirection at a time (attach, and dlopen()s of
/// the program's threads).
static PLAN: Locked<Option<Plan>> = Locked::new(None);

/// Our exports that stand in for the program's functions, by pass: frees
/// first. `memtrace_track`/`untrack` (custom allocators) only if this
/// libtrace.so has them.
const FREES: [&[u8]; 4] = [b"free", b"realloc", b"reallocarray", b"memtrace_untrack"];
const ALLOCS: [&[u8]; 10] = [
    b"malloc",
    b"calloc",
    b"posix_memalign",
    b"aligned_alloc",
    b"memalign",
    b"valloc",
    b"pvalloc",
    b"memtrace_track",
    b"sigaction",
    b"signal",
];

/// Which functions, ours and theirs: looked up once, at attach (dlsym
/// may not be called from inside `dl_iterate_phdr`).
pub fn prepare() {
    let (Some(own), Some(libc)) = (
        OwnHandle::open(&crate::modules::self_path()),
        OwnHandle::open(b"libc.so.6"),
    ) else {
        crate::sys::log("cannot find libtrace.so's own exports; nothing redirected");
        return;
    };
    let redirect = |name: &'static [u8], ours: usize| Redirect {
        name,
        ours,
        theirs: theirs(name),
        libc: libc.symbol(name).unwrap_or(0),
    };
    let lookup = |names: &[&'static [u8]]| -> Vec<Redirect> {
        names
            .iter()
            .filter_map(|&n| own.symbol(n).map(|ours| redirect(n, ours)))
            .collect()
    };
    let frees = lookup(&FREES);
    let mut allocs = lookup(&ALLOCS);
    use super::load_wrapper as wrap;
    allocs.push(redirect(b"dlopen", wrap::dlopen as *const () as usize));
    allocs.push(redirect(b"dlmopen", wrap::dlmopen as *const () as usize));
    // libc's own functions: the program's lookup may find a PLT stub whose
    // entry leads back to the wrapper.
    wrap::remember_real(
        libc.symbol(b"dlopen").unwrap_or(0),
        libc.symbol(b"dlmopen").unwrap_or(0),
    );
    let r_debug = theirs(b"_r_debug");
    let skip = [
        // A function of ours that is not exported: its address is ours.
        prepare as *const () as usize,
        // ld.so: the module that holds _r_debug (or nothing if unknown).
        if r_debug != 0 { r_debug } else { usize::MAX },
    ];
    *PLAN.lock() = Some(Plan {
        frees,
        allocs,
        skip,
        r_debug,
    });
}

fn c_name(name: &[u8]) -> Vec<u8> {
    let mut c = name.to_vec();
    c.push(0);
    c
}

/// What the program's lookups of `name` find.
fn theirs(name: &[u8]) -> usize {
    let c = c_name(name);
    std::ffi::CStr::from_bytes_with_nul(&c).map_or(0, super::global_symbol)
}

/// A loaded library's own definitions: libtrace.so's exports (not
/// `hooks::malloc as usize`: in a library loaded RTLD_LOCAL, a reference to
/// an exported function binds through the GOT to the first definition in
/// scope, the program's), and libc's.
struct OwnHandle(*mut c_void);

impl OwnHandle {
    fn open(path: &[u8]) -> Option<OwnHandle> {
        let path = std::ffi::CString::new(path).ok()?;
        // SAFETY: dlopen of a loaded library with RTLD_NOLOAD only takes a
        // reference (dropped with the handle).
        let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
        (!h.is_null()).then_some(OwnHandle(h))
    }

    fn symbol(&self, name: &[u8]) -> Option<usize> {
        let c = c_name(name);
        // SAFETY: dlsym on our handle with a NUL-terminated name: a search
        // of libtrace.so first.
        let f = unsafe { libc::dlsym(self.0, c.as_ptr().cast()) } as usize;
        (f != 0).then_some(f)
    }
}

impl Drop for OwnHandle {
    fn drop(&mut self) {
        // SAFETY: the handle `open` returned, closed once.
        unsafe { libc::dlclose(self.0) };
    }
}

/// Points every module's entries for the malloc family at our hooks: frees
/// first, then allocations (the module doc). Returns how many entries
/// changed. Modules redirected already are left as they are, so this is
/// also what runs after each dlopen.
pub fn redirect_all() -> usize {
    let _g = crate::guard::NoTrace::new();
    let plan = PLAN.lock();
    let Some(plan) = plan.as_ref() else {
        return 0;
    };
    let n = walk(plan, &plan.frees);
    let n = n + walk(plan, &plan.allocs);
    std::sync::atomic::fence(Ordering::SeqCst);
    n
}

/// One pass over the loaded modules with `wanted`.
struct Pass<'a> {
    plan: &'a Plan,
    wanted: &'a [Redirect],
    /// The base namespace's modules, by their dynamic section (filled at
    /// the first module: the list is stable while the walk holds the lock).
    base_ns: Option<Vec<usize>>,
    changed: usize,
}

fn walk(plan: &Plan, wanted: &[Redirect]) -> usize {
    let mut pass = Pass {
        plan,
        wanted,
        base_ns: None,
        changed: 0,
    };
    // SAFETY: `visit` matches dl_iterate_phdr's callback type and receives
    // `pass`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut pass as *mut Pass).cast()) };
    pass.changed
}

unsafe extern "C" fn visit(info: *mut dl_phdr_info, _size: usize, data: *mut c_void) -> c_int {
    // SAFETY: dl_iterate_phdr passes a valid info and our `Pass`.
    let (info, pass) = unsafe { (&*info, &mut *data.cast::<Pass>()) };
    if info.dlpi_phdr.is_null() {
        return 0;
    }
    // SAFETY: the loader's program headers of a loaded module.
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let m = Module::new(info.dlpi_addr as usize, phdrs);
    if pass.plan.skip.iter().any(|&a| m.contains(a)) {
        return 0;
    }
    let Some(dynamic) = m.dynamic else {
        return 0;
    };
    if pass.base_ns.is_none() {
        // SAFETY: inside dl_iterate_phdr, which holds the lock that guards
        // the link-map list; `r_debug` is ld.so's `_r_debug` (or 0).
        pass.base_ns = Some(unsafe { base_namespace(pass.plan.r_debug) });
    }
    let base_ns = pass.base_ns.as_deref().unwrap_or(&[]);
    if !base_ns.is_empty() && !base_ns.contains(&dynamic) {
        return 0;
    }
    // SAFETY: a loaded module's dynamic section, relocations, symbol and
    // string tables, all mapped while the walk holds the loader's lock.
    pass.changed += unsafe { m.redirect(dynamic, pass.wanted) };
    0
}

/// glibc's `struct r_debug` and the public head of `struct link_map`
/// (<link.h>): stable ABI, what debuggers read.
#[repr(C)]
struct RDebug {
    version: c_int,
    map: *const LinkMap,
}

#[repr(C)]
struct LinkMap {
    addr: usize,
    name: *const libc::c_char,
    ld: usize,
    next: *const LinkMap,
    prev: *const LinkMap,
}

/// The dynamic sections of the base namespace's modules (`_r_debug` lists
/// that namespace only). Empty if unknown: then every module counts.
///
/// # Safety
/// Called with the loader's list lock held; `r_debug` is 0 or `_r_debug`.
unsafe fn base_namespace(r_debug: usize) -> Vec<usize> {
    let mut out = Vec::new();
    if r_debug == 0 {
        return out;
    }
    // SAFETY: ld.so's r_debug and its link maps, stable under the lock.
    unsafe {
        let mut l = (*(r_debug as *const RDebug)).map;
        while !l.is_null() && out.len() < 100_000 {
            out.push((*l).ld);
            l = (*l).next;
        }
    }
    out
}

/// What the walk needs of one module's program headers.
struct Module {
    base: usize,
    dynamic: Option<usize>,
    /// Loaded segments: start, end, writable.
    loads: Vec<(usize, usize, bool)>,
    /// The pages glibc made read-only after relocation (PT_GNU_RELRO, its
    /// end rounded down as glibc's `_dl_protect_relro` does).
    relro: Option<(usize, usize)>,
}

/// <elf.h>'s values and records (the libc crate lacks most of them).
const PT_GNU_RELRO: u32 = 0x6474_e552;
const DT_NULL: i64 = 0;
const DT_PLTRELSZ: i64 = 2;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_RELA: i64 = 7;
const DT_RELASZ: i64 = 8;
const DT_STRSZ: i64 = 10;
const DT_PLTREL: i64 = 20;
const DT_JMPREL: i64 = 23;

#[repr(C)]
struct Dyn {
    tag: i64,
    val: u64,
}

#[repr(C)]
struct Rela {
    offset: u64,
    info: u64,
    addend: i64,
}

/// Elf64_Sym (only its name is read).
#[repr(C)]
struct Sym {
    name: u32,
    info: u8,
    other: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

const R_X86_64_64: u32 = 1;
const R_X86_64_GLOB_DAT: u32 = 6;
const R_X86_64_JUMP_SLOT: u32 = 7;

fn page() -> usize {
    // SAFETY: a plain getter.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as usize
}

impl Module {
    fn new(base: usize, phdrs: &[Elf64_Phdr]) -> Module {
        let mut m = Module {
            base,
            dynamic: None,
            loads: Vec::new(),
            relro: None,
        };
        let pg = page();
        for p in phdrs {
            let start = base.wrapping_add(p.p_vaddr as usize);
            match p.p_type {
                libc::PT_LOAD => m.loads.push((
                    start,
                    start.wrapping_add(p.p_memsz as usize),
                    p.p_flags & libc::PF_W != 0,
                )),
                libc::PT_DYNAMIC => m.dynamic = Some(start),
                PT_GNU_RELRO => {
                    let end = start.wrapping_add(p.p_memsz as usize) & !(pg - 1);
                    m.relro = Some((start & !(pg - 1), end));
                }
                _ => {}
            }
        }
        m
    }

    fn contains(&self, a: usize) -> bool {
        self.loads.iter().any(|&(s, e, _)| a >= s && a < e)
    }

    /// A pointer from the dynamic section: glibc relocates most of them in
    /// place, but not in a read-only dynamic section (the vDSO's).
    fn fix(&self, p: usize) -> usize {
        if p < self.base {
            p.wrapping_add(self.base)
        } else {
            p
        }
    }

    /// Rewrites this module's entries for `wanted`; returns how many.
    ///
    /// # Safety
    /// `dynamic` is the module's dynamic section; the module stays loaded.
    unsafe fn redirect(&self, dynamic: usize, wanted: &[Redirect]) -> usize {
        // SAFETY: this function's contract.
        let Some(t) = (unsafe { Tables::read(self, dynamic) }) else {
            return 0;
        };
        let mut changed = 0;
        for (at, len) in [(t.jmprel, t.pltrelsz), (t.rela, t.relasz)] {
            if at == 0 {
                continue;
            }
            // SAFETY: the module's relocation table, `len` bytes of Elf64_Rela.
            let relocs = unsafe { std::slice::from_raw_parts(at as *const Rela, len / 24) };
            for r in relocs {
                // SAFETY: the tables belong to this module (contract).
                changed += unsafe { self.redirect_one(&t, r, wanted) } as usize;
            }
        }
        changed
    }

    /// # Safety
    /// As `redirect`; `r` is one of the module's relocations.
    unsafe fn redirect_one(&self, t: &Tables, r: &Rela, wanted: &[Redirect]) -> bool {
        let kind = (r.info & 0xffff_ffff) as u32;
        let sym = (r.info >> 32) as usize;
        let addend_ok = kind != R_X86_64_64 || r.addend == 0;
        if sym == 0 || !addend_ok {
            return false;
        }
        if !matches!(kind, R_X86_64_64 | R_X86_64_GLOB_DAT | R_X86_64_JUMP_SLOT) {
            return false;
        }
        // SAFETY: the module's own symbol and string tables.
        let Some(name) = (unsafe { t.name(sym) }) else {
            return false;
        };
        let Some(w) = wanted.iter().find(|w| w.name == name) else {
            return false;
        };
        let slot = self.base.wrapping_add(r.offset as usize);
        if !slot.is_multiple_of(8) || !self.contains(slot) {
            return false;
        }
        // SAFETY: an aligned entry inside the module's loaded segments.
        let now = unsafe { std::ptr::read_volatile(slot as *const usize) };
        // A JUMP_SLOT not bound yet (lazy binding) points into the module.
        let lazy = kind == R_X86_64_JUMP_SLOT && self.contains(now);
        let ours_to_take = now == w.theirs || now == w.libc || w.theirs == 0 || lazy;
        if now == w.ours || !ours_to_take {
            return false;
        }
        // SAFETY: as above.
        unsafe { self.store(slot, w.ours) }
    }

    /// One atomic store into the entry at `slot`, through RELRO if need be.
    ///
    /// # Safety
    /// `slot` is an aligned GOT entry of this loaded module.
    unsafe fn store(&self, slot: usize, value: usize) -> bool {
        let pg = page();
        let in_relro = self.relro.is_some_and(|(s, e)| slot >= s && slot < e);
        let writable = self
            .loads
            .iter()
            .any(|&(s, e, w)| w && slot >= s && slot < e);
        let at = (slot & !(pg - 1)) as *mut c_void;
        // SAFETY: `at` is the page of a GOT entry of this module, read-only
        // after relocation (RELRO) or writable; it is made writable for one
        // store and returned to read-only. An aligned usize store is atomic.
        unsafe {
            if in_relro {
                if libc::mprotect(at, pg, libc::PROT_READ | libc::PROT_WRITE) != 0 {
                    return false;
                }
            } else if !writable {
                return false;
            }
            (*(slot as *const std::sync::atomic::AtomicUsize)).store(value, Ordering::SeqCst);
            if in_relro {
                libc::mprotect(at, pg, libc::PROT_READ);
            }
        }
        true
    }
}

/// The tables of a module's dynamic section the walk reads.
#[derive(Default)]
struct Tables {
    symtab: usize,
    strtab: usize,
    strsz: usize,
    jmprel: usize,
    pltrelsz: usize,
    rela: usize,
    relasz: usize,
}

impl Tables {
    /// # Safety
    /// `dynamic` is the dynamic section of loaded module `m`.
    unsafe fn read(m: &Module, dynamic: usize) -> Option<Tables> {
        let mut t = Tables::default();
        let mut pltrel_is_rela = true;
        let mut d = dynamic as *const Dyn;
        for _ in 0..4096 {
            // SAFETY: the dynamic section ends with DT_NULL (bounded anyway).
            let (tag, val) = unsafe { ((*d).tag, (*d).val as usize) };
            match tag {
                DT_NULL => break,
                DT_SYMTAB => t.symtab = m.fix(val),
                DT_STRTAB => t.strtab = m.fix(val),
                DT_STRSZ => t.strsz = val,
                DT_JMPREL => t.jmprel = m.fix(val),
                DT_PLTRELSZ => t.pltrelsz = val,
                DT_PLTREL => pltrel_is_rela = val == DT_RELA as usize,
                DT_RELA => t.rela = m.fix(val),
                DT_RELASZ => t.relasz = val,
                _ => {}
            }
            // SAFETY: still inside the section (DT_NULL not reached).
            d = unsafe { d.add(1) };
        }
        if !pltrel_is_rela {
            t.jmprel = 0;
        }
        (t.symtab != 0 && t.strtab != 0 && t.strsz != 0).then_some(t)
    }

    /// Symbol `i`'s name.
    ///
    /// # Safety
    /// `i` comes from one of this module's relocations.
    unsafe fn name(&self, i: usize) -> Option<&'static [u8]> {
        // SAFETY: symbol `i` of the module's symbol table (Elf64_Sym).
        let off = unsafe { (*(self.symtab as *const Sym).add(i)).name } as usize;
        if off >= self.strsz {
            return None;
        }
        // SAFETY: a NUL-terminated name inside the string table.
        let s = unsafe { std::ffi::CStr::from_ptr((self.strtab + off) as *const libc::c_char) };
        Some(s.to_bytes())
    }
}
