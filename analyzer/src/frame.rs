//! Frames and the rules that classify them: a symbolized return address
//! becomes an interned `Frame` (tracemalloc's `(filename, lineno)` plus what
//! native code has besides: the function and the module), and `FrameRules`
//! decide which frames are the toolchain's and the system's.
//!
//! A frame without line information gets a synthetic, `<…>`-bracketed file
//! name — `<function in module>` or `<module+0xoffset>` — with line 0, the
//! way tracemalloc names what it cannot place (`<unknown>`); linecache skips
//! such names.
//!
//! "The user's line, not the allocator's": unless told to keep them, the
//! frames that belong to the toolchain and the system are dropped before
//! anything else sees the traceback (see `FrameRules`; the snapshot applies
//! them).

use crate::pattern::Pattern;
use crate::symbolize::SymFrame;
use crate::util::FxHashMap as HashMap;

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
    pub fn intern_sym(&mut self, f: &SymFrame, rules: &FrameRules) -> FrameId {
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
        );
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
        id
    }
}

/// Which frames are the toolchain's and the system's rather than the
/// program's: those `SYSTEM_FRAMES` names, by where a frame is — never by
/// whether it has line information. A program's own frames without lines
/// (node's and V8's, a distro binary's) stay, named by function; a runtime
/// library's frames go whether or not its debug info is installed.
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

/// How one entry of `SYSTEM_FRAMES` recognises a frame.
#[derive(Clone, Copy, Debug)]
pub enum SystemMatch {
    /// The module's file name starts with this.
    Module(&'static str),
    /// The source file starts with this (frames with line information).
    SourceDir(&'static str),
    /// The source file's path contains this.
    SourcePart(&'static str),
    /// The source file's name is this.
    SourceFile(&'static str),
    /// The function's qualified name (no return type, no parameters) is this.
    Function(&'static str),
    /// The function's qualified name starts with this.
    FunctionPrefix(&'static str),
}

/// The one list of what is not the program's own code, in groups with the
/// reason for each. `memtrace --help` and docs/CLI.md print it.
pub const SYSTEM_FRAMES: &[(&str, &[SystemMatch])] = {
    use SystemMatch::*;
    &[
        (
            "the C, C++ and Rust runtimes' modules and memtrace's own",
            &[
                Module("libc.so"),
                Module("libc-"),
                Module("libm.so"),
                Module("libm-"),
                Module("libpthread.so"),
                Module("libpthread-"),
                Module("libdl.so"),
                Module("libdl-"),
                Module("librt.so"),
                Module("ld-linux"),
                Module("ld-"),
                Module("libstdc++.so"),
                Module("libgcc_s.so"),
                Module("libunwind"),
                Module("libtrace.so"),
                Module("[vdso]"),
                Module("linux-vdso"),
            ],
        ),
        (
            // System headers, Rust's std and vendored crates, cargo registries
            // and git checkouts, rustup toolchains, glibc's and gcc's build trees.
            "toolchain and library sources",
            &[
                SourceDir("/usr/include/"),
                SourceDir("/usr/lib/"),
                SourceDir("/usr/local/include/"),
                SourceDir("/rustc/"),
                SourceDir("/rust/deps/"),
                SourceDir("/build/glibc-"),
                SourceDir("/build/gcc-"),
                SourcePart("/.cargo/registry/"),
                SourcePart("/.cargo/git/"),
                SourcePart("/.rustup/toolchains/"),
                SourcePart("/libstdc++-v3/"),
            ],
        ),
        (
            "runtime functions: C++ and Rust standard libraries, program start",
            &[
                FunctionPrefix("std::"),
                FunctionPrefix("__gnu_cxx::"),
                FunctionPrefix("__cxxabiv1::"),
                FunctionPrefix("__cxa_"),
                FunctionPrefix("alloc::"),
                FunctionPrefix("core::"),
                FunctionPrefix("hashbrown::"),
                FunctionPrefix("<std::"),
                FunctionPrefix("<alloc::"),
                FunctionPrefix("<core::"),
                FunctionPrefix("<hashbrown::"),
                FunctionPrefix("__rdl_"),
                FunctionPrefix("__rust_"),
                FunctionPrefix("__rg_"),
                FunctionPrefix("__libc_start"),
                Function("_start"),
            ],
        ),
        (
            "the malloc family and C++'s operators",
            &[
                Function("malloc"),
                Function("calloc"),
                Function("realloc"),
                Function("reallocarray"),
                Function("free"),
                Function("posix_memalign"),
                Function("aligned_alloc"),
                Function("memalign"),
                Function("valloc"),
                Function("pvalloc"),
                Function("strdup"),
                Function("strndup"),
                FunctionPrefix("__libc_malloc"),
                FunctionPrefix("__libc_calloc"),
                FunctionPrefix("__libc_realloc"),
                FunctionPrefix("operator new"),
                FunctionPrefix("operator delete"),
            ],
        ),
        (
            // gcc/gdb/binutils' xmalloc, OpenSSL, GLib, CPython, PostgreSQL's
            // memory contexts.
            "allocator wrappers",
            &[
                Function("xmalloc"),
                Function("xcalloc"),
                Function("xrealloc"),
                Function("xstrdup"),
                Function("CRYPTO_malloc"),
                Function("CRYPTO_zalloc"),
                Function("CRYPTO_realloc"),
                Function("CRYPTO_clear_realloc"),
                FunctionPrefix("g_malloc"),
                FunctionPrefix("g_realloc"),
                FunctionPrefix("g_try_malloc"),
                FunctionPrefix("g_try_realloc"),
                FunctionPrefix("PyMem_"),
                FunctionPrefix("_PyMem_"),
                Function("PyObject_Malloc"),
                Function("PyObject_Calloc"),
                Function("PyObject_Realloc"),
                Function("_PyObject_Malloc"),
                Function("_PyObject_Calloc"),
                Function("_PyObject_Realloc"),
                FunctionPrefix("pymalloc_"),
                SourceFile("obmalloc.c"),
                FunctionPrefix("palloc"),
                Function("repalloc"),
                Function("pstrdup"),
                Function("pnstrdup"),
                FunctionPrefix("MemoryContext"),
                FunctionPrefix("AllocSet"),
                FunctionPrefix("GenerationAlloc"),
                FunctionPrefix("SlabAlloc"),
            ],
        ),
    ]
};

impl SystemMatch {
    fn hits(
        &self,
        filename: &str,
        has_line: bool,
        function: Option<&str>,
        module: Option<&str>,
    ) -> bool {
        match *self {
            SystemMatch::Module(p) => module.is_some_and(|m| basename(m).starts_with(p)),
            SystemMatch::SourceDir(p) => has_line && filename.starts_with(p),
            SystemMatch::SourcePart(p) => has_line && filename.contains(p),
            SystemMatch::SourceFile(p) => has_line && basename(filename) == p,
            SystemMatch::Function(p) => function.is_some_and(|f| qualified_name(f) == p),
            SystemMatch::FunctionPrefix(p) => {
                function.is_some_and(|f| qualified_name(f).starts_with(p))
            }
        }
    }

    /// How `--help` and docs/CLI.md show the entry.
    pub fn describe(&self) -> String {
        match *self {
            SystemMatch::Module(p) => format!("{p}*"),
            SystemMatch::SourceDir(p) => format!("{p}*"),
            SystemMatch::SourcePart(p) => format!("*{p}*"),
            SystemMatch::SourceFile(p) => p.to_string(),
            SystemMatch::Function(p) => p.to_string(),
            SystemMatch::FunctionPrefix(p) => format!("{p}*"),
        }
    }
}

/// `SYSTEM_FRAMES` as text: one paragraph a group, the reason then the entries.
pub fn describe_system_frames(indent: &str, width: usize) -> String {
    let mut out = String::new();
    for (why, entries) in SYSTEM_FRAMES {
        let mut line = format!("{indent}- {why}:");
        for (i, e) in entries.iter().enumerate() {
            let sep = if i + 1 == entries.len() { ";" } else { "," };
            let word = format!(" {}{sep}", e.describe());
            if line.len() + word.len() > width {
                out.push_str(line.trim_end());
                out.push('\n');
                line = format!("{indent} ");
            }
            line.push_str(&word);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

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
        SYSTEM_FRAMES
            .iter()
            .flat_map(|(_, entries)| entries.iter())
            .any(|e| e.hits(filename, has_line, function, module))
    }
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
            Some("/a/app")
        ));
        assert!(!r.is_system("<x>", false, Some("make_names(int)"), Some("/a/app")));
        // A line-less frame of a library of the program's is the program's
        // (issue 11: node's own frames have no lines).
        assert!(!r.is_system("<x>", false, Some("make_names(int)"), Some("/a/lib.so")));
        assert!(r.is_system(
            "/usr/include/c++/12/bits/stl_vector.h",
            true,
            Some("push_back"),
            Some("/a/app")
        ));
        assert!(r.is_system(
            "/x/alloc.rs",
            true,
            Some("alloc::alloc::alloc"),
            Some("/a/app")
        ));
        assert!(r.is_system(
            "/x/a.c",
            true,
            Some("f"),
            Some("/lib/x86_64-linux-gnu/libc.so.6")
        ));
        assert!(!r.is_system("/src/a.c", true, Some("f"), Some("/a/app")));
        assert!(r.is_system(
            "/root/.cargo/registry/src/x/lib.rs",
            true,
            Some("hashbrown::x"),
            Some("/a/app")
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
            Some("/a/app")
        ));
        assert!(r.is_system("/src/a.c", true, Some("f"), Some("/a/app")));
    }

    #[test]
    fn placed_by_where_not_by_line_information() {
        let r = FrameRules::default();
        let node = Some("/usr/bin/node");
        let f = "node::NodeArrayBufferAllocator::AllocateUninitialized(unsigned long)";
        assert!(!r.is_system("<x>", false, Some(f), node));
        assert!(!r.is_system("<x>", false, None, node));
        assert!(r.is_system(
            "<x>",
            false,
            Some("calloc"),
            Some("/usr/lib/x86_64-linux-gnu/libc.so.6")
        ));
        assert!(r.is_system(
            "<x>",
            false,
            Some("anything"),
            Some("/usr/lib/x86_64-linux-gnu/libstdc++.so.6")
        ));
    }

    #[test]
    fn well_known_wrappers_are_system() {
        let r = FrameRules::default();
        for f in [
            "xmalloc",
            "xrealloc",
            "CRYPTO_zalloc",
            "g_malloc0_n",
            "g_realloc",
            "PyMem_Malloc",
            "_PyObject_Malloc",
            "pymalloc_alloc",
            "palloc0",
            "MemoryContextAllocZero",
            "AllocSetAlloc",
            "hashbrown::raw::RawTable<T,A>::reserve_rehash",
        ] {
            assert!(
                r.is_system("<x>", false, Some(f), Some("/usr/bin/app")),
                "{f}"
            );
        }
        assert!(r.is_system(
            "/src/Objects/obmalloc.c",
            true,
            Some("f"),
            Some("/usr/bin/python3.11")
        ));
        assert!(!r.is_system(
            "/src/Objects/listobject.c",
            true,
            Some("list_resize"),
            Some("/usr/bin/python3.11")
        ));
        assert!(!r.is_system(
            "<x>",
            false,
            Some("xmalloc_wrapper_of_mine"),
            Some("/a/app")
        ));
    }

    /// docs/CLI.md lists every entry of the one list.
    #[test]
    fn cli_doc_lists_every_system_entry() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CLI.md"))
            .unwrap();
        for (_, entries) in SYSTEM_FRAMES {
            for e in entries.iter() {
                let d = e.describe();
                assert!(
                    doc.contains(&format!("`{d}`")),
                    "docs/CLI.md does not list `{d}`"
                );
            }
        }
    }
}
