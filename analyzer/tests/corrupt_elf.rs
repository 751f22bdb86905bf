//! Corrupt debug info must not crash the analyzer (issue 4): a real small
//! ELF with DWARF (gcc -g) is damaged in many ways — truncated at many
//! offsets, bits flipped in .debug_info, .debug_line, .debug_abbrev,
//! .debug_str, .eh_frame and the section headers, the section table zeroed
//! or pointed elsewhere — and `memtrace top` runs on a snapshot whose module
//! is the damaged file. Each run must end by itself (a time limit), with exit
//! 0 and only warnings on stderr, or exit 1 with one line; never a panic.
//! The module inputs the fuzzer kept (tests/data/fuzz-regressions/module/)
//! run the same way.

use memtrace_format::{encode, Header, Module, Segment, Snapshot, SnapshotKind, Stack, TraceGroup};
use object::{Object, ObjectSection, ObjectSymbol};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

const LIMIT: Duration = Duration::from_secs(20);

const SRC: &str = r#"#include <stdlib.h>
#include <string.h>
struct node { struct node *next; char name[24]; };
static inline __attribute__((always_inline)) struct node *make(const char *s) {
    struct node *n = malloc(sizeof *n);
    strncpy(n->name, s, sizeof n->name - 1);
    return n;
}
__attribute__((noinline)) struct node *push(struct node *head, const char *s) {
    struct node *n = make(s);
    n->next = head;
    return n;
}
__attribute__((noinline)) char *copy(const char *s) { return strdup(s); }
int main(int argc, char **argv) {
    struct node *h = 0;
    for (int i = 0; i < argc; i++) h = push(h, argv[i]);
    return copy(argv[0]) != 0 && h != 0;
}
"#;

/// Return addresses inside the program: every function symbol's start + 1,
/// middle and end − 1, and every call's return address (objdump).
fn addresses(elf: &[u8], path: &Path) -> Vec<u64> {
    let obj = object::File::parse(elf).unwrap();
    let mut v = Vec::new();
    for s in obj.symbols() {
        if s.kind() == object::SymbolKind::Text && s.address() != 0 {
            v.extend([
                s.address() + 1,
                s.address() + s.size() / 2 + 1,
                s.address() + s.size().max(1),
            ]);
        }
    }
    let o = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let mut after_call = false;
    for line in text.lines() {
        let t = line.trim_start();
        let Some((a, insn)) = t.split_once(":\t") else {
            continue;
        };
        let Ok(a) = u64::from_str_radix(a, 16) else {
            continue;
        };
        if after_call {
            v.push(a);
        }
        after_call = insn.starts_with("call");
    }
    v.sort();
    v.dedup();
    v
}

fn snapshot(module: &Path, addrs: &[u64]) -> Vec<u8> {
    let stacks: Vec<Stack> = addrs
        .chunks(6)
        .enumerate()
        .map(|(i, c)| Stack {
            id: i as u64 + 1,
            frames: c.to_vec(),
            truncated: false,
        })
        .collect();
    let traces = stacks
        .iter()
        .map(|s| TraceGroup {
            stack: s.id,
            size: 24 * s.id,
            count: s.id,
        })
        .collect();
    let path = module.to_str().unwrap().as_bytes().to_vec();
    encode(&Snapshot {
        header: Header {
            kind: SnapshotKind::Exit,
            pid: 1,
            frame_limit: 32,
            cmdline: vec![path.clone()],
            exe: path.clone(),
            ..Header::default()
        },
        // no build-id: the damaged file is read whatever its note says
        modules: vec![Module {
            path,
            base: 0,
            build_id: vec![],
            unloaded: false,
            segments: vec![Segment {
                vaddr: 0,
                memsz: 1 << 32,
                file_offset: 0,
                flags: 5,
            }],
        }],
        stacks,
        traces,
        ..Default::default()
    })
}

/// Runs memtrace with a time limit; returns (exit code, stderr).
fn run_limited(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (
                st.code().unwrap_or(
                    -1000 - std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0),
                ),
                err,
            );
        }
        if start.elapsed() > LIMIT {
            child.kill().ok();
            child.wait().ok();
            return (-1, format!("hung: no answer in {LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[derive(Default)]
struct Tally {
    runs: usize,
    warned: usize,
    corrupt: Vec<String>,
    kinds: std::collections::BTreeSet<String>,
}

/// Writes `bytes` as the module and checks `memtrace top` (and a traceback)
/// on a snapshot pointing into it.
fn check(dir: &Path, what: &str, bytes: &[u8], addrs: &[u64], tally: &mut Tally) {
    let module = dir.join("module.elf");
    let snap = dir.join("s.exit.snap");
    std::fs::write(&module, bytes).unwrap();
    std::fs::write(&snap, snapshot(&module, addrs)).unwrap();
    let s = snap.to_str().unwrap();
    for args in [
        vec!["top", s, "--raw", "--key", "traceback"],
        vec!["traceback", s, "--raw"],
    ] {
        let (code, err) = run_limited(&args);
        tally.runs += 1;
        assert!(
            code == 0 || code == 1,
            "{what}: {args:?}: exit {code}: {err}"
        );
        assert!(!err.contains("panicked"), "{what}: {args:?}: {err}");
        if code == 1 {
            assert_eq!(err.lines().count(), 1, "{what}: {args:?}: {err}");
        } else {
            for l in err.lines() {
                assert!(
                    l.starts_with("memtrace: warning: "),
                    "{what}: {args:?}: {err}"
                );
            }
        }
        if !err.is_empty() {
            tally.warned += 1;
            for l in err.lines() {
                tally.kinds.insert(
                    l.replace(module.to_str().unwrap(), "MODULE")
                        .replace(s, "SNAP"),
                );
            }
        }
        if err.contains("debug information is corrupt") && tally.corrupt.len() < 20 {
            tally.corrupt.push(format!("{what}: {}", err.trim()));
        }
    }
}

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    if off + v.len() <= b.len() {
        b[off..off + v.len()].copy_from_slice(v);
    }
}

#[test]
fn corrupt_module_files_never_crash() {
    let dir = tmpdir("elf");
    let (src, prog) = compile_c(&dir, "p", SRC, &["-g", "-O1"]);
    let elf = std::fs::read(&prog).unwrap();
    let addrs = addresses(&elf, &prog);
    assert!(addrs.len() > 8);
    let obj = object::File::parse(&*elf).unwrap();
    let sections: Vec<(String, usize, usize)> = obj
        .sections()
        .filter_map(|s| {
            let (off, len) = s.file_range()?;
            Some((s.name().ok()?.to_string(), off as usize, len as usize))
        })
        .collect();
    let sec = |name: &str| sections.iter().find(|s| s.0 == name).map(|s| (s.1, s.2));
    for n in [
        ".debug_info",
        ".debug_line",
        ".debug_abbrev",
        ".eh_frame",
        ".symtab",
    ] {
        assert!(sec(n).is_some(), "gcc -g left no {n}");
    }
    let mut tally = Tally::default();

    // the intact file works and names the source
    check(&dir, "intact", &elf, &addrs, &mut tally);
    assert_eq!(tally.warned, 0);
    let o = Command::new(BIN)
        .args(["top", dir.join("s.exit.snap").to_str().unwrap()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("{}:", src.display())), "{out}");

    // truncations: at 64 offsets spread over the file and at every section's edges
    let mut cuts: Vec<usize> = (0..64).map(|i| elf.len() * i / 64).collect();
    for (_, off, len) in &sections {
        cuts.extend([*off, off + 1, off + len / 2, (off + len).saturating_sub(1)]);
    }
    cuts.sort();
    cuts.dedup();
    for &n in cuts.iter().filter(|&&n| n < elf.len()) {
        check(
            &dir,
            &format!("truncated at {n}"),
            &elf[..n],
            &addrs,
            &mut tally,
        );
    }

    // bit flips and smashed bytes inside the debug sections and .eh_frame
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for name in [
        ".debug_info",
        ".debug_line",
        ".debug_abbrev",
        ".debug_str",
        ".debug_line_str",
        ".debug_aranges",
        ".debug_rnglists",
        ".eh_frame",
        ".eh_frame_hdr",
        ".symtab",
        ".strtab",
    ] {
        let Some((off, len)) = sec(name) else {
            continue;
        };
        if len == 0 {
            continue;
        }
        for round in 0..24 {
            let mut b = elf.clone();
            let flips = 1 + round % 4;
            for _ in 0..flips {
                let at = off + rng.index(len);
                if round % 3 == 2 {
                    b[at] = [0x00, 0xff, 0x80, 0x7f][rng.index(4)];
                } else {
                    b[at] ^= 1 << rng.index(8);
                }
            }
            check(
                &dir,
                &format!("{name} damaged (round {round})"),
                &b,
                &addrs,
                &mut tally,
            );
        }
        // the whole section zeroed, then filled with 0xff
        for fill in [0x00u8, 0xff] {
            let mut b = elf.clone();
            b[off..off + len].iter_mut().for_each(|x| *x = fill);
            check(
                &dir,
                &format!("{name} filled with {fill:#x}"),
                &b,
                &addrs,
                &mut tally,
            );
        }
    }

    // the section header table (ELF64 little-endian: e_shoff at 0x28,
    // e_shentsize 0x3a, e_shnum 0x3c, e_shstrndx 0x3e; sh_offset +0x18, sh_size +0x20)
    let shoff = u64::from_le_bytes(elf[0x28..0x30].try_into().unwrap()) as usize;
    let shnum = u16::from_le_bytes(elf[0x3c..0x3e].try_into().unwrap()) as usize;
    {
        let mut b = elf.clone();
        b[shoff..shoff + shnum * 64].iter_mut().for_each(|x| *x = 0);
        check(&dir, "section table zeroed", &b, &addrs, &mut tally);
        let mut b = elf.clone();
        put(&mut b, 0x28, &(elf.len() as u64 + 100).to_le_bytes());
        check(&dir, "e_shoff past the end", &b, &addrs, &mut tally);
        let mut b = elf.clone();
        put(&mut b, 0x28, &u64::MAX.to_le_bytes());
        check(&dir, "e_shoff = 2^64-1", &b, &addrs, &mut tally);
        let mut b = elf.clone();
        put(&mut b, 0x3c, &0xffffu16.to_le_bytes());
        check(&dir, "e_shnum = 65535", &b, &addrs, &mut tally);
        let mut b = elf.clone();
        put(&mut b, 0x3e, &0xfffeu16.to_le_bytes());
        check(&dir, "e_shstrndx out of range", &b, &addrs, &mut tally);
        let mut b = elf.clone();
        put(&mut b, 0x3a, &0x10u16.to_le_bytes());
        check(&dir, "e_shentsize = 16", &b, &addrs, &mut tally);
    }
    for i in 1..shnum {
        let h = shoff + i * 64;
        for (field, value) in [
            (0x18, u64::MAX / 2),
            (0x20, u64::MAX),
            (0x20, elf.len() as u64 * 4),
            (0x18, 0),
            (0x20, 0),
        ] {
            let mut b = elf.clone();
            put(&mut b, h + field, &value.to_le_bytes());
            check(
                &dir,
                &format!("section {i} field {field:#x} = {value:#x}"),
                &b,
                &addrs,
                &mut tally,
            );
        }
        // sh_type flipped, sh_flags with SHF_COMPRESSED, sh_link/sh_info wild
        for (field, bytes) in [
            (0x4, vec![0xff, 0xff, 0xff, 0x6f]),
            (0x8, vec![0x00, 0x08, 0, 0]),
            (0x28, vec![0xff, 0xff, 0, 0]),
            (0x30, vec![0x40, 0, 0, 0, 0, 0, 0, 0x80]),
        ] {
            let mut b = elf.clone();
            put(&mut b, h + field, &bytes);
            check(
                &dir,
                &format!("section {i} field {field:#x} smashed"),
                &b,
                &addrs,
                &mut tally,
            );
        }
    }
    // random bit flips anywhere in the file
    for round in 0..48 {
        let mut b = elf.clone();
        for _ in 0..(1 + round % 8) {
            let at = rng.index(b.len());
            b[at] ^= 1 << rng.index(8);
        }
        check(
            &dir,
            &format!("random flips (round {round})"),
            &b,
            &addrs,
            &mut tally,
        );
    }

    eprintln!(
        "corrupt_elf: {} runs, {} with warnings; warnings seen:\n  {}\ncaught reader failures: {}",
        tally.runs,
        tally.warned,
        tally.kinds.iter().cloned().collect::<Vec<_>>().join("\n  "),
        if tally.corrupt.is_empty() {
            "none".to_string()
        } else {
            format!("\n  {}", tally.corrupt.join("\n  "))
        }
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Module files the fuzzer kept: each must symbolize without a crash.
#[test]
fn fuzz_module_regressions() {
    let dir = tmpdir("fuzzmod");
    let inputs =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-regressions/module");
    let mut tally = Tally::default();
    let mut n = 0;
    for e in std::fs::read_dir(&inputs).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let mut addrs: Vec<u64> = vec![1, 0x1001, 0x1139, 0x1150, 0x1180, 0x2000, 0x401136];
        if let Ok(obj) = object::File::parse(&*bytes) {
            for s in obj.symbols().chain(obj.dynamic_symbols()).take(24) {
                addrs.extend([
                    s.address().wrapping_add(1),
                    s.address().wrapping_add(s.size() / 2 + 1),
                ]);
            }
        }
        addrs.retain(|&a| a != 0);
        check(&dir, &p.display().to_string(), &bytes, &addrs, &mut tally);
        n += 1;
    }
    assert!(n > 0);
    // crash-compressed-section-claims-72PB.elf: a SHF_COMPRESSED header claiming 72 PB sized
    // an allocation from the file (found by the fuzzer); now refused with a warning
    assert!(
        tally
            .kinds
            .iter()
            .any(|k| k.contains("compressed section .debug_info claims 72697837388759460 bytes")),
        "{:?}",
        tally.kinds
    );
    eprintln!(
        "fuzz regressions: {n} module files; warnings seen:\n  {}",
        tally.kinds.iter().cloned().collect::<Vec<_>>().join("\n  ")
    );
    std::fs::remove_dir_all(&dir).ok();
}
