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
