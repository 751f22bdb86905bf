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
//! `Symbolizer` (so `diff` parses each module once); the mapped files and
//! decompressed sections live in the `Symbolizer`'s arena and are released
//! with it.
//!
//! Module files are untrusted input (a corrupt or hostile ELF/DWARF file must
//! not crash the analyzer). The readers (object, gimli, addr2line) return
//! errors for what they detect; as a last resort a panic inside them while
//! one module is parsed or looked up is caught, reported once as a warning,
//! and that module's frames are shown without lines from then on.

use crate::util::FxHashMap;
use memtrace_format::Module;
use object::{Object, ObjectSection, ObjectSymbol, ObjectSymbolTable};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::rc::Rc;

type Reader = gimli::EndianSlice<'static, gimli::RunTimeEndian>;

/// One symbolized frame of an address (an address yields one frame per
/// inline level).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SymFrame {
    /// Demangled function name (shared: an address's frames and the frames
    /// of every address in the same function hold the same string). The
    /// `Symbolizer` keeps every such string (function, file, module) alive
    /// for its life, so within it the same address means the same text
    /// (`snapshot` memoizes frames by these addresses).
    pub function: Option<Rc<str>>,
    /// Source file and line, when DWARF has them (line > 0).
    pub file: Option<Rc<str>>,
    pub line: u32,
    /// The module's path as the snapshot records it; `None` when the address
    /// lies in no module of the map.
    pub module: Option<Rc<str>>,
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
    Ready {
        ctx: Option<addr2line::Context<Reader>>,
        symbols: Symbols,
    },
    /// The file could not be used; frames show module+offset.
    Unusable,
}

struct ModDebug {
    state: ModState,
    /// The DWARF reader panicked on this module: use the symbol table only.
    broken: std::cell::Cell<bool>,
}

/// Owns the bytes the parsed modules borrow: file mappings and decompressed
/// sections. The `&'static` slices handed out are valid until the arena is
/// dropped; `Symbolizer` drops every parsed module before its arena, and no
/// borrowed slice leaves the `Symbolizer` (frames carry owned strings).
#[derive(Default)]
struct Arena {
    maps: Vec<memmap2::Mmap>,
    bufs: Vec<Box<[u8]>>,
}

impl Arena {
    fn map(&mut self, path: &Path) -> std::io::Result<&'static [u8]> {
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
        // SAFETY: the mapping's address does not change when the Mmap value
        // moves into the vector; it stays mapped until the arena is dropped
        // (see the type's comment).
        let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(map.as_ptr(), map.len()) };
        self.maps.push(map);
        Ok(bytes)
    }

    fn keep(&mut self, v: Vec<u8>) -> &'static [u8] {
        let b = v.into_boxed_slice();
        // SAFETY: the heap block does not move with the Box; freed with the arena.
        let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(b.as_ptr(), b.len()) };
        self.bufs.push(b);
        bytes
    }
}

thread_local! {
    /// Set while a module is parsed or looked up: a panic there is caught
    /// and becomes a warning, so the panic hook stays quiet.
    static QUIET_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, catching a panic of the ELF/DWARF readers; returns its message.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(|q| q.get()) {
                prev(info)
            }
        }));
    });
    let was = QUIET_PANICS.with(|q| q.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET_PANICS.with(|q| q.set(was));
    r.map_err(|e| {
        e.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| e.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into())
    })
}

fn parse_elf(data: &'static [u8]) -> Option<object::File<'static>> {
    object::File::parse(data).ok()
}

fn has_dwarf(obj: &object::File<'static>) -> bool {
    obj.section_by_name(".debug_info")
        .map(|s| s.size() > 0)
        .unwrap_or(false)
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
            out.push(PathBuf::from(format!(
                "/usr/lib/debug/.build-id/{}/{}.debug",
                &h[..2],
                &h[2..]
            )));
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

/// The most a compressed section may claim to expand to: zlib cannot
/// exceed about 1032:1, and real debug sections compress far less; a larger
/// claim is corrupt (and would size an allocation from the file).
fn max_uncompressed(compressed: usize) -> u64 {
    (compressed as u64)
        .saturating_mul(1100)
        .saturating_add(1 << 20)
}

/// A section's bytes, decompressed when needed (owned by the arena).
fn section_data(
    sec: &object::Section<'static, '_>,
    arena: &mut Arena,
) -> Result<&'static [u8], String> {
    let name = sec.name().unwrap_or("?").to_string();
    let c = sec
        .compressed_data()
        .map_err(|e| format!("section {name}: {e}"))?;
    if c.format != object::CompressionFormat::None
        && c.uncompressed_size > max_uncompressed(c.data.len())
    {
        return Err(format!(
            "compressed section {name} claims {} bytes from {}",
            c.uncompressed_size,
            c.data.len()
        ));
    }
    match c.decompress() {
        Ok(Cow::Borrowed(b)) => Ok(b),
        Ok(Cow::Owned(v)) => Ok(arena.keep(v)),
        Err(e) => Err(format!("section {name}: {e}")),
    }
}

/// The DWARF sections of `obj`. A section that cannot be read (bad
/// compression header, say) is left empty, its reason put in `failure`, so
/// that the others still serve.
fn load_dwarf(
    obj: &object::File<'static>,
    arena: &mut Arena,
    failure: &mut Option<String>,
) -> Result<gimli::Dwarf<Reader>, String> {
    let endian = if obj.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
        let data: &'static [u8] = match obj.section_by_name(id.name()) {
            Some(sec) => match section_data(&sec, arena) {
                Ok(b) => b,
                Err(e) => {
                    failure.get_or_insert(e);
                    &[]
                }
            },
            None => &[],
        };
        Ok(gimli::EndianSlice::new(data, endian))
    };
    gimli::Dwarf::load(load).map_err(|e| e.to_string())
}

fn open_module(
    path: &Path,
    want_build_id: &[u8],
    arena: &mut Arena,
    warn: &mut dyn FnMut(String),
) -> ModDebug {
    let unusable = ModDebug {
        state: ModState::Unusable,
        broken: Default::default(),
    };
    let data = match arena.map(path) {
        Ok(d) => d,
        Err(e) => {
            warn(format!(
                "{}: {}; its frames are shown as module+offset",
                path.display(),
                crate::util::io_msg(&e)
            ));
            return unusable;
        }
    };
    let Some(obj) = parse_elf(data) else {
        warn(format!(
            "{}: not an ELF file; its frames are shown as module+offset",
            path.display()
        ));
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
    let mut dwarf_obj = if has_dwarf(&obj) {
        parse_elf(data)
    } else {
        None
    };
    if dwarf_obj.is_none() {
        for cand in debug_candidates(path, &obj) {
            let Ok(d) = arena.map(&cand) else { continue };
            let Some(dobj) = parse_elf(d) else { continue };
            let did = dobj.build_id().ok().flatten().unwrap_or(&[]);
            if !disk_id.is_empty() && !did.is_empty() && did != disk_id {
                continue;
            }
            if !has_dwarf(&dobj) {
                continue;
            }
            if dobj.symbol_table().is_some() && (symbols.is_empty() || obj.symbol_table().is_none())
            {
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
        let mut failure = None;
        let dwarf = load_dwarf(&dobj, arena, &mut failure);
        if let Some(e) = failure {
            warn(format!("{}: part of its debug information cannot be read ({e}); some frames may lack lines", path.display()));
        }
        let mut dwarf = match dwarf {
            Ok(d) => d,
            Err(e) => {
                warn(format!("{}: its debug information cannot be read ({e}); its frames are shown without lines", path.display()));
                return None;
            }
        };
        // dwz supplementary file
        if let Ok(Some((alt, _id))) = dobj.gnu_debugaltlink() {
            use std::os::unix::ffi::OsStrExt;
            let alt = Path::new(std::ffi::OsStr::from_bytes(alt));
            let alt = if alt.is_absolute() { alt.to_path_buf() } else { path.parent().unwrap_or(Path::new("/")).join(alt) };
            let candidates = [alt.clone(), Path::new("/usr/lib/debug/.dwz").join(alt.file_name().unwrap_or_default())];
            for c in candidates {
                if let Some(sobj) = arena.map(&c).ok().and_then(parse_elf) {
                    if let Ok(sup) = load_dwarf(&sobj, arena, &mut None) {
                        dwarf.sup = Some(std::sync::Arc::new(sup));
                        break;
                    }
                }
            }
        }
        match addr2line::Context::from_dwarf(dwarf) {
            Ok(c) => Some(c),
            Err(e) => {
                warn(format!("{}: its debug information cannot be read ({e}); its frames are shown without lines", path.display()));
                None
            }
        }
    });
    ModDebug {
        state: ModState::Ready { ctx, symbols },
        broken: Default::default(),
    }
}

/// The module with its symbol table only (after the DWARF reader panicked).
fn open_symbols_only(path: &Path, arena: &mut Arena) -> ModDebug {
    let state = match arena.map(path).ok().and_then(parse_elf) {
        Some(obj) => ModState::Ready {
            ctx: None,
            symbols: Symbols::from_object(&obj),
        },
        None => ModState::Unusable,
    };
    ModDebug {
        state,
        broken: Default::default(),
    }
}

fn broken_warning(path: &str, why: &str) -> String {
    format!("{path}: its debug information is corrupt (the reader failed: {why}); its frames are shown without lines")
}

fn demangle(name: &str) -> String {
    addr2line::demangle_auto(Cow::Borrowed(name), None).into_owned()
}

/// The parsed versions of one module path, by build-id.
type ByBuildId = Vec<(Vec<u8>, Rc<ModDebug>)>;

/// Symbolizes addresses against module maps, caching parsed modules.
#[derive(Default)]
pub struct Symbolizer {
    // Field order matters: the parsed modules borrow from the arena and are
    // dropped before it.
    /// By path, then build-id (looked up without building a key).
    modules: FxHashMap<Vec<u8>, ByBuildId>,
    warned: HashSet<String>,
    /// Demangled names by the raw name's bytes (address, length) in the
    /// arena-owned data, and a language tag: each function's name is
    /// demangled once, however many addresses and inline levels show it.
    demangled: FxHashMap<(usize, usize, u32), Option<Rc<str>>>,
    /// File names (by the address and length of the context's string) and
    /// module names (by path), shared by the frames that show them.
    files: FxHashMap<(usize, usize), Rc<str>>,
    module_names: FxHashMap<Vec<u8>, Rc<str>>,
    /// Warnings not yet printed (the CLI prints them on stderr).
    pub warnings: Vec<String>,
    arena: Arena,
}

impl Symbolizer {
    pub fn new() -> Self {
        Self::default()
    }

    fn module(&mut self, m: &Module) -> Option<Rc<ModDebug>> {
        if m.path.is_empty() || m.path.starts_with(b"[") || m.path.starts_with(b"linux-vdso") {
            return None; // [vdso] and friends have no file
        }
        if let Some(d) = self
            .modules
            .get(m.path.as_slice())
            .and_then(|v| v.iter().find(|(id, _)| *id == m.build_id))
        {
            return Some(d.1.clone());
        }
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(std::ffi::OsStr::from_bytes(&m.path));
        let mut pending = Vec::new();
        let arena = &mut self.arena;
        let d = match guarded(|| open_module(path, &m.build_id, arena, &mut |w| pending.push(w))) {
            Ok(d) => d,
            Err(why) => {
                pending.push(broken_warning(&path.display().to_string(), &why));
                guarded(|| open_symbols_only(path, arena)).unwrap_or(ModDebug {
                    state: ModState::Unusable,
                    broken: Default::default(),
                })
            }
        };
        let d = Rc::new(d);
        for w in pending {
            self.warn(w);
        }
        self.modules
            .entry(m.path.clone())
            .or_default()
            .push((m.build_id.clone(), d.clone()));
        Some(d)
    }

    fn warn(&mut self, w: String) {
        if self.warned.insert(w.clone()) {
            self.warnings.push(w);
        }
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
        let module_name = match self.module_names.get(m.path.as_slice()) {
            Some(n) => n.clone(),
            None => {
                let n: Rc<str> = String::from_utf8_lossy(&m.path).into();
                self.module_names.insert(m.path.clone(), n.clone());
                n
            }
        };
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
        let Some(d) = self.module(m) else {
            return vec![bare];
        };
        let ModState::Ready { ctx, symbols } = &d.state else {
            return vec![bare];
        };
        // (a return address at offset 0 would probe the last byte of the
        // address space: no symbol offset then)
        let sym = symbols.find(probe).filter(|&(start, _)| start <= off);
        let sym_off = sym.map(|(start, _)| off - start);
        let sym_name = |cache: &mut FxHashMap<(usize, usize, u32), Option<Rc<str>>>| {
            sym.map(|(_, n)| {
                cache
                    .entry((n.as_ptr() as usize, n.len(), u32::MAX))
                    .or_insert_with(|| {
                        Some(
                            guarded(|| demangle(n))
                                .unwrap_or_else(|_| n.to_string())
                                .into(),
                        )
                    })
                    .clone()
                    .unwrap_or_default()
            })
        };
        let mut out = Vec::new();
        if let (Some(ctx), false) = (ctx, d.broken.get()) {
            let cache = &mut self.demangled;
            let files = &mut self.files;
            let found = guarded(|| {
                let mut out = Vec::new();
                if let Ok(mut it) = ctx.find_frames(probe).skip_all_loads() {
                    // an inline chain deeper than any real one means a cycle in corrupt DWARF
                    while let (Ok(Some(f)), true) = (it.next(), out.len() < 256) {
                        let function = f.function.as_ref().and_then(|n| {
                            let raw = n.name.slice();
                            let lang = n.language.map(|l| l.0 as u32).unwrap_or(u32::MAX - 1);
                            cache
                                .entry((raw.as_ptr() as usize, raw.len(), lang))
                                .or_insert_with(|| n.demangle().ok().map(|c| Rc::from(c.as_ref())))
                                .clone()
                        });
                        let (file, line) = match &f.location {
                            Some(loc) => (
                                loc.file.map(|s| {
                                    files
                                        .entry((s.as_ptr() as usize, s.len()))
                                        .or_insert_with(|| s.into())
                                        .clone()
                                }),
                                loc.line.unwrap_or(0),
                            ),
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
                out
            });
            match found {
                Ok(v) => out = v,
                Err(why) => {
                    d.broken.set(true);
                    self.warn(broken_warning(&module_name, &why));
                }
            }
        }
        if out.is_empty() {
            out.push(SymFrame {
                function: sym_name(&mut self.demangled),
                symbol_offset: sym_off,
                ..bare
            });
        } else {
            // The outermost (physical) frame gets the ELF symbol's offset and,
            // if DWARF had no name for it, the symbol's name.
            let last = out.last_mut().unwrap();
            if last.function.is_none() {
                last.function = sym_name(&mut self.demangled);
            }
            last.symbol_offset = sym_off;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_catches_a_panic_quietly() {
        assert_eq!(guarded(|| 7), Ok(7));
        assert_eq!(
            guarded(|| -> u32 { panic!("bad dwarf") }),
            Err("bad dwarf".to_string())
        );
        let n = 3;
        assert_eq!(
            guarded(|| -> u32 { panic!("bad {n}") }),
            Err("bad 3".to_string())
        );
        assert!(!QUIET_PANICS.with(|q| q.get()));
    }

    #[test]
    fn symbol_offset_at_module_offset_zero() {
        let s = Symbols {
            syms: vec![(0x10, 0, "f")],
        };
        // probe = 0 - 1 wraps: the symbol found must not give 0 - 0x10
        assert_eq!(s.find(u64::MAX), Some((0x10, "f")));
    }
}
