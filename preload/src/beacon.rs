//! How `memtrace snapshot PID` finds a traced process's snapshot signal and
//! files: a one-byte memfd mapping whose name, which /proc/PID/maps shows
//! to the process's owner, is `memtrace:<signal>:<absolute prefix>`
//! (`memtrace_format::naming::BEACON`).
//!
//! Not the environment: /proc/PID/environ shows the memory the environment
//! started in, which programs that set their process title (PostgreSQL's
//! backends, nginx) write over. Not a file: it would outlive a killed
//! process. The mapping costs one page of address space and no descriptor
//! (the memfd is closed at once: the mapping keeps it).

use memtrace_format::naming;

/// Publishes the current signal and prefix: at start, and again in a fork
/// child, whose prefix may have changed (a prefix without `%p` gets
/// `.<pid>`). A failure only means `memtrace snapshot` cannot find us.
pub fn publish() {
    let name = naming::beacon_name(crate::config::signal(), &crate::config::out_prefix());
    let Ok(name) = std::ffi::CString::new(name) else {
        return;
    };
    // SAFETY: memfd_create with a valid C string; ftruncate, mmap and close
    // on the descriptor it returned (checked). The mapping is never touched.
    unsafe {
        let fd = libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC);
        if fd < 0 {
            return;
        }
        if libc::ftruncate(fd, 1) == 0 {
            let at = libc::mmap(
                std::ptr::null_mut(),
                1,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            );
            if at != libc::MAP_FAILED {
                retire_previous(at as usize);
            }
        }
        libc::close(fd);
    }
}

/// Unmaps the beacon a fork child inherited, once its own is in place.
fn retire_previous(new: usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static CURRENT: AtomicUsize = AtomicUsize::new(0);
    let old = CURRENT.swap(new, Ordering::Relaxed);
    if old != 0 {
        // SAFETY: `old` is the one-page mapping this module made; nothing
        // else refers to it.
        unsafe { libc::munmap(old as *mut libc::c_void, 1) };
    }
}
