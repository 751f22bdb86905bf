//! The real `memtrace` binary over synthetic snapshots: symbolization of C
//! and C++ programs compiled here (checked against binutils' `addr2line -i`),
//! the user's-line rule, the text and JSON outputs, and bad input.
//!
//! Snapshots are built with `memtrace_format::encode`, so these tests do not
//! depend on libtrace.so: each program is mapped at base 0 with segments
//! copied from its PT_LOAD headers, and its stacks hold the real return
//! addresses of its call instructions (found with `objdump -d`).

use memtrace_format::{encode, Header, Module, SnapshotKind, Stack, TraceGroup};
use object::{Object, ObjectSymbol};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::*;

fn compile(dir: &Path, name: &str, src: &str, compiler: &str, flags: &[&str]) -> PathBuf {
    let ext = if compiler == "g++" { "cc" } else { "c" };
    let srcp = dir.join(format!("{name}.{ext}"));
    std::fs::write(&srcp, src).unwrap();
    let out = dir.join(name);
    let st = Command::new(compiler)
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&srcp)
        .status()
        .unwrap();
    assert!(st.success(), "{compiler} failed");
    out
}

fn ret_of(calls: &[Call], func: &str, target: &str) -> u64 {
    calls
        .iter()
        .find(|c| c.func == func && c.target.contains(target))
        .unwrap_or_else(|| {
            panic!(
                "no call to {target} in {func}: {:?}",
                calls.iter().filter(|c| c.func == func).collect::<Vec<_>>()
            )
        })
        .ret
}

fn symbol_addr(path: &Path, name: &str) -> u64 {
    let data = std::fs::read(path).unwrap();
    let obj = object::File::parse(&*data).unwrap();
    obj.dynamic_symbols()
        .chain(obj.symbols())
        .find(|s| s.name() == Ok(name))
        .unwrap()
        .address()
}

fn header(exe: &Path) -> Header {
    Header {
        kind: SnapshotKind::Signal,
        index: 1,
        pid: 4242,
        time_ns: 1_700_000_000_123_456_789,
        seq: 10,
        frame_limit: 32,
        traced_bytes: 50000,
        peak_bytes: 90000,
        alloc_count: 2000,
        free_count: 997,
        sample_rate: 0,
        cmdline: vec![
            exe.to_str().unwrap().as_bytes().to_vec(),
            b"--n".to_vec(),
            b"two words".to_vec(),
        ],
        exe: exe.to_str().unwrap().as_bytes().to_vec(),
        malloc_owner: Vec::new(),
    }
}

fn write_snap(
    path: &Path,
    exe: &Path,
    modules: Vec<Module>,
    stacks: Vec<Vec<u64>>,
    traces: Vec<(u64, u64, u64)>,
) {
    let s = memtrace_format::Snapshot {
        header: header(exe),
        modules,
        stacks: stacks
            .into_iter()
            .enumerate()
            .map(|(i, f)| Stack {
                id: i as u64 + 1,
                frames: f,
                truncated: false,
            })
            .collect(),
        traces: traces
            .into_iter()
            .map(|(stack, size, count)| TraceGroup { stack, size, count })
            .collect(),
        ..Default::default()
    };
    std::fs::write(path, encode(&s)).unwrap();
}

/// binutils' answer for a return address: (function, file:line) innermost first.
fn addr2line(binary: &Path, ret: u64) -> Vec<(String, String)> {
    let o = Command::new("addr2line")
        .args(["-f", "-i", "-C", "-e"])
        .arg(binary)
        .arg(format!("{:#x}", ret - 1))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(2)
        .map(|c| {
            let loc = c[1].split(" (discriminator").next().unwrap().to_string();
            (c[0].to_string(), loc)
        })
        .collect()
}

const C_SRC: &str = r#"#include <stdlib.h>
#include <string.h>

static inline __attribute__((always_inline)) void *grow(int n) {
    return malloc(n * 2);
}
__attribute__((noinline)) void *alloc_a(int n) {
    void *p = malloc(n);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}
__attribute__((noinline)) void *alloc_b(int n) {
    void *p = grow(n);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}
int main(int argc, char **argv) {
    void *volatile a = alloc_a(argc * 1000);
    void *volatile b = alloc_b(argc);
    (void)argv;
    return a == b;
}
"#;

const LIBC_BASE: u64 = 0x7f00_0000_0000;

/// A copy of the system's libc without build-id note or debug link, so that
/// its frames have no line information whether or not libc6-dbg is installed.
fn bare_libc(dir: &Path) -> PathBuf {
    let sys = std::fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
    let out = dir.join("libc.so.6");
    let st = Command::new("objcopy")
        .args([
            "--remove-section",
            ".note.gnu.build-id",
            "--remove-section",
            ".gnu_debuglink",
        ])
        .arg(&sys)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    out
}

struct CFixture {
    dir: PathBuf,
    prog: PathBuf,
    src: String,
    calls: Vec<Call>,
    libc: String,
    modules: Vec<Module>,
    malloc_in_libc: u64,
}

fn c_fixture(tag: &str, opt: &str) -> CFixture {
    let dir = tmpdir(tag);
    let prog = compile(&dir, "prog", C_SRC, "gcc", &["-g", opt]);
    let calls = calls(&prog);
    let libc = bare_libc(&dir);
    let modules = vec![module_of(&prog, 0), module_of(&libc, LIBC_BASE)];
    let malloc_in_libc = LIBC_BASE + symbol_addr(&libc, "malloc") + 0x20;
    let src = dir.join("prog.c").display().to_string();
    CFixture {
        dir,
        prog,
        src,
        calls,
        libc: libc.display().to_string(),
        modules,
        malloc_in_libc,
    }
}

impl CFixture {
    /// Stacks: 1 = malloc ← alloc_a ← main, 2 = malloc ← (grow inlined in) alloc_b ← main.
    fn stacks(&self) -> Vec<Vec<u64>> {
        vec![
            vec![
                self.malloc_in_libc,
                ret_of(&self.calls, "alloc_a", "malloc"),
                ret_of(&self.calls, "main", "alloc_a"),
            ],
            vec![
                self.malloc_in_libc,
                ret_of(&self.calls, "alloc_b", "malloc"),
                ret_of(&self.calls, "main", "alloc_b"),
            ],
        ]
    }
}

fn check_c_program(opt: &str) {
    let fx = c_fixture(&format!("c{opt}"), opt);
    let snap = fx.dir.join("k.1.snap");
    write_snap(
        &snap,
        &fx.prog,
        fx.modules.clone(),
        fx.stacks(),
        vec![(1, 1000, 3), (2, 48, 1000)],
    );
    let s = snap.to_str().unwrap();

    // top: the user's line, not malloc's
    let o = run(&["top", s]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stderr, "");
    let want = format!(
        "[ Top 10 ]\n{src}:5: size=46.9 KiB, count=1000, average=48 B\n{src}:8: size=3000 B, count=3, average=1000 B\n",
        src = fx.src
    );
    assert_eq!(o.stdout, want);

    // traceback: inline frame expanded, most recent first, with source lines
    let o = run(&["traceback", s]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let want = format!(
        "1000 memory blocks: 46.9 KiB\n  File \"{src}\", line 5\n    return malloc(n * 2);\n  File \"{src}\", line 13\n    void *p = grow(n);\n  File \"{src}\", line 19\n    void *volatile b = alloc_b(argc);\n",
        src = fx.src
    );
    assert_eq!(o.stdout, want);

    // the same frames as binutils' addr2line -i, for every user address
    let o = run(&["traceback", s, "--raw", "--json"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let ours: Vec<(String, String)> = v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["has_line"].as_bool().unwrap())
        .map(|f| {
            (
                f["function"].as_str().unwrap().to_string(),
                format!("{}:{}", f["filename"].as_str().unwrap(), f["lineno"]),
            )
        })
        .collect();
    let stacks = fx.stacks();
    let theirs: Vec<(String, String)> = stacks[1][1..]
        .iter()
        .flat_map(|&a| addr2line(&fx.prog, a))
        .collect();
    assert_eq!(ours, theirs);
    // the libc frame is there with --raw, named by its dynamic symbol
    let first = &v["frames"][0];
    assert_eq!(first["function"], "malloc");
    assert_eq!(first["module"], fx.libc.as_str());
    assert_eq!(first["has_line"], false);
    assert_eq!(first["system"], true);

    // --raw: the most recent frame is libc's malloc
    let o = run(&["top", s, "--raw"]);
    assert_eq!(
        o.stdout,
        "[ Top 10 ]\n<malloc in libc.so.6>:0: size=49.8 KiB, count=1003, average=51 B\n"
    );
    let o = run(&["traceback", s, "--raw", "--frames", "1"]);
    assert!(
        o.stdout.starts_with(&format!(
            "1000 memory blocks: 46.9 KiB\n  File \"{}\", function malloc+0x20\n",
            fx.libc
        )),
        "{}",
        o.stdout
    );

    // keys
    let o = run(&["top", s, "--key", "function"]);
    assert_eq!(
        o.stdout,
        format!(
            "[ Top 10 ]\ngrow ({src}): size=46.9 KiB, count=1000, average=48 B\nalloc_a ({src}): size=3000 B, count=3, average=1000 B\n",
            src = fx.src
        )
    );
    let o = run(&["top", s, "--key", "filename"]);
    assert_eq!(
        o.stdout,
        format!(
            "[ Top 10 ]\n{}:0: size=49.8 KiB, count=1003, average=51 B\n",
            fx.src
        )
    );
    let o = run(&["top", s, "--key", "traceback", "--limit", "1"]);
    assert_eq!(
        o.stdout,
        format!(
            "[ Top 1 ]\n{}:5: size=46.9 KiB, count=1000, average=48 B\n",
            fx.src
        )
    );
    let o = run(&["top", s, "--cumulative"]);
    assert_eq!(
        o.stdout,
        format!(
            "[ Top 10 ]\n{src}:19: size=46.9 KiB, count=1000, average=48 B\n{src}:13: size=46.9 KiB, count=1000, average=48 B\n{src}:5: size=46.9 KiB, count=1000, average=48 B\n{src}:18: size=3000 B, count=3, average=1000 B\n{src}:8: size=3000 B, count=3, average=1000 B\n",
            src = fx.src
        )
    );

    // filters: on file, line, function, module
    let o = run(&["top", s, "--include", &format!("{}:8", fx.src)]);
    assert_eq!(
        o.stdout,
        format!(
            "[ Top 10 ]\n{}:8: size=3000 B, count=3, average=1000 B\n",
            fx.src
        )
    );
    let o = run(&["top", s, "--exclude", "grow"]);
    assert_eq!(
        o.stdout,
        format!(
            "[ Top 10 ]\n{}:8: size=3000 B, count=3, average=1000 B\n",
            fx.src
        )
    );
    let o = run(&["top", s, "--include", "alloc_b", "--all-frames"]);
    assert_eq!(
        o.stdout,
        format!(
            "[ Top 10 ]\n{}:5: size=46.9 KiB, count=1000, average=48 B\n",
            fx.src
        )
    );
    let o = run(&["top", s, "--raw", "--exclude", "libc.so*"]);
    assert_eq!(o.stdout, "[ Top 10 ]\n");
    // --system adds to the rule: grow's frame goes, alloc_b's line shows
    let o = run(&["top", s, "--system", "grow", "--limit", "1"]);
    assert_eq!(
        o.stdout,
        format!(
            "[ Top 1 ]\n{}:13: size=46.9 KiB, count=1000, average=48 B\n",
            fx.src
        )
    );
    // --user takes from it: libc's malloc is the program's now
    let o = run(&["top", s, "--user", "malloc", "--limit", "1"]);
    assert_eq!(
        o.stdout,
        "[ Top 1 ]\n<malloc in libc.so.6>:0: size=49.8 KiB, count=1003, average=51 B\n"
    );

    // pretty
    let o = run(&["top", s, "--pretty", "--limit", "1"]);
    assert_eq!(
        o.stdout,
        "Top 1 lines\n#1: k/prog.c:5: 46.9 KiB\n    return malloc(n * 2);\n1 other: 2.9 KiB\nTotal allocated size: 49.8 KiB\n"
            .replace("k/", &format!("{}/", fx.dir.file_name().unwrap().to_str().unwrap()))
    );

    // diff: the second snapshot frees alloc_a's blocks and adds more of alloc_b's
    let snap2 = fx.dir.join("k.2.snap");
    write_snap(
        &snap2,
        &fx.prog,
        fx.modules.clone(),
        fx.stacks(),
        vec![(2, 48, 1500)],
    );
    let o = run(&["diff", s, snap2.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        format!(
            "[ Top 10 differences ]\n{src}:5: size=70.3 KiB (+23.4 KiB), count=1500 (+500), average=48 B\n{src}:8: size=0 B (-3000 B), count=0 (-3)\n",
            src = fx.src
        )
    );
    let o = run(&["diff", s, snap2.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["statistics"][1]["size_diff"], -3000);
    assert_eq!(v["statistics"][1]["average"], Value::Null);

    // JSON top
    let o = run(&["top", s, "--json"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["statistics"][0]["size"], 48000);
    assert_eq!(v["statistics"][0]["count"], 1000);
    assert_eq!(v["statistics"][0]["frames"][0]["lineno"], 5);
    assert_eq!(v["total"]["size"], 51000);

    std::fs::remove_dir_all(&fx.dir).ok();
}

#[test]
fn c_program_o0() {
    check_c_program("-O0");
}

#[test]
fn c_program_o2() {
    check_c_program("-O2");
}

#[test]
fn stats_command() {
    let fx = c_fixture("stats", "-O0");
    let snap = fx.dir.join("k.1.snap");
    write_snap(
        &snap,
        &fx.prog,
        fx.modules.clone(),
        fx.stacks(),
        vec![(1, 1000, 3), (2, 48, 1000)],
    );
    let o = run(&["stats", snap.to_str().unwrap()]);
    assert_eq!(o.code, 0);
    let p = fx.prog.display();
    let want = format!(
        "Snapshot:       {s}: snapshot #1 (on signal)\n\
         Process:        pid 4242\n\
         Command line:   {p} --n 'two words'\n\
         Executable:     {p}\n\
         Time:           2023-11-14 22:13:20.123456789 UTC\n\
         Traced memory:  current=48.8 KiB (50000 B), peak=87.9 KiB (90000 B)\n\
         Live blocks:    1003 (49.8 KiB, 51000 B) from 2 stacks\n\
         Allocations:    2000 seen\n\
         Frees:          997 seen\n\
         Frame limit:    32 (0 stacks truncated)\n\
         Sampling:       every allocation recorded\n\
         Modules:        2\n",
        s = snap.display()
    );
    assert_eq!(o.stdout, want);
    let o = run(&["stats", snap.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["traced_memory"]["peak"], 90000);
    assert_eq!(v["live"]["blocks"], 1003);
    std::fs::remove_dir_all(&fx.dir).ok();
}

#[test]
fn changed_and_missing_modules() {
    let fx = c_fixture("changed", "-O0");
    let mut modules = fx.modules.clone();
    modules[0].build_id = vec![1, 2, 3, 4];
    let a = fx.dir.join("k.1.snap");
    let b = fx.dir.join("k.2.snap");
    write_snap(
        &a,
        &fx.prog,
        modules.clone(),
        fx.stacks(),
        vec![(1, 1000, 3)],
    );
    write_snap(&b, &fx.prog, modules, fx.stacks(), vec![(1, 1000, 4)]);
    let o = run(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(o.code, 0);
    assert_eq!(
        o.stderr,
        format!("memtrace: warning: {} changed since the snapshot (build-id differs); its frames are shown without lines\n", fx.prog.display())
    );
    let off = ret_of(&fx.calls, "alloc_a", "malloc");
    assert_eq!(o.stdout, format!("[ Top 10 differences ]\n<prog+{off:#x}>:0: size=4000 B (+1000 B), count=4 (+1), average=1000 B\n"));

    // a module whose file is gone
    let mut modules = fx.modules.clone();
    modules[0].path = b"/nonexistent/libgone.so".to_vec();
    write_snap(&a, &fx.prog, modules, fx.stacks(), vec![(1, 1000, 3)]);
    let o = run(&["top", a.to_str().unwrap(), "--raw", "--limit", "0"]);
    assert_eq!(o.code, 0);
    assert_eq!(o.stderr, "memtrace: warning: /nonexistent/libgone.so: No such file or directory; its frames are shown as module+offset\n");
    let o = run(&["traceback", a.to_str().unwrap(), "--raw", "--frames", "2"]);
    assert_eq!(
        o.stdout,
        format!("3 memory blocks: 2.9 KiB\n  File \"{}\", function malloc+0x20\n  File \"/nonexistent/libgone.so\", offset {off:#x}\n", fx.libc)
    );
    std::fs::remove_dir_all(&fx.dir).ok();
}

const CXX_SRC: &str = r#"#include <vector>
#include <string>

namespace shapes {
struct Grid {
    std::vector<long> cells;
    __attribute__((noinline)) void add(long v) {
        cells.push_back(v);
    }
};
}

int main() {
    shapes::Grid g;
    for (long i = 0; i < 100; i++)
        g.add(i);
    return (int)g.cells.size();
}
"#;

#[test]
fn cxx_program_names_the_users_line() {
    let dir = tmpdir("cxx");
    let prog = compile(&dir, "grid", CXX_SRC, "g++", &["-g", "-O0"]);
    let cs = calls(&prog);
    // main → Grid::add → vector::push_back → _M_realloc_insert → _M_allocate → allocate → operator new
    let chain = |cs: &[Call]| -> Vec<u64> {
        let mut rets = Vec::new();
        let mut func = "main".to_string();
        for target in ["add", "push_back", "_M_realloc_insert", "_M_allocate"] {
            let c = cs
                .iter()
                .find(|c| c.func == func && c.target.contains(&format!("::{target}")))
                .unwrap_or_else(|| panic!("no call to {target} in {func}"));
            rets.push(c.ret);
            let t = &c.target;
            func = t[t.find('<').unwrap() + 1..t.rfind('>').unwrap()].to_string();
        }
        // then allocator_traits::allocate → new_allocator::allocate → operator new
        for _ in 0..5 {
            if let Some(c) = cs
                .iter()
                .find(|c| c.func == func && c.target.contains("operator new"))
            {
                rets.push(c.ret);
                break;
            }
            let c = cs
                .iter()
                .find(|c| c.func == func && c.target.contains("allocate("))
                .unwrap();
            rets.push(c.ret);
            let t = &c.target;
            func = t[t.find('<').unwrap() + 1..t.rfind('>').unwrap()].to_string();
        }
        rets.reverse();
        rets
    };
    let stack = chain(&cs);
    let snap = dir.join("k.1.snap");
    write_snap(
        &snap,
        &prog,
        vec![module_of(&prog, 0)],
        vec![stack],
        vec![(1, 64, 7)],
    );
    let s = snap.to_str().unwrap();
    let src = dir.join("grid.cc").display().to_string();
    let o = run(&["top", s]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        format!("[ Top 10 ]\n{src}:8: size=448 B, count=7, average=64 B\n")
    );
    let o = run(&["top", s, "--key", "function"]);
    assert_eq!(
        o.stdout,
        format!("[ Top 10 ]\nshapes::Grid::add(long) ({src}): size=448 B, count=7, average=64 B\n")
    );
    // --raw: the allocator's frames, demangled, under /usr/include
    let o = run(&["top", s, "--raw", "--key", "function"]);
    assert!(
        o.stdout.contains("::allocate(unsigned long"),
        "{}",
        o.stdout
    );
    let o = run(&["top", s, "--raw"]);
    assert!(o.stdout.contains("/usr/include/c++/"), "{}", o.stdout);
    let o = run(&["traceback", s]);
    assert_eq!(
        o.stdout,
        format!("7 memory blocks: 0.4 KiB\n  File \"{src}\", line 8\n    cells.push_back(v);\n  File \"{src}\", line 16\n    g.add(i);\n")
    );
    let o = run(&["traceback", s, "--oldest-first"]);
    assert_eq!(
        o.stdout,
        format!("7 memory blocks: 0.4 KiB\n  File \"{src}\", line 16\n    g.add(i);\n  File \"{src}\", line 8\n    cells.push_back(v);\n")
    );
    std::fs::remove_dir_all(&dir).ok();
}

// ------------------------------------------------------------ bad input

fn assert_bad(args: &[&str], what: &str) {
    let o = run(args);
    assert_eq!(o.code, 1, "{args:?}: {}", o.stderr);
    assert_eq!(o.stdout, "", "{args:?}");
    assert_eq!(o.stderr.lines().count(), 1, "{args:?}: {}", o.stderr);
    assert!(o.stderr.starts_with("memtrace: "), "{args:?}: {}", o.stderr);
    assert!(
        o.stderr.contains(what),
        "{args:?}: {} lacks {what}",
        o.stderr
    );
    assert!(!o.stderr.contains("panicked"), "{args:?}");
}

fn sample_bytes() -> Vec<u8> {
    let exe = Path::new("/bin/true");
    let s = memtrace_format::Snapshot {
        header: header(exe),
        modules: vec![module_of(exe, 0x5555_0000_0000)],
        stacks: vec![Stack {
            id: 1,
            frames: vec![0x5555_0000_1234, 0x5555_0000_2000],
            truncated: true,
        }],
        traces: vec![TraceGroup {
            stack: 1,
            size: 100,
            count: 2,
        }],
        ..Default::default()
    };
    encode(&s)
}

#[test]
fn bad_input_exits_1_with_one_line() {
    let dir = tmpdir("bad");
    let good = dir.join("good.snap");
    let bytes = sample_bytes();
    std::fs::write(&good, &bytes).unwrap();
    let g = good.to_str().unwrap();
    let cases: Vec<(String, Vec<u8>, &str)> = vec![
        ("empty".into(), vec![], "empty file"),
        (
            "truncated".into(),
            bytes[..bytes.len() / 2].to_vec(),
            "truncated",
        ),
        (
            "flipped".into(),
            {
                let mut b = bytes.clone();
                b[20] ^= 0x10;
                b
            },
            "corrupt",
        ),
        (
            "foreign".into(),
            std::fs::read("/bin/true").unwrap(),
            "not a memtrace snapshot",
        ),
        (
            "future".into(),
            {
                let mut b = bytes.clone();
                b[8] = 9;
                b
            },
            "version 9 is not supported",
        ),
        ("text".into(), b"MEMTRACE".to_vec(), "truncated"),
    ];
    for (name, content, what) in &cases {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        let p = p.to_str().unwrap();
        assert_bad(&["top", p], what);
        assert_bad(&["top", p, "--pretty"], what);
        assert_bad(&["diff", g, p], what);
        assert_bad(&["diff", p, g], what);
        assert_bad(&["traceback", p], what);
        assert_bad(&["stats", p], what);
        assert_bad(&["stats", p, "--json"], what);
    }
    let d = dir.to_str().unwrap();
    assert_bad(&["top", d], "is a directory");
    assert_bad(&["stats", d], "is a directory");
    let missing = dir.join("missing.snap");
    assert_bad(
        &["top", missing.to_str().unwrap()],
        "No such file or directory",
    );
    assert_bad(
        &["diff", g, missing.to_str().unwrap()],
        "No such file or directory",
    );
    assert_bad(&["traceback", g, "--rank", "5"], "no traceback of rank 5");
    // the good file itself is fine
    let o = run(&["top", g]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // every prefix and every bit flip of a snapshot is refused cleanly
    for n in (0..bytes.len()).step_by(7) {
        let p = dir.join("prefix");
        std::fs::write(&p, &bytes[..n]).unwrap();
        let o = run(&["top", p.to_str().unwrap()]);
        assert_eq!(o.code, 1, "prefix {n}");
        assert_eq!(o.stderr.lines().count(), 1);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec![],
        vec!["top"],
        vec!["frobnicate"],
        vec!["top", "x.snap", "--key", "module"],
        vec!["top", "x.snap", "--limit", "-1"],
        vec!["top", "x.snap", "--bogus"],
        vec!["diff", "x.snap"],
        vec!["traceback", "x.snap", "--rank", "0"],
        vec!["top", "x.snap", "--key", "traceback", "--cumulative"],
    ] {
        let o = run(&args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(!o.stderr.is_empty());
    }
    let o = run(&["--help"]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("THE USER'S LINE"));
    let o = run(&["top", "--help"]);
    assert!(o.stdout.contains("operator new"), "{}", o.stdout);
}

/// Inputs the fuzzer found (and seeds): each must give exit 0 or 1, never a panic.
#[test]
fn fuzz_regressions() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-regressions");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            continue; // module/: module files, run by tests/corrupt_elf.rs
        }
        let ps = p.to_str().unwrap();
        for args in [
            vec!["top", ps, "--raw"],
            vec!["traceback", ps],
            vec!["stats", ps],
            vec!["diff", ps, ps, "--key", "function"],
        ] {
            let o = run(&args);
            assert!(
                o.code == 0 || o.code == 1,
                "{args:?}: exit {} {}",
                o.code,
                o.stderr
            );
            assert!(!o.stderr.contains("panicked"), "{args:?}: {}", o.stderr);
        }
        n += 1;
    }
    assert!(n > 0);
}

/// Writes the seed files of tests/data/fuzz-regressions (run with --ignored).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-regressions");
    let bytes = sample_bytes();
    std::fs::write(dir.join("seed-sample.snap"), &bytes).unwrap();
    let empty_stack = memtrace_format::Snapshot {
        header: header(Path::new("/nonexistent")),
        modules: vec![],
        stacks: vec![
            Stack {
                id: 7,
                frames: vec![],
                truncated: false,
            },
            Stack {
                id: 8,
                frames: vec![1, 2, 3],
                truncated: true,
            },
        ],
        traces: vec![
            TraceGroup {
                stack: 7,
                size: u64::MAX,
                count: u64::MAX,
            },
            TraceGroup {
                stack: 8,
                size: 0,
                count: 0,
            },
            TraceGroup {
                stack: 8,
                size: 1 << 63,
                count: 3,
            },
        ],
        ..Default::default()
    };
    std::fs::write(dir.join("seed-extremes.snap"), encode(&empty_stack)).unwrap();
}

const RUST_SRC: &str = r#"use std::collections::HashMap;
#[inline(never)]
fn build_map(n: usize) -> HashMap<String, Vec<u64>> {
    let mut m = HashMap::new();
    for i in 0..n {
        m.insert(format!("key{i}"), vec![i as u64; 16]);
    }
    m
}
fn main() {
    let m = build_map(500);
    std::mem::forget(m);
}
"#;

#[test]
fn rust_program_names_the_users_line() {
    let dir = tmpdir("rust");
    let srcp = dir.join("r.rs");
    std::fs::write(&srcp, RUST_SRC).unwrap();
    let prog = dir.join("r");
    let st = Command::new("rustc")
        .args(["-g", "-O", "-o"])
        .arg(&prog)
        .arg(&srcp)
        .status()
        .unwrap();
    assert!(st.success());
    let cs = calls(&prog);
    // calls go through the GOT, so find the allocating one by its inline chain
    let inner = cs
        .iter()
        .filter(|c| c.func == "r::build_map")
        .find(|c| {
            let chain = addr2line(&prog, c.ret);
            chain[0].0.contains("alloc") && chain.iter().any(|(_, l)| l.ends_with("r.rs:6"))
        })
        .unwrap_or_else(|| panic!("no allocating call in build_map"));
    let outer = cs
        .iter()
        .find(|c| c.func.contains("r::main") && c.target.contains("build_map"))
        .unwrap();
    // binutils: the first frame of the inline chain outside Rust's std
    let want = addr2line(&prog, inner.ret)
        .into_iter()
        .find(|(_, loc)| !loc.starts_with("/rustc/") && !loc.starts_with("/rust/deps/"))
        .unwrap()
        .1;
    assert!(want.ends_with("r.rs:6"), "{want}");
    let snap = dir.join("k.exit.snap");
    write_snap(
        &snap,
        &prog,
        vec![module_of(&prog, 0)],
        vec![vec![inner.ret, outer.ret]],
        vec![(1, 128, 500)],
    );
    let s = snap.to_str().unwrap();
    let o = run(&["top", s]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        format!("[ Top 10 ]\n{want}: size=62.5 KiB, count=500, average=128 B\n")
    );
    let o = run(&["traceback", s]);
    assert_eq!(
        o.stdout,
        format!(
            "500 memory blocks: 62.5 KiB\n  File \"{0}\", line 6\n    m.insert(format!(\"key{{i}}\"), vec![i as u64; 16]);\n  File \"{0}\", line 11\n    let m = build_map(500);\n",
            srcp.display()
        )
    );
    let o = run(&["top", s, "--key", "function"]);
    assert_eq!(
        o.stdout,
        format!(
            "[ Top 10 ]\nr::build_map ({}): size=62.5 KiB, count=500, average=128 B\n",
            srcp.display()
        )
    );
    // --raw: the innermost frame is Rust's allocator code under /rustc/
    let o = run(&["top", s, "--raw"]);
    assert!(o.stdout.contains("/rustc/"), "{}", o.stdout);
    std::fs::remove_dir_all(&dir).ok();
}

/// Symbolizing a big snapshot shows a progress bar on a terminal (after a
/// second), and nothing when stderr is a pipe. The snapshot comes from the
/// `synth` example (built with the tests); the terminal from script(1).
#[test]
fn progress_bar_on_a_terminal_only() {
    let synth = std::path::Path::new(BIN)
        .parent()
        .unwrap()
        .join("examples/synth");
    if !synth.is_file() {
        eprintln!("SKIPPED: {} is not built", synth.display());
        return;
    }
    let dir = tmpdir("progress");
    let snap = dir.join("big.snap");
    let made = std::process::Command::new(&synth)
        .arg(BIN)
        .arg(&snap)
        .args(["300000", "600000"])
        .status()
        .unwrap();
    assert!(made.success());
    let piped = run(&["top", snap.to_str().unwrap()]);
    assert_eq!(piped.code, 0);
    assert_eq!(piped.stderr, "", "a bar on a pipe");
    let shown = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{BIN} top {} >/dev/null", snap.display()),
            "/dev/null",
        ])
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&shown.stdout);
    assert!(
        tty.contains("memtrace: symbolizing stacks ["),
        "no bar on the terminal: {tty:?}"
    );
    assert!(tty.contains("/300000"), "{tty:?}");
    std::fs::remove_dir_all(&dir).ok();
}
