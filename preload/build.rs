//! libunwind: Debian's libunwind.a is not position-independent (rust-lld and
//! GNU ld both refuse it in a shared object: R_X86_64_32S relocations in
//! Lregs.o and others), and linking libunwind.so as a dependency would put
//! its `_Unwind_*` and weak `backtrace()` into the host's global symbol scope
//! ahead of libgcc_s. So libtrace.so links neither: `unwind.rs` dlopen()s
//! libunwind.so.8 with RTLD_LOCAL at start-up (its symbols stay out of the
//! global scope) and looks up `unw_backtrace` with dlsym.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
