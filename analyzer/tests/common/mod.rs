//! Helpers shared by the analyzer's integration tests: the binary under test,
//! scratch directories, and running it.
#![allow(dead_code)] // each test file uses its own subset

use memtrace_format::{Module, Segment};
use object::{Object, ObjectSegment};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_memtrace");

/// Writes `src` to `dir/name.c` and compiles it with gcc `flags` into
/// `dir/name`; returns (source path, executable).
pub fn compile_c(dir: &Path, name: &str, src: &str, flags: &[&str]) -> (PathBuf, PathBuf) {
    let srcp = dir.join(format!("{name}.c"));
    std::fs::write(&srcp, src).unwrap();
    let exe = dir.join(name);
    let o = Command::new("gcc")
        .args(flags)
        .arg("-o")
        .arg(&exe)
        .arg(&srcp)
        .output()
        .expect("gcc runs");
    assert!(
        o.status.success(),
        "gcc {flags:?} {}: {}",
        srcp.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    (srcp, exe)
}

/// A fresh, empty scratch directory for this test process.
pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("memtrace-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What a run of the binary gave.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `memtrace ARGS...` to completion.
pub fn run(args: &[&str]) -> Out {
    let o = Command::new(BIN).args(args).output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A deterministic xorshift generator (the same sequence on every run).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform-ish in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// An index into something of length `len` (0 if it is empty).
    pub fn index(&mut self, len: usize) -> usize {
        (self.next() % len.max(1) as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.index(v.len())]
    }
}

/// A call instruction: the function containing it, its return address and its target text.
#[derive(Debug)]
pub struct Call {
    pub func: String,
    pub ret: u64,
    pub target: String,
}

/// Every call instruction of `binary` (`objdump -d`), in address order.
pub fn calls(binary: &Path) -> Vec<Call> {
    let o = Command::new("objdump")
        .args(["-d", "-C", "-w", "--no-show-raw-insn"])
        .arg(binary)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let mut out = Vec::new();
    let mut func = String::new();
    let mut pending: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_suffix(">:") {
            if let Some((_, name)) = rest.split_once(" <") {
                func = name.to_string();
                pending = None;
                continue;
            }
        }
        let t = line.trim_start();
        let Some((addr, insn)) = t.split_once(":\t") else {
            continue;
        };
        let Ok(addr) = u64::from_str_radix(addr, 16) else {
            continue;
        };
        if let Some((f, target)) = pending.take() {
            out.push(Call {
                func: f,
                ret: addr,
                target,
            });
        }
        if insn.starts_with("call") {
            pending = Some((func.clone(), insn.to_string()));
        }
    }
    out
}

/// Return addresses of the calls to `target` made in `func`, in address order.
pub fn rets(binary: &Path, func: &str, target: &str) -> Vec<u64> {
    let out: Vec<u64> = calls(binary)
        .into_iter()
        .filter(|c| c.func == func && c.target.contains(target))
        .map(|c| c.ret)
        .collect();
    assert!(!out.is_empty(), "no call to {target} in {func}");
    out
}

/// The module map entry of an ELF file loaded at `base`: its path, build
/// id and PT_LOAD segments (synthetic snapshots point into real binaries).
pub fn module_of(path: &Path, base: u64) -> Module {
    let data = std::fs::read(path).unwrap();
    let obj = object::File::parse(&*data).unwrap();
    let segments = obj
        .segments()
        .map(|s| Segment {
            vaddr: s.address(),
            memsz: s.size(),
            file_offset: s.file_range().0,
            flags: match s.flags() {
                object::SegmentFlags::Elf { p_flags, .. } => p_flags.0,
                _ => 0,
            },
        })
        .collect();
    Module {
        path: path.to_str().unwrap().as_bytes().to_vec(),
        base,
        build_id: obj.build_id().unwrap().unwrap_or(&[]).to_vec(),
        unloaded: false,
        segments,
    }
}
