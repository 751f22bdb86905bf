//! Where the process's memory is at a snapshot moment: RSS and its peak
//! from /proc/self/status, glibc's heap from mallinfo2(). mallinfo2 covers
//! every arena, memtrace's own writer arena included (its tables and
//! buffers); docs/CLI.md says so where `summary` explains RSS.

use memtrace_format::MemoryUse;

/// RSS and glibc's heap now. Reads a small /proc file and walks glibc's
/// arenas (their locks, briefly): for the writer thread, at a snapshot.
pub fn memory_use() -> MemoryUse {
    let (rss_bytes, rss_peak_bytes) =
        rss_from_status(&std::fs::read("/proc/self/status").unwrap_or_default());
    // SAFETY: mallinfo2 takes no arguments and only reads glibc's state
    // under its own arena locks; we hold none of them here.
    let mi = unsafe { libc::mallinfo2() };
    MemoryUse {
        rss_bytes,
        rss_peak_bytes,
        heap_arena_bytes: mi.arena as u64,
        heap_free_bytes: mi.fordblks as u64,
        heap_mmap_bytes: mi.hblkhd as u64,
    }
}

/// The process's resident set size now (/proc/self/statm: one small read),
/// for time points; 0 when unknown.
pub fn rss_now() -> u64 {
    let statm = std::fs::read("/proc/self/statm").unwrap_or_default();
    let resident_pages = statm
        .split(|&c| c == b' ')
        .nth(1)
        .and_then(parse_u64)
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    resident_pages * page
}

/// (VmRSS, VmHWM) in bytes from /proc/self/status (given in kB).
fn rss_from_status(status: &[u8]) -> (u64, u64) {
    let field = |name: &[u8]| {
        status
            .split(|&c| c == b'\n')
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.split(|&c| c == b' ' || c == b'\t')
                    .find(|w| !w.is_empty())
                    .and_then(parse_u64)
            })
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    };
    (field(b"VmRSS:"), field(b"VmHWM:"))
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    std::str::from_utf8(s).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let s = b"Name:\tx\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t1\n";
        assert_eq!(rss_from_status(s), (1024 * 1024, 2048 * 1024));
        assert_eq!(rss_from_status(b"garbage"), (0, 0));
    }

    #[test]
    fn this_process_has_rss() {
        let m = memory_use();
        assert!(m.rss_bytes > 0 && m.rss_peak_bytes >= m.rss_bytes);
        assert!(rss_now() > 0);
    }
}
