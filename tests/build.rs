//! Builds the C and C++ test programs in `programs/` into OUT_DIR.
//!
//! Every `NAME.c` / `NAME.cpp` becomes two executables:
//! * `NAME-O0`: `-O0 -fno-omit-frame-pointer`
//! * `NAME-O2`: `-O2 -fomit-frame-pointer`
//!
//! (`nopie_NAME.c` adds `-fno-pie -no-pie` to both, `static_NAME.c`
//! `-static`), and every `libNAME.c`
//! becomes a shared library `libNAME.so`. All are built
//! with `-g` so that the analyzer can name lines. Nothing is committed: the
//! binaries live in OUT_DIR only.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Job {
    compiler: &'static str,
    args: Vec<String>,
    out: PathBuf,
    src: PathBuf,
}

fn newer(src: &Path, deps: &[PathBuf], out: &Path) -> bool {
    let Ok(o) = out.metadata().and_then(|m| m.modified()) else {
        return true;
    };
    std::iter::once(src.to_path_buf())
        .chain(deps.iter().cloned())
        .any(|p| {
            p.metadata()
                .and_then(|m| m.modified())
                .map(|t| t > o)
                .unwrap_or(true)
        })
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let progs = manifest.join("programs");
    println!("cargo:rerun-if-changed=programs");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../preload/include");

    let mut entries: Vec<PathBuf> = std::fs::read_dir(&progs)
        .expect("tests/programs")
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let headers: Vec<PathBuf> = entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "h"))
        .cloned()
        .chain([manifest.join("../preload/include/memtrace.h")])
        .collect();

    let mut jobs = Vec::new();
    for src in &entries {
        let ext = src.extension().and_then(|e| e.to_str()).unwrap_or("");
        let stem = src.file_stem().unwrap().to_str().unwrap().to_string();
        let (compiler, std) = match ext {
            "c" => ("gcc", "-std=gnu11"),
            "cpp" => ("g++", "-std=gnu++17"),
            _ => continue,
        };
        let common = vec![
            std.to_string(),
            "-g".into(),
            "-Wall".into(),
            "-Wno-deprecated-declarations".into(),
            "-pthread".into(),
            format!("-I{}", progs.display()),
            // memtrace.h (custom allocators: pool_track.c).
            format!("-I{}", manifest.join("../preload/include").display()),
        ];
        if stem.starts_with("lib") {
            let out = out_dir.join(format!("{stem}.so"));
            let mut args = common.clone();
            args.extend(["-O1", "-fPIC", "-shared"].map(String::from));
            jobs.push(Job {
                compiler,
                args,
                out,
                src: src.clone(),
            });
        } else {
            for (variant, flags) in [
                ("O0", ["-O0", "-fno-omit-frame-pointer"]),
                ("O2", ["-O2", "-fomit-frame-pointer"]),
            ] {
                let out = out_dir.join(format!("{stem}-{variant}"));
                let mut args = common.clone();
                args.extend(flags.map(String::from));
                // `nopie_NAME.c`: a non-PIE executable (issue 11: node and
                // Debian's python3 are built so).
                if stem.starts_with("nopie_") {
                    args.extend(["-fno-pie", "-no-pie"].map(String::from));
                }
                // `static_NAME.c`: statically linked (what `memtrace attach`
                // and `memtrace run` must refuse).
                if stem.starts_with("static_") {
                    args.push("-static".into());
                }
                jobs.push(Job {
                    compiler,
                    args,
                    out,
                    src: src.clone(),
                });
            }
        }
    }

    let jobs: Vec<Job> = jobs
        .into_iter()
        .filter(|j| newer(&j.src, &headers, &j.out))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errors = std::sync::Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(8);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(j) = jobs.get(i) else { break };
                let tmp = j.out.with_extension("tmp");
                let res = Command::new(j.compiler)
                    .args(&j.args)
                    .arg("-o")
                    .arg(&tmp)
                    .arg(&j.src)
                    .arg("-ldl")
                    .output();
                match res {
                    Ok(o) if o.status.success() => std::fs::rename(&tmp, &j.out).unwrap(),
                    Ok(o) => errors.lock().unwrap().push(format!(
                        "{} {} failed:\n{}",
                        j.compiler,
                        j.src.display(),
                        String::from_utf8_lossy(&o.stderr)
                    )),
                    Err(e) => errors
                        .lock()
                        .unwrap()
                        .push(format!("cannot run {}: {e}", j.compiler)),
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap();
    if !errors.is_empty() {
        panic!("building the test programs failed:\n{}", errors.join("\n"));
    }
}
