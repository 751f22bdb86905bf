//! Snapshots: a dump file read, checked and symbolized into `Trace`s whose
//! `Traceback`s hold interned `Frame`s, most recent call first (the order of
//! tracemalloc's raw traces).
//!
//! A `Frame` is tracemalloc's `(filename, lineno)` plus what native code has
//! besides: the function and the module. A frame without line information
//! gets a synthetic, `<…>`-bracketed file name — `<function in module>` or
//! `<module+0xoffset>` — with line 0, the way tracemalloc names what it
//! cannot place (`<unknown>`); linecache skips such names.
//!
//! "The user's line, not the allocator's": unless told to keep them, the
//! frames that belong to the toolchain and the system are dropped before
//! anything else sees the traceback (see `FrameRules`).

use crate::filter::{FilterSet, Pattern};
use crate::symbolize::{SymFrame, Symbolizer};
use crate::FxHashMap as HashMap;
use memtrace_format::{Header, Module};
use std::path::Path;
use std::rc::Rc;

pub type FrameId = u32;

/// An interned frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// tracemalloc's filename: the source file, or a `<…>` name when there is no line info.
    pub filename: String,
    pub lineno: u32,
    pub function: Option<String>,
    /// Path of the module the code lives in.
    pub module: Option<String>,
    pub has_line: bool,
    /// Offset of the return address in its module (file virtual address).
    pub module_offset: u64,
    /// Offset of the return address from its ELF symbol.
    pub symbol_offset: Option<u64>,
    /// Toolchain or system frame (see `FrameRules`).
    pub system: bool,
    /// A line-less frame of the main executable: kept only in tracebacks
    /// that have no line information at all.
    pub weak: bool,
    /// Interned (filename, lineno): tracemalloc's frame identity.
    pub loc: u32,
    /// Interned filename.
    pub file: u32,
    /// Interned function label (the `function` key).
    pub func: u32,
}

impl Frame {
    /// `str(Frame)`: `filename:lineno`.
    pub fn location(&self) -> String {
        format!("{}:{}", self.filename, self.lineno)
    }

    /// Label of the `function` key: `function (file)`.
    pub fn function_label(&self) -> String {
        let file = if self.has_line {
            self.filename.clone()
        } else {
            match &self.module {
                Some(m) => basename(m).to_string(),
                None => self.filename.clone(),
            }
        };
        match &self.function {
            Some(f) => format!("{f} ({file})"),
            None if self.has_line => format!("?? ({file})"),
            None => self.filename.clone(),
        }
    }

    /// One `Traceback.format()` line: `  File "/path/file.c", line 25`, or
    /// for a frame without line information `  File "/lib/libfoo.so",
    /// function foo+0x12` (`offset 0x…` when even the function is unknown).
    pub fn format_line(&self) -> String {
        if self.has_line {
            return format!("  File \"{}\", line {}", self.filename, self.lineno);
        }
        let module = self.module.as_deref().unwrap_or("<unknown>");
        match (&self.function, self.symbol_offset) {
            (Some(f), Some(o)) => format!("  File \"{module}\", function {f}+{o:#x}"),
            (Some(f), None) => format!("  File \"{module}\", function {f}"),
            (None, _) if self.module.is_some() => {
                format!("  File \"{module}\", offset {:#x}", self.module_offset)
            }
            (None, _) => format!("  File \"{module}\", address {:#x}", self.module_offset),
        }
    }
}

pub fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Interns frames, their (filename, lineno) locations, file names and
/// function labels. One table serves both snapshots of a diff, so equal ids
/// mean equal keys.
#[derive(Default)]
pub struct FrameTable {
    frames: Vec<Frame>,
    by_key: HashMap<String, FrameId>,
    locs: Vec<(u32, u32)>,
    loc_ids: HashMap<(u32, u32), u32>,
    files: Vec<String>,
    file_ids: HashMap<String, u32>,
    funcs: Vec<String>,
    func_ids: HashMap<String, u32>,
}

fn intern_str(vec: &mut Vec<String>, ids: &mut HashMap<String, u32>, s: &str) -> u32 {
    if let Some(&i) = ids.get(s) {
        return i;
    }
    let i = vec.len() as u32;
    vec.push(s.to_string());
    ids.insert(s.to_string(), i);
    i
}

impl FrameTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn frame(&self, id: FrameId) -> &Frame {
        &self.frames[id as usize]
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn loc_filename(&self, loc: u32) -> &str {
        &self.files[self.locs[loc as usize].0 as usize]
    }

    pub fn loc_lineno(&self, loc: u32) -> u32 {
        self.locs[loc as usize].1
    }

    pub fn file_name(&self, file: u32) -> &str {
        &self.files[file as usize]
    }

    pub fn func_label(&self, func: u32) -> &str {
        &self.funcs[func as usize]
    }

    /// Interns a frame built from its parts.
    #[allow(clippy::too_many_arguments)]
    pub fn intern(
        &mut self,
        filename: &str,
        lineno: u32,
        function: Option<&str>,
        module: Option<&str>,
        has_line: bool,
        module_offset: u64,
        symbol_offset: Option<u64>,
        system: bool,
    ) -> FrameId {
        let key = format!(
            "{filename}\0{lineno}\0{}\0{}\0{}\0{}",
            function.unwrap_or("\u{1}"),
            module.unwrap_or("\u{1}"),
            if has_line { 0 } else { module_offset },
            has_line as u8,
        );
        if let Some(&id) = self.by_key.get(&key) {
            return id;
        }
        let file = intern_str(&mut self.files, &mut self.file_ids, filename);
        let loc = match self.loc_ids.get(&(file, lineno)) {
            Some(&l) => l,
            None => {
                let l = self.locs.len() as u32;
                self.locs.push((file, lineno));
                self.loc_ids.insert((file, lineno), l);
                l
            }
        };
        let mut frame = Frame {
            filename: filename.to_string(),
            lineno,
            function: function.map(str::to_string),
            module: module.map(str::to_string),
            has_line,
            module_offset,
            symbol_offset,
            system,
            weak: false,
            loc,
            file,
            func: 0,
        };
        frame.func = intern_str(&mut self.funcs, &mut self.func_ids, &frame.function_label());
        let id = self.frames.len() as FrameId;
        self.frames.push(frame);
        self.by_key.insert(key, id);
        id
    }

    /// Interns a plain tracemalloc frame `(filename, lineno)`.
    pub fn intern_location(&mut self, filename: &str, lineno: u32) -> FrameId {
        self.intern(filename, lineno, None, None, true, 0, None, false)
    }

    /// Interns a symbolized frame, classifying it with `rules`.
    pub fn intern_sym(&mut self, f: &SymFrame, rules: &FrameRules, exe: &str) -> FrameId {
        let (filename, lineno, has_line) = if f.has_line() {
            (
                f.file.as_deref().unwrap_or_default().to_string(),
                f.line,
                true,
            )
        } else {
            let name = match (&f.function, &f.module) {
                (Some(func), Some(m)) => format!("<{func} in {}>", basename(m)),
                (Some(func), None) => format!("<{func}>"),
                (None, Some(m)) => format!("<{}+{:#x}>", basename(m), f.module_offset),
                (None, None) => format!("<unknown {:#x}>", f.module_offset),
            };
            (name, 0, false)
        };
        let system = rules.is_system(
            &filename,
            has_line,
            f.function.as_deref(),
            f.module.as_deref(),
            exe,
        );
        let weak = !system
            && !has_line
            && !rules
                .user
                .iter()
                .any(|p| pattern_hit(p, &filename, f.function.as_deref(), f.module.as_deref()));
        let id = self.intern(
            &filename,
            lineno,
            f.function.as_deref(),
            f.module.as_deref(),
            has_line,
            f.module_offset,
            f.symbol_offset,
            system,
        );
        self.frames[id as usize].weak = weak;
        id
    }
}

/// Which frames are the toolchain's and the system's rather than the
/// program's. By default such a frame is one that
/// - has no line information (unless it is in the main executable and the
///   traceback has no frame with line information: a program built without
///   -g is then still shown by its function names),
/// - has its source under /usr/include, /usr/lib, /usr/local/include,
///   /rustc/ and /rust/deps/ (Rust's std and its vendored crates), a cargo registry or git checkout (`*/.cargo/registry/*`,
///   `*/.cargo/git/*`), a rustup toolchain, or a glibc/gcc build tree
///   (`/build/glibc-*`, `/build/gcc-*`),
/// - lives in the C/C++/Rust runtimes: libc, libm, libpthread, libdl,
///   librt, ld-linux, libstdc++, libgcc_s, libunwind, the vDSO, or memtrace's
///   own libtrace.so,
/// - or is a runtime function: `std::`, `__gnu_cxx::`, `__cxxabiv1::`,
///   `alloc::`, `core::` (and `<std::…`, `<alloc::…`, `<core::…` impls),
///   `operator new`/`operator delete`, `__rdl_*`, `__rust_*`, `__rg_*`,
///   the malloc family, `_start` and `__libc_start_*`.
///
/// `user` patterns (fnmatch on the file name, module path or file name, or
/// function) exempt frames from the rule; `system` patterns add frames to it.
/// `keep_all` turns the rule off.
#[derive(Clone, Debug, Default)]
pub struct FrameRules {
    pub keep_all: bool,
    pub user: Vec<Pattern>,
    pub system: Vec<Pattern>,
}

const SYSTEM_DIRS: &[&str] = &[
    "/usr/include/",
    "/usr/lib/",
    "/usr/local/include/",
    "/rustc/",
    "/rust/deps/",
    "/build/glibc-",
    "/build/gcc-",
];
const SYSTEM_DIR_PARTS: &[&str] = &[
    "/.cargo/registry/",
    "/.cargo/git/",
    "/.rustup/toolchains/",
    "/libstdc++-v3/",
];
const SYSTEM_MODULES: &[&str] = &[
    "libc.so",
    "libc-",
    "libm.so",
    "libm-",
    "libpthread.so",
    "libpthread-",
    "libdl.so",
    "libdl-",
    "librt.so",
    "ld-linux",
    "ld-",
    "libstdc++.so",
    "libgcc_s.so",
    "libunwind",
    "libtrace.so",
    "[vdso]",
    "linux-vdso",
];
const SYSTEM_FUNC_PREFIXES: &[&str] = &[
    "std::",
    "__gnu_cxx::",
    "__cxxabiv1::",
    "__cxa_",
    "alloc::",
    "core::",
    "<std::",
    "<alloc::",
    "<core::",
    "operator new",
    "operator delete",
    "__rdl_",
    "__rust_",
    "__rg_",
    "__libc_start",
    "__libc_malloc",
    "__libc_calloc",
    "__libc_realloc",
];
const SYSTEM_FUNCS: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "reallocarray",
    "free",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "_start",
    "strdup",
    "strndup",
];

/// The qualified name of a demangled function, without the return type that
/// C++ template functions carry (`void std::vector<int>::_M_realloc_insert<..>(..)`
/// → `std::vector<int>::_M_realloc_insert<..>`) and without the parameters.
pub fn qualified_name(f: &str) -> &str {
    let b = f.as_bytes();
    let mut depth = 0i32;
    let mut end = b.len();
    let mut last_space = None;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' => depth += 1,
            b'>' => depth -= 1,
            b'(' if depth == 0 => {
                if f[..i].ends_with("operator") {
                    i += 2; // `operator()`
                    continue;
                }
                end = i;
                break;
            }
            b' ' if depth == 0 => last_space = Some(i),
            _ => {}
        }
        i += 1;
    }
    let end = end.min(b.len());
    let head = &f[..end];
    let start = match head.rfind("operator") {
        // `operator new`, `foo::operator delete[]`: keep the operator's words
        Some(op) => head[..op].rfind(' ').map(|s| s + 1).unwrap_or(0),
        None => last_space.filter(|&s| s < end).map(|s| s + 1).unwrap_or(0),
    };
    &head[start..]
}

fn pattern_hit(p: &Pattern, filename: &str, function: Option<&str>, module: Option<&str>) -> bool {
    p.matches(filename)
        || module
            .map(|m| p.matches(m) || p.matches(basename(m)))
            .unwrap_or(false)
        || function.map(|f| p.matches(f)).unwrap_or(false)
}

impl FrameRules {
    pub fn is_system(
        &self,
        filename: &str,
        has_line: bool,
        function: Option<&str>,
        module: Option<&str>,
        exe: &str,
    ) -> bool {
        if self
            .user
            .iter()
            .any(|p| pattern_hit(p, filename, function, module))
        {
            return false;
        }
        if self
            .system
            .iter()
            .any(|p| pattern_hit(p, filename, function, module))
        {
            return true;
        }
        if let Some(f) = function {
            let q = qualified_name(f);
            if SYSTEM_FUNCS.contains(&q) || SYSTEM_FUNC_PREFIXES.iter().any(|p| q.starts_with(p)) {
                return true;
            }
        }
        if let Some(m) = module {
            let b = basename(m);
            if SYSTEM_MODULES.iter().any(|p| b.starts_with(p)) {
                return true;
            }
        }
        if has_line {
            SYSTEM_DIRS.iter().any(|d| filename.starts_with(d))
                || SYSTEM_DIR_PARTS.iter().any(|d| filename.contains(d))
        } else {
            // No line information: only the main executable's own functions stay.
            module.map(|m| m != exe || exe.is_empty()).unwrap_or(true)
        }
    }
}

/// A stored traceback: frames most recent call first.
#[derive(Clone, Debug)]
pub struct Traceback {
    /// The frames kept (the user's frames unless system frames are kept).
    pub frames: Rc<[FrameId]>,
    /// The stack was deeper than the frame limit and was cut.
    pub truncated: bool,
}

/// `count` blocks of `size` bytes allocated at `traceback` (an index into
/// `Snapshot::tracebacks`). A group of count c is c tracemalloc traces.
#[derive(Clone, Copy, Debug)]
pub struct Trace {
    pub size: u64,
    pub count: u64,
    pub traceback: u32,
}

#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The file it was read from.
    pub path: String,
    pub header: Option<Header>,
    pub module_count: usize,
    pub traces: Vec<Trace>,
    pub tracebacks: Vec<Traceback>,
}

impl Snapshot {
    /// A snapshot made of raw traces `(size, count, frames most recent first)`.
    pub fn from_traces(traces: Vec<(u64, u64, Vec<FrameId>)>) -> Snapshot {
        let mut tbs: HashMap<Vec<FrameId>, u32> = HashMap::default();
        let mut tracebacks = Vec::new();
        let mut out = Vec::new();
        for (size, count, frames) in traces {
            let idx = *tbs.entry(frames.clone()).or_insert_with(|| {
                tracebacks.push(Traceback {
                    frames: frames.into(),
                    truncated: false,
                });
                tracebacks.len() as u32 - 1
            });
            out.push(Trace {
                size,
                count,
                traceback: idx,
            });
        }
        Snapshot {
            path: String::new(),
            header: None,
            module_count: 0,
            traces: out,
            tracebacks,
        }
    }

    /// `Snapshot.filter_traces(filters)`.
    pub fn filter_traces(&self, table: &FrameTable, filters: &mut FilterSet) -> Snapshot {
        if filters.is_empty() {
            return self.clone();
        }
        let keep: Vec<bool> = self
            .tracebacks
            .iter()
            .map(|tb| filters.keep(table, &tb.frames))
            .collect();
        Snapshot {
            traces: self
                .traces
                .iter()
                .filter(|t| keep[t.traceback as usize])
                .copied()
                .collect(),
            ..self.clone()
        }
    }

    /// Mean bytes between samples (the header's `sample_rate`); 0 when every
    /// allocation was recorded.
    pub fn sample_rate(&self) -> u64 {
        self.header.as_ref().map(|h| h.sample_rate).unwrap_or(0)
    }

    /// The path of the allocator that bypassed the hooks, if the header names one.
    pub fn malloc_owner(&self) -> Option<String> {
        self.header
            .as_ref()
            .filter(|h| !h.malloc_owner.is_empty())
            .map(|h| String::from_utf8_lossy(&h.malloc_owner).into_owned())
    }

    /// Total size and block count (saturating); for a sampled snapshot the
    /// rounded estimates (see `stats::estimate`).
    pub fn totals(&self) -> (u64, u64) {
        let rate = self.sample_rate();
        if rate > 0 {
            let (s, c) = self.traces.iter().fold((0f64, 0f64), |(s, c), t| {
                let (es, ec) = crate::stats::estimate(t.size, t.count, rate);
                (s + es, c + ec)
            });
            return (
                crate::stats::round_estimate(s),
                crate::stats::round_estimate(c),
            );
        }
        self.traces.iter().fold((0u64, 0u64), |(s, c), t| {
            (
                s.saturating_add(t.size.saturating_mul(t.count)),
                c.saturating_add(t.count),
            )
        })
    }
}

/// A load failure, printed as `memtrace: FILE: message`.
#[derive(Debug)]
pub struct LoadError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for LoadError {}

/// Reads and checks a dump (no symbolization).
pub fn read_dump(path: &Path) -> Result<memtrace_format::Snapshot, LoadError> {
    let err = |message: String| LoadError {
        path: path.display().to_string(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(crate::io_msg(&e)))?;
    if meta.is_dir() {
        return Err(err("is a directory".into()));
    }
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| err(crate::io_msg(&e)))?;
    if bytes.is_empty() {
        return Err(err("empty file (not a memtrace snapshot)".into()));
    }
    memtrace_format::decode(&bytes).map_err(|e| err(e.to_string()))
}

/// The hash of what `FrameTable::intern_sym` keys a symbolized frame by.
fn sym_key_hash(f: &SymFrame) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = crate::FxHasher::default();
    let has_line = f.has_line();
    has_line.hash(&mut h);
    f.function.hash(&mut h);
    f.module.hash(&mut h);
    if has_line {
        f.file.hash(&mut h);
        f.line.hash(&mut h);
    } else {
        f.module_offset.hash(&mut h);
    }
    h.finish()
}

/// Whether interned `frame` is the frame `intern_sym` makes of `f` (the
/// intern key: file and line, or for a line-less frame the module offset its
/// `<…>` name is made of; function; module).
fn same_sym(frame: &Frame, f: &SymFrame) -> bool {
    let has_line = f.has_line();
    frame.has_line == has_line
        && frame.function.as_deref() == f.function.as_deref()
        && frame.module.as_deref() == f.module.as_deref()
        && if has_line {
            frame.lineno == f.line && f.file.as_deref() == Some(frame.filename.as_str())
        } else {
            frame.module_offset == f.module_offset
        }
}

/// `table.intern_sym(f, rules, exe)`, memoized for one dump (rules and exe
/// are fixed there, so a frame interned once in it needs no second look).
/// The identity of a symbolized frame's intern key by the addresses of its
/// shared strings: equal identities mean equal keys (the symbolizer keeps
/// those strings alive and gives the same `Rc` for the same name).
fn sym_ptr_key(f: &SymFrame) -> [usize; 6] {
    let p = |s: &Option<Rc<str>>| s.as_ref().map(|s| s.as_ptr() as usize).unwrap_or(0);
    let has_line = f.has_line();
    [
        p(&f.function),
        p(&f.file),
        p(&f.module),
        f.line as usize,
        has_line as usize,
        if has_line {
            0
        } else {
            f.module_offset as usize
        },
    ]
}

fn memo_intern(
    memo: &mut HashMap<u64, FrameId>,
    by_ptr: &mut HashMap<[usize; 6], FrameId>,
    table: &mut FrameTable,
    f: &SymFrame,
    rules: &FrameRules,
    exe: &str,
) -> FrameId {
    let k = sym_ptr_key(f);
    if let Some(&id) = by_ptr.get(&k) {
        return id;
    }
    let id = memo_by_hash(memo, table, f, rules, exe);
    by_ptr.insert(k, id);
    id
}

fn memo_by_hash(
    memo: &mut HashMap<u64, FrameId>,
    table: &mut FrameTable,
    f: &SymFrame,
    rules: &FrameRules,
    exe: &str,
) -> FrameId {
    let h = sym_key_hash(f);
    if let Some(&id) = memo.get(&h) {
        if same_sym(table.frame(id), f) {
            return id;
        }
    }
    let id = table.intern_sym(f, rules, exe);
    memo.entry(h).or_insert(id);
    id
}

/// Symbolizes a decoded dump into a `Snapshot`.
pub fn symbolize_dump(
    path: &str,
    dump: &memtrace_format::Snapshot,
    table: &mut FrameTable,
    sym: &mut Symbolizer,
    rules: &FrameRules,
) -> Snapshot {
    let exe = String::from_utf8_lossy(&dump.header.exe).into_owned();
    let modules: &[Module] = &dump.modules;
    let mut by_addr: HashMap<u64, Rc<[FrameId]>> = HashMap::default();
    let mut tb_ids: HashMap<Vec<FrameId>, u32> = HashMap::default();
    let mut tracebacks: Vec<Traceback> = Vec::new();
    let mut stack_tb: HashMap<u64, u32> = HashMap::default();
    let mut memo: HashMap<u64, FrameId> = HashMap::default();
    let mut by_ptr: HashMap<[usize; 6], FrameId> = HashMap::default();
    for st in &dump.stacks {
        let mut raw: Vec<FrameId> = Vec::with_capacity(st.frames.len() * 2);
        for &addr in &st.frames {
            let ids = by_addr.entry(addr).or_insert_with(|| {
                sym.symbolize(modules, addr)
                    .iter()
                    .map(|f| memo_intern(&mut memo, &mut by_ptr, table, f, rules, &exe))
                    .collect()
            });
            raw.extend_from_slice(ids);
        }
        if raw.is_empty() {
            // As tracemalloc does for a trace with no frame at all.
            raw.push(table.intern_location("<unknown>", 0));
        }
        let frames: Vec<FrameId> = if rules.keep_all {
            raw
        } else {
            let mut user: Vec<FrameId> = raw
                .iter()
                .copied()
                .filter(|&id| !table.frame(id).system)
                .collect();
            // The main executable's line-less functions (_start, a Rust `main`
            // shim) are kept only when the program has no line info at all.
            if user.iter().any(|&id| table.frame(id).has_line) {
                user.retain(|&id| !table.frame(id).weak);
            }
            if user.is_empty() {
                raw.into_iter().take(1).collect()
            } else {
                user
            }
        };
        // Identical kept frames with different truncation flags stay apart.
        let key_frames = frames;
        let idx = match tb_ids.get(&key_frames) {
            Some(&i) if tracebacks[i as usize].truncated == st.truncated => i,
            _ => {
                tracebacks.push(Traceback {
                    frames: key_frames.clone().into(),
                    truncated: st.truncated,
                });
                let i = tracebacks.len() as u32 - 1;
                tb_ids.insert(key_frames, i);
                i
            }
        };
        stack_tb.insert(st.id, idx);
    }
    let traces = dump
        .traces
        .iter()
        .filter(|t| t.count > 0)
        .map(|t| Trace {
            size: t.size,
            count: t.count,
            traceback: stack_tb[&t.stack],
        })
        .collect();
    Snapshot {
        path: path.to_string(),
        header: Some(dump.header.clone()),
        module_count: modules.len(),
        traces,
        tracebacks,
    }
}

/// Reads, checks and symbolizes a snapshot file.
pub fn load(
    path: &Path,
    table: &mut FrameTable,
    sym: &mut Symbolizer,
    rules: &FrameRules,
) -> Result<Snapshot, LoadError> {
    let dump = read_dump(path)?;
    Ok(symbolize_dump(
        &path.display().to_string(),
        &dump,
        table,
        sym,
        rules,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified() {
        assert_eq!(
            qualified_name("void std::vector<Node*, std::allocator<Node*> >::_M_realloc_insert<Node*>(__gnu_cxx::__normal_iterator<Node**, std::vector<Node*, std::allocator<Node*> > >, Node*&&)"),
            "std::vector<Node*, std::allocator<Node*> >::_M_realloc_insert<Node*>"
        );
        assert_eq!(
            qualified_name("operator new(unsigned long)"),
            "operator new"
        );
        assert_eq!(qualified_name("make_names(int)"), "make_names");
        assert_eq!(qualified_name("malloc"), "malloc");
        assert_eq!(
            qualified_name("<alloc::vec::Vec<T> as core::clone::Clone>::clone"),
            "<alloc::vec::Vec<T> as core::clone::Clone>::clone"
        );
        assert_eq!(
            qualified_name("std::__cxx11::basic_string<char> make<int>(int)"),
            "make<int>"
        );
        assert_eq!(
            qualified_name("Foo::operator()(int) const"),
            "Foo::operator()"
        );
    }

    #[test]
    fn rules() {
        let r = FrameRules::default();
        assert!(r.is_system(
            "<x>",
            false,
            Some("void std::vector<int>::_M_realloc_insert<int>(int&&)"),
            Some("/a/app"),
            "/a/app"
        ));
        assert!(!r.is_system(
            "<x>",
            false,
            Some("make_names(int)"),
            Some("/a/app"),
            "/a/app"
        ));
        assert!(r.is_system(
            "<x>",
            false,
            Some("make_names(int)"),
            Some("/a/lib.so"),
            "/a/app"
        ));
        assert!(r.is_system(
            "/usr/include/c++/12/bits/stl_vector.h",
            true,
            Some("push_back"),
            Some("/a/app"),
            "/a/app"
        ));
        assert!(r.is_system(
            "/x/alloc.rs",
            true,
            Some("alloc::alloc::alloc"),
            Some("/a/app"),
            "/a/app"
        ));
        assert!(r.is_system(
            "/x/a.c",
            true,
            Some("f"),
            Some("/lib/x86_64-linux-gnu/libc.so.6"),
            "/a/app"
        ));
        assert!(!r.is_system("/src/a.c", true, Some("f"), Some("/a/app"), "/a/app"));
        assert!(r.is_system(
            "/root/.cargo/registry/src/x/lib.rs",
            true,
            Some("hashbrown::x"),
            Some("/a/app"),
            "/a/app"
        ));
        let r = FrameRules {
            user: vec![Pattern::new("*stl_vector.h")],
            system: vec![Pattern::new("/src/*")],
            keep_all: false,
        };
        assert!(!r.is_system(
            "/usr/include/c++/12/bits/stl_vector.h",
            true,
            Some("push_back"),
            Some("/a/app"),
            "/a/app"
        ));
        assert!(r.is_system("/src/a.c", true, Some("f"), Some("/a/app"), "/a/app"));
    }
}
