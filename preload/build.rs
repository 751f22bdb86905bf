//! libunwind: Debian's libunwind.a is not position-independent (rust-lld and
//! GNU ld both refuse it in a shared object: R_X86_64_32S relocations in
//! Lregs.o and others), and linking libunwind.so as a dependency would put
//! its `_Unwind_*` and weak `backtrace()` into the host's global symbol scope
//! ahead of libgcc_s. So libtrace.so links neither: `unwind.rs` dlopen()s
//! libunwind.so.8 with RTLD_LOCAL at start-up (its symbols stay out of the
//! global scope) and looks up `unw_backtrace` with dlsym.
//!
//! memtrace.h: programs with their own allocators include it (track.rs), and
//! look for it beside libtrace.so (`target/<profile>/`, where `memtrace run`
//! and LD_PRELOAD users take the library from). Cargo has no step that
//! installs a file next to a cdylib, so the build script copies it there:
//! OUT_DIR is `target/<profile>/build/<crate>-<hash>/out`.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=include/memtrace.h");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    if let Some(profile_dir) = out.ancestors().nth(3) {
        copy_header(profile_dir);
    }
}

/// Copies include/memtrace.h into `dir`, unless an identical copy is there.
fn copy_header(dir: &Path) {
    let src = Path::new("include/memtrace.h");
    let dst = dir.join("memtrace.h");
    let want = std::fs::read(src).expect("preload/include/memtrace.h");
    if std::fs::read(&dst).ok().as_deref() != Some(&want[..]) {
        if let Err(e) = std::fs::write(&dst, &want) {
            println!("cargo:warning=cannot place memtrace.h beside libtrace.so: {e}");
        }
    }
}
