//! The module map written into each snapshot, so that the analyzer can
//! symbolize offline: every loaded object (dl_iterate_phdr) with its load
//! bias, PT_LOAD segments and GNU build-id, plus objects unloaded since
//! (dlclose) if a stack in the dump points into them. To catch those, the
//! `dlclose` hook refreshes the registry before the real dlclose.

use crate::guard::NoTrace;
use crate::sys::Locked;
use memtrace_format::{Module, Segment};
use std::ffi::CStr;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone)]
pub struct ModInfo {
    path: Vec<u8>,
    base: u64,
    build_id: Vec<u8>,
    segments: Vec<Segment>,
}

/// Every module seen so far (loaded or not any more), by (path, base).
static REGISTRY: Locked<Vec<ModInfo>> = Locked::new(Vec::new());
static EXE: Locked<Vec<u8>> = Locked::new(Vec::new());
/// argv as the process started (a fork child keeps its parent's): read at
/// start, because programs rewrite it later to show a status (PostgreSQL's
/// backends write their title over it, padded with NULs).
static CMDLINE: Locked<Vec<Vec<u8>>> = Locked::new(Vec::new());
static SELF_PATH: Locked<Vec<u8>> = Locked::new(Vec::new());
/// Empty when the program's `malloc` is ours; else the path of the module
/// whose `malloc` the program's calls bind to (see `check_malloc_owner`).
static MALLOC_OWNER: Locked<Vec<u8>> = Locked::new(Vec::new());

/// Reads /proc/self/exe and /proc/self/cmdline ("at start") and our own
/// path; fills the registry.
pub fn init() {
    let exe = std::fs::read_link("/proc/self/exe")
        .map(|p| std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec())
        .unwrap_or_default();
    *EXE.lock() = exe;
    *CMDLINE.lock() = read_cmdline();
    let base = crate::unwind::self_base() as u64;
    if let Some(m) = current().into_iter().find(|m| m.base == base) {
        *SELF_PATH.lock() = m.path;
    }
    refresh();
}

/// Fork prepare: the child inherits the registry consistent.
pub fn fork_prepare() {
    REGISTRY.lock.lock();
}

pub fn fork_parent() {
    REGISTRY.lock.unlock();
}

/// Fork child: the registry's lock taken in `fork_prepare` is ours to
/// reset; a thread that held one of the small locks did not survive.
pub fn fork_child() {
    REGISTRY.lock.reset();
    EXE.lock.reset();
    CMDLINE.lock.reset();
    SELF_PATH.lock.reset();
    MALLOC_OWNER.lock.reset();
}

/// Is the `malloc` the program really calls ours? The dynamic linker binds
/// every call (the program's and glibc's own) to the first definition in
/// its search order: the executable, then LD_PRELOAD, then libc. A program
/// that defines malloc itself, or links jemalloc/tcmalloc ahead of us,
/// bypasses our hooks entirely. Compared by module (not by our own symbol
/// address, which a PIC reference could resolve to the interposer). Called
/// from the constructor after `init()`, under the re-entrancy guard (dlsym
/// and dlopen may call calloc).
pub fn check_malloc_owner() {
    let Some(owner) = malloc_definition() else {
        return;
    };
    if owner.base == crate::unwind::self_base() as u64 {
        return;
    }
    crate::sys::log(&format!(
        "this program's malloc comes from {}, not glibc: its allocations are not traced",
        String::from_utf8_lossy(&owner.path)
    ));
    *MALLOC_OWNER.lock() = owner.path;
}

/// The module whose `malloc` definition the program's calls bind to, or
/// None when the loader knows no `malloc` at all.
///
/// `dlsym(RTLD_DEFAULT)` is not the answer by itself: a non-PIE executable
/// that takes `&malloc` (node, Debian's python3) gets a *canonical PLT
/// entry*, an undefined dynamic symbol whose value is the address of a PLT
/// stub in the executable, so that `&malloc` compares equal everywhere. The
/// loader returns that stub, yet the executable's own calls jump through
/// its GOT to the next real definition (undefined symbols never satisfy a
/// lookup). So when the answer is such a stub, look for the first module
/// in the global search order (the link map, as dl_iterate_phdr walks it)
/// that defines `malloc` itself.
fn malloc_definition() -> Option<ModInfo> {
    // SAFETY: dlsym with a valid C string.
    let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr()) } as u64;
    if found == 0 {
        return None;
    }
    let mods = current();
    let Some(holder) = mods.iter().find(|m| contains(m, found)) else {
        // Not in any module dl_iterate_phdr knows: name it as dladdr does.
        return Some(ModInfo {
            path: dladdr_path(found),
            base: 0,
            build_id: Vec::new(),
            segments: Vec::new(),
        });
    };
    if !is_plt_stub(found) {
        return Some(holder.clone());
    }
    mods.iter()
        .skip(1)
        .find(|m| defines_malloc(m))
        .cloned()
        .or_else(|| Some(holder.clone()))
}

/// glibc's `dladdr1` flag asking for the symbol table entry (dlfcn.h).
const RTLD_DL_SYMENT: libc::c_int = 1;

/// True if the dynamic symbol at `addr` is an undefined one with a value:
/// an executable's canonical PLT entry standing in for a function defined
/// elsewhere.
fn is_plt_stub(addr: u64) -> bool {
    // SAFETY: Dl_info and the symbol pointer are plain out values (zeroed is
    // valid); dladdr1 fills them with pointers into the loader's own tables,
    // read at once while the module stays loaded (it is the executable).
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let mut sym: *const libc::Elf64_Sym = std::ptr::null();
        let found = libc::dladdr1(
            addr as *const libc::c_void,
            &mut info,
            (&mut sym as *mut *const libc::Elf64_Sym).cast(),
            RTLD_DL_SYMENT,
        );
        found != 0 && !sym.is_null() && (*sym).st_shndx == 0 /* SHN_UNDEF */ && (*sym).st_value != 0
    }
}

/// Does `m` itself define `malloc`? dlsym on its handle searches the module
/// first, then its dependencies: the answer is `m`'s own only if it lies in
/// `m` (and is not one of its own PLT stubs).
fn defines_malloc(m: &ModInfo) -> bool {
    if m.path.is_empty() || m.path.first() == Some(&b'[') {
        return false;
    }
    let Ok(path) = std::ffi::CString::new(m.path.clone()) else {
        return false;
    };
    // SAFETY: RTLD_NOLOAD only returns a handle to an object already loaded
    // (never loads or runs anything); the handle is released at once.
    unsafe {
        let h = libc::dlopen(path.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
        if h.is_null() {
            return false;
        }
        let addr = libc::dlsym(h, c"malloc".as_ptr()) as u64;
        libc::dlclose(h);
        addr != 0 && contains(m, addr) && !is_plt_stub(addr)
    }
}

/// The file dladdr names for `addr`, or `?`.
fn dladdr_path(addr: u64) -> Vec<u8> {
    // SAFETY: Dl_info is plain data (zeroed is valid); dladdr gets a valid
    // out pointer and sets dli_fname to NULL or a C string owned by the
    // loader, which we copy at once.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(addr as *const libc::c_void, &mut info) != 0 && !info.dli_fname.is_null() {
            CStr::from_ptr(info.dli_fname).to_bytes().to_vec()
        } else {
            b"?".to_vec()
        }
    }
}

/// For the snapshot header: empty, or the module that owns `malloc`.
pub fn malloc_owner() -> Vec<u8> {
    MALLOC_OWNER.lock().clone()
}

/// `/proc/self/cmdline` split on NUL.
fn read_cmdline() -> Vec<Vec<u8>> {
    std::fs::read("/proc/self/cmdline")
        .map(|b| {
            let b = b.strip_suffix(b"\0").unwrap_or(&b).to_vec();
            b.split(|&c| c == 0).map(|a| a.to_vec()).collect()
        })
        .unwrap_or_default()
}

/// The command line as the process started.
pub fn cmdline() -> Vec<Vec<u8>> {
    CMDLINE.lock().clone()
}

pub fn exe() -> Vec<u8> {
    EXE.lock().clone()
}

pub fn self_path() -> Vec<u8> {
    SELF_PATH.lock().clone()
}

const NT_GNU_BUILD_ID: u32 = 3;

/// # Safety
/// `addr..addr+len` must be mapped (a PT_NOTE segment of a loaded object).
unsafe fn build_id(addr: usize, len: usize) -> Option<Vec<u8>> {
    let mut p = addr;
    let end = addr + len;
    let align4 = |n: usize| (n + 3) & !3;
    while p + 12 <= end {
        // SAFETY: the note header [p, p + 12) is inside the mapped range.
        let (namesz, descsz, ty) = unsafe {
            (
                (p as *const u32).read_unaligned() as usize,
                ((p + 4) as *const u32).read_unaligned() as usize,
                ((p + 8) as *const u32).read_unaligned(),
            )
        };
        let name = p + 12;
        let desc = name + align4(namesz);
        let next = desc + align4(descsz);
        if next > end || next <= p {
            return None;
        }
        // SAFETY: name (namesz = 4 bytes) and desc (descsz bytes) end at or
        // before `next`, which is inside the mapped range (checked above).
        let gnu =
            namesz == 4 && unsafe { std::slice::from_raw_parts(name as *const u8, 4) } == b"GNU\0";
        if ty == NT_GNU_BUILD_ID && gnu {
            // SAFETY: as above.
            return Some(unsafe { std::slice::from_raw_parts(desc as *const u8, descsz) }.to_vec());
        }
        p = next;
    }
    None
}

/// dl_iterate_phdr's callback: appends the module `info` describes.
///
/// # Safety
/// `info` is the loader's, valid for the call; `data` is the `Vec<ModInfo>`
/// that `current` passes.
unsafe extern "C" fn callback(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: this function's contract.
    let (out, info) = unsafe { (&mut *(data as *mut Vec<ModInfo>), &*info) };
    let name = if info.dlpi_name.is_null() {
        &b""[..]
    } else {
        // SAFETY: a non-NULL dlpi_name is a C string owned by the loader.
        unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes()
    };
    let path = if name.is_empty() {
        if out.is_empty() {
            EXE.lock().clone() // the main program comes first, nameless
        } else {
            return 0;
        }
    } else if name.starts_with(b"linux-vdso") || name.starts_with(b"linux-gate") {
        b"[vdso]".to_vec()
    } else {
        name.to_vec()
    };
    let mut segments = Vec::new();
    let mut bid = Vec::new();
    for i in 0..info.dlpi_phnum as usize {
        // SAFETY: the loader's program headers, dlpi_phnum of them.
        let ph = unsafe { &*info.dlpi_phdr.add(i) };
        if ph.p_type == libc::PT_LOAD {
            segments.push(Segment {
                vaddr: ph.p_vaddr,
                memsz: ph.p_memsz,
                file_offset: ph.p_offset,
                flags: ph.p_flags,
            });
        } else if ph.p_type == libc::PT_NOTE && bid.is_empty() {
            let addr = (info.dlpi_addr as usize).wrapping_add(ph.p_vaddr as usize);
            // SAFETY: a PT_NOTE segment of a loaded object is mapped.
            if let Some(b) = unsafe { build_id(addr, ph.p_memsz as usize) } {
                bid = b;
            }
        }
    }
    out.push(ModInfo {
        path,
        base: info.dlpi_addr,
        build_id: bid,
        segments,
    });
    0
}

fn current() -> Vec<ModInfo> {
    let _g = NoTrace::new();
    let mut v: Vec<ModInfo> = Vec::new();
    // SAFETY: the callback only reads the loader's data for the duration of
    // the call and writes into `v`, passed through `data`.
    unsafe {
        libc::dl_iterate_phdr(
            Some(callback),
            &mut v as *mut Vec<ModInfo> as *mut libc::c_void,
        )
    };
    // dlopen("./lib.so") leaves a relative name: make it absolute (against
    // the current directory, as the loader did) for offline symbolization.
    for m in v.iter_mut() {
        if m.path.first().is_some_and(|&c| c != b'/' && c != b'[') {
            let p: &std::ffi::OsStr = std::os::unix::ffi::OsStrExt::from_bytes(&m.path);
            if let Ok(abs) = std::fs::canonicalize(p) {
                m.path = std::os::unix::ffi::OsStrExt::as_bytes(abs.as_os_str()).to_vec();
            }
        }
    }
    v
}

fn merge(reg: &mut Vec<ModInfo>, cur: &[ModInfo]) {
    for m in cur {
        if !reg.iter().any(|r| r.base == m.base && r.path == m.path) {
            reg.push(m.clone());
        }
    }
}

/// Remembers every module loaded right now (called before dlclose).
pub fn refresh() {
    let cur = current();
    merge(&mut REGISTRY.lock(), &cur);
}

fn to_module(m: &ModInfo, unloaded: bool) -> Module {
    Module {
        path: m.path.clone(),
        base: m.base,
        build_id: m.build_id.clone(),
        unloaded,
        segments: m.segments.clone(),
    }
}

fn contains(m: &ModInfo, addr: u64) -> bool {
    m.segments.iter().any(|s| {
        let start = m.base.wrapping_add(s.vaddr);
        addr >= start && addr - start < s.memsz
    })
}

/// The module list for a dump holding `stacks`.
pub fn for_snapshot(stacks: &[memtrace_format::Stack]) -> Vec<Module> {
    let cur = current();
    let mut reg = REGISTRY.lock();
    merge(&mut reg, &cur);
    let mut out: Vec<Module> = cur.iter().map(|m| to_module(m, false)).collect();
    for m in reg.iter() {
        if cur.iter().any(|c| c.base == m.base && c.path == m.path) {
            continue;
        }
        if stacks
            .iter()
            .any(|s| s.frames.iter().any(|&f| contains(m, f)))
        {
            out.push(to_module(m, true));
        }
    }
    out
}

static REAL_DLCLOSE: AtomicUsize = AtomicUsize::new(0);

/// Hooked so that a module's map is remembered before it goes away.
///
/// # Safety
/// dlclose(3)'s contract: `handle` came from dlopen and is closed once.
#[no_mangle]
pub unsafe extern "C" fn dlclose(handle: *mut libc::c_void) -> libc::c_int {
    let _g = NoTrace::new();
    let mut real = REAL_DLCLOSE.load(Ordering::Acquire);
    if real == 0 {
        // SAFETY: dlsym with a valid C string.
        real = unsafe { libc::dlsym(libc::RTLD_NEXT, c"dlclose".as_ptr()) } as usize;
        if real == 0 {
            return -1;
        }
        REAL_DLCLOSE.store(real, Ordering::Release);
    }
    if crate::is_ready() {
        refresh();
    }
    // SAFETY: `real` is libc's dlclose, found with dlsym(RTLD_NEXT).
    let f: unsafe extern "C" fn(*mut libc::c_void) -> libc::c_int =
        unsafe { std::mem::transmute(real) };
    drop(_g);
    // SAFETY: the real dlclose, with the caller's handle (our contract).
    let r = unsafe { f(handle) };
    // Another object may now be mapped where the closed one was: cached
    // unwind rules for those addresses are no longer true.
    crate::unwind::modules_changed();
    r
}
