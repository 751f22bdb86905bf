//! Offline symbolization: runtime return addresses → (module, function, file,
//! line) frames, inlined calls expanded innermost first as `addr2line -i`
//! prints them.
//!
//! Each address goes through the snapshot's module map (`Module::contains`;
//! file virtual address = address − load bias), and address − 1 is looked up
//! so that it lands inside the call instruction. DWARF comes from the module
//! itself or from separate debug info (`/usr/lib/debug/.build-id/xx/yyyy.debug`,
//! or `.gnu_debuglink` next to the file, in its `.debug/`, or under
//! `/usr/lib/debug/<dir>/`), with `.gnu_debugaltlink` (dwz) supplementary
//! files. Function names fall back to the ELF symbol table (`.symtab`, else
//! `.dynsym`). A module whose build-id on disk differs from the snapshot's
//! is reported once on stderr and its frames are shown as `module+0xoffset`
//! only: never wrong lines.
//!
//! Parsed modules are cached per (path, build-id) for the life of the
//! `Symbolizer` (so `diff` parses each module once); file data is mapped and
//! intentionally leaked, which a one-shot CLI can afford.

use memtrace_format::Module;
use object::{Object, ObjectSection, ObjectSymbol, ObjectSymbolTable};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::rc::Rc;

type Reader = gimli::EndianSlice<'static, gimli::RunTimeEndian>;

/// One symbolized frame of an address (an address yields one frame per
/// inline level).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SymFrame {
    /// Demangled function name.
    pub function: Option<String>,
    /// Source file and line, when DWARF has them (line > 0).
    pub file: Option<String>,
    pub line: u32,
    /// The module's path as the snapshot records it; `None` when the address
    /// lies in no module of the map.
    pub module: Option<String>,
    /// Return address − load bias (or the raw address when there is no module).
    pub module_offset: u64,
    /// Return address − start of the ELF symbol, when the symbol is known.
    pub symbol_offset: Option<u64>,
}

impl SymFrame {
    pub fn has_line(&self) -> bool {
        self.file.is_some() && self.line > 0
    }
}

struct Symbols {
    /// (address, size, name) sorted by address.
    syms: Vec<(u64, u64, &'static str)>,
}

impl Symbols {
    fn from_object(obj: &object::File<'static>) -> Symbols {
        let table = obj.symbol_table().or_else(|| obj.dynamic_symbol_table());
        let mut syms = Vec::new();
        if let Some(t) = table {
            for s in t.symbols() {
                if s.kind() != object::SymbolKind::Text || s.address() == 0 {
                    continue;
                }
                if let Ok(name) = s.name() {
                    if !name.is_empty() {
                        syms.push((s.address(), s.size(), name));
                    }
                }
            }
        }
        syms.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
        syms.dedup_by_key(|s| s.0);
        Symbols { syms }
    }

    fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// The symbol containing `addr`: the last one starting at or below it,
    /// within its size (a symbol of size 0 covers up to the next symbol).
    fn find(&self, addr: u64) -> Option<(u64, &'static str)> {
        let i = self.syms.partition_point(|s| s.0 <= addr);
        if i == 0 {
            return None;
        }
        let (start, size, name) = self.syms[i - 1];
        if size != 0 && addr - start >= size {
            return None;
        }
        Some((start, name))
    }
}

enum ModState {
    Ready { ctx: Option<addr2line::Context<Reader>>, symbols: Symbols },
    /// The file could not be used; frames show module+offset.
    Unusable,
}

struct ModDebug {
    state: ModState,
}

/// Why a module cannot be symbolized, for the one-time warning.
fn leak_map(path: &Path) -> std::io::Result<&'static [u8]> {
    let f = File::open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() == 0 {
        return Ok(&[]);
    }
    // SAFETY: the mapping is read-only; a file truncated under us could
    // fault, the usual caveat of every mmap-based symbolizer.
    let map = unsafe { memmap2::Mmap::map(&f)? };
    Ok(Box::leak(Box::new(map)))
}

fn parse_elf(data: &'static [u8]) -> Option<object::File<'static>> {
    object::File::parse(data).ok()
}

fn has_dwarf(obj: &object::File<'static>) -> bool {
    obj.section_by_name(".debug_info").map(|s| s.size() > 0).unwrap_or(false)
        || obj.section_by_name(".zdebug_info").is_some()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Candidate separate debug files, in gdb's order.
fn debug_candidates(path: &Path, obj: &object::File<'static>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(Some(id)) = obj.build_id() {
        if id.len() >= 2 {
            let h = hex(id);
            out.push(PathBuf::from(format!("/usr/lib/debug/.build-id/{}/{}.debug", &h[..2], &h[2..])));
        }
    }
    if let Ok(Some((name, _crc))) = obj.gnu_debuglink() {
        use std::os::unix::ffi::OsStrExt;
        let name = Path::new(std::ffi::OsStr::from_bytes(name));
        let dir = path.parent().unwrap_or(Path::new("/"));
        out.push(dir.join(name));
        out.push(dir.join(".debug").join(name));
        let rel = dir.strip_prefix("/").unwrap_or(dir);
        out.push(Path::new("/usr/lib/debug").join(rel).join(name));
    }
    out
}

fn load_dwarf(obj: &object::File<'static>) -> Option<gimli::Dwarf<Reader>> {
    let endian = if obj.is_little_endian() { gimli::RunTimeEndian::Little } else { gimli::RunTimeEndian::Big };
    let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
        let data: &'static [u8] = match obj.section_by_name(id.name()) {
            Some(sec) => match sec.uncompressed_data() {
                Ok(Cow::Borrowed(b)) => b,
                Ok(Cow::Owned(v)) => Box::leak(v.into_boxed_slice()),
                Err(_) => &[],
            },
            None => &[],
        };
        Ok(gimli::EndianSlice::new(data, endian))
    };
    gimli::Dwarf::load(load).ok()
}

fn open_module(path: &Path, want_build_id: &[u8], warn: &mut dyn FnMut(String)) -> ModDebug {
    let unusable = ModDebug { state: ModState::Unusable };
    let data = match leak_map(path) {
        Ok(d) => d,
        Err(e) => {
            warn(format!("{}: {}; its frames are shown as module+offset", path.display(), crate::io_msg(&e)));
            return unusable;
        }
    };
    let Some(obj) = parse_elf(data) else {
        warn(format!("{}: not an ELF file; its frames are shown as module+offset", path.display()));
        return unusable;
    };
    let disk_id = obj.build_id().ok().flatten().unwrap_or(&[]);
    if !want_build_id.is_empty() && disk_id != want_build_id {
        warn(format!(
            "{} changed since the snapshot (build-id differs); its frames are shown without lines",
            path.display()
        ));
        return unusable;
    }
    let mut symbols = Symbols::from_object(&obj);
    let mut dwarf_obj = if has_dwarf(&obj) { parse_elf(data) } else { None };
    if dwarf_obj.is_none() {
        for cand in debug_candidates(path, &obj) {
            let Ok(d) = leak_map(&cand) else { continue };
            let Some(dobj) = parse_elf(d) else { continue };
            let did = dobj.build_id().ok().flatten().unwrap_or(&[]);
            if !disk_id.is_empty() && !did.is_empty() && did != disk_id {
                continue;
            }
            if !has_dwarf(&dobj) {
                continue;
            }
            if dobj.symbol_table().is_some() && (symbols.is_empty() || obj.symbol_table().is_none()) {
                let s = Symbols::from_object(&dobj);
                if !s.is_empty() {
                    symbols = s;
                }
            }
            dwarf_obj = Some(dobj);
            break;
        }
    }
    let ctx = dwarf_obj.and_then(|dobj| {
        let mut dwarf = load_dwarf(&dobj)?;
        // dwz supplementary file
        if let Ok(Some((alt, _id))) = dobj.gnu_debugaltlink() {
            use std::os::unix::ffi::OsStrExt;
            let alt = Path::new(std::ffi::OsStr::from_bytes(alt));
            let alt = if alt.is_absolute() { alt.to_path_buf() } else { path.parent().unwrap_or(Path::new("/")).join(alt) };
            let candidates = [alt.clone(), Path::new("/usr/lib/debug/.dwz").join(alt.file_name().unwrap_or_default())];
            for c in candidates {
                if let Some(sobj) = leak_map(&c).ok().and_then(parse_elf) {
                    if let Some(sup) = load_dwarf(&sobj) {
                        dwarf.sup = Some(std::sync::Arc::new(sup));
                        break;
                    }
                }
            }
        }
        addr2line::Context::from_dwarf(dwarf).ok()
    });
    ModDebug { state: ModState::Ready { ctx, symbols } }
}

fn demangle(name: &str) -> String {
    addr2line::demangle_auto(Cow::Borrowed(name), None).into_owned()
}

/// Symbolizes addresses against module maps, caching parsed modules.
#[derive(Default)]
pub struct Symbolizer {
    modules: HashMap<(Vec<u8>, Vec<u8>), Rc<ModDebug>>,
    warned: HashSet<String>,
    /// Warnings not yet printed (the CLI prints them on stderr).
    pub warnings: Vec<String>,
}

impl Symbolizer {
    pub fn new() -> Self {
        Self::default()
    }

    fn module(&mut self, m: &Module) -> Option<Rc<ModDebug>> {
        if m.path.is_empty() || m.path.starts_with(b"[") || m.path.starts_with(b"linux-vdso") {
            return None; // [vdso] and friends have no file
        }
        let key = (m.path.clone(), m.build_id.clone());
        if let Some(d) = self.modules.get(&key) {
            return Some(d.clone());
        }
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(std::ffi::OsStr::from_bytes(&m.path));
        let mut pending = Vec::new();
        let d = Rc::new(open_module(path, &m.build_id, &mut |w| pending.push(w)));
        for w in pending {
            if self.warned.insert(w.clone()) {
                self.warnings.push(w);
            }
        }
        self.modules.insert(key, d.clone());
        Some(d)
    }

    /// Frames of one return address, innermost first (never empty).
    pub fn symbolize(&mut self, modules: &[Module], addr: u64) -> Vec<SymFrame> {
        let Some(m) = modules.iter().find(|m| m.contains(addr)) else {
            return vec![SymFrame {
                function: None,
                file: None,
                line: 0,
                module: None,
                module_offset: addr,
                symbol_offset: None,
            }];
        };
        let module_name = String::from_utf8_lossy(&m.path).into_owned();
        let off = addr.wrapping_sub(m.base);
        let probe = off.wrapping_sub(1);
        let bare = SymFrame {
            function: None,
            file: None,
            line: 0,
            module: Some(module_name.clone()),
            module_offset: off,
            symbol_offset: None,
        };
        let Some(d) = self.module(m) else { return vec![bare] };
        let ModState::Ready { ctx, symbols } = &d.state else { return vec![bare] };
        let sym = symbols.find(probe);
        let sym_off = sym.map(|(start, _)| off - start);
        let sym_name = || sym.map(|(_, n)| demangle(n));
        let mut out = Vec::new();
        if let Some(ctx) = ctx {
            if let Ok(mut it) = ctx.find_frames(probe).skip_all_loads() {
                while let Ok(Some(f)) = it.next() {
                    let function = f.function.as_ref().and_then(|n| n.demangle().ok()).map(|c| c.into_owned());
                    let (file, line) = match &f.location {
                        Some(loc) => (loc.file.map(|s| s.to_string()), loc.line.unwrap_or(0)),
                        None => (None, 0),
                    };
                    out.push(SymFrame {
                        function,
                        file,
                        line,
                        module: Some(module_name.clone()),
                        module_offset: off,
                        symbol_offset: None,
                    });
                }
            }
        }
        if out.is_empty() {
            out.push(SymFrame { function: sym_name(), symbol_offset: sym_off, ..bare });
        } else {
            // The outermost (physical) frame gets the ELF symbol's offset and,
            // if DWARF had no name for it, the symbol's name.
            let last = out.last_mut().unwrap();
            if last.function.is_none() {
                last.function = sym_name();
            }
            last.symbol_offset = sym_off;
        }
        out
    }
}
