//! The leak check of the exit snapshot (issue 15): every live block
//! classified as memcheck does (`scan`), from the roots found here, memory
//! read with `process_vm_readv` on our own pid so that a page unmapped
//! under us (other threads still run at exit) gives EFAULT, never SIGSEGV.
//! The result goes into the exit snapshot as the LEAKS section (format
//! 1.3), per stack and class. docs/ARCHITECTURE.md ("The leak check")
//! says what the roots are and where they fall short.

pub mod scan;

use memtrace_format::leaks::{LeakCheck, LeakClass, LeakRecord, LeakStatus};
use scan::{Block, Class, Params, Reader};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

static OFF: AtomicBool = AtomicBool::new(false);

/// Longest a scan may take (the exit waits for it).
const BOUND_NS: u64 = 20_000_000_000;
/// Below a thread's stack pointer: the red zone (x86-64 ABI).
const RED_ZONE: u64 = 128;
/// glibc's non-main arenas are heaps of HEAP_MAX_SIZE aligned to it.
const ARENA_HEAP_ALIGN: u64 = 64 << 20;

/// memtrace's own mappings (`sys::mmap_anon`: rings, intern tables, rule
/// cache): not roots. Fixed slots, no allocation (called from any thread).
const OWN_SLOTS: usize = 256;
static OWN: [AtomicU64; 2 * OWN_SLOTS] = [const { AtomicU64::new(0) }; 2 * OWN_SLOTS];
static OWN_COUNT: AtomicUsize = AtomicUsize::new(0);

pub fn own_mapping(start: u64, len: u64) {
    let i = OWN_COUNT.fetch_add(1, Ordering::AcqRel);
    if i < OWN_SLOTS {
        OWN[2 * i + 1].store(start + len, Ordering::Release);
        OWN[2 * i].store(start, Ordering::Release);
    }
}

fn own_mappings() -> Vec<(u64, u64)> {
    let n = OWN_COUNT.load(Ordering::Acquire).min(OWN_SLOTS);
    (0..n)
        .map(|i| {
            (
                OWN[2 * i].load(Ordering::Acquire),
                OWN[2 * i + 1].load(Ordering::Acquire),
            )
        })
        .filter(|&(s, e)| s != 0 && e > s)
        .collect()
}

/// `ranges` minus every range of `holes`.
fn subtract(ranges: Vec<(u64, u64)>, holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = ranges;
    for &(hs, he) in holes {
        let mut next = Vec::with_capacity(out.len() + 1);
        for (s, e) in out {
            if he <= s || e <= hs {
                next.push((s, e));
                continue;
            }
            if s < hs {
                next.push((s, hs));
            }
            if he < e {
                next.push((he, e));
            }
        }
        out = next;
    }
    out
}

/// Reads `MEMTRACE_LEAK_CHECK` (at start, as every setting).
pub fn load_config() {
    if let Some(v) = crate::config::env(c"MEMTRACE_LEAK_CHECK") {
        let off = matches!(v, b"off" | b"0" | b"no" | b"false");
        OFF.store(off, Ordering::Relaxed);
    }
}

/// Our own memory, read safely.
struct SelfMem {
    pid: libc::pid_t,
    deadline: u64,
    timed_out: bool,
    /// The writer's heartbeat: whoever waits for the exit snapshot sees
    /// the scan move.
    beat: fn(),
}

impl SelfMem {
    fn read_bytes(&self, addr: u64, out: &mut [u8]) -> usize {
        let local = libc::iovec {
            iov_base: out.as_mut_ptr().cast(),
            iov_len: out.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: out.len(),
        };
        // SAFETY: `local` is our buffer of that length; the remote range is
        // only read by the kernel, which fails with EFAULT where unmapped.
        let n = unsafe { libc::process_vm_readv(self.pid, &local, 1, &remote, 1, 0) };
        if n < 0 {
            0
        } else {
            n as usize
        }
    }
}

impl Reader for SelfMem {
    fn read(&mut self, addr: u64, out: &mut [u64]) -> usize {
        // SAFETY: u64s are plain bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), out.len() * 8) };
        let n = self.read_bytes(addr, bytes);
        if n == bytes.len() || n == 0 {
            return n / 8;
        }
        // A partial read stops at a page boundary: the words before it.
        n / 8
    }

    fn out_of_time(&mut self) -> bool {
        (self.beat)();
        if crate::sys::now_ns(libc::CLOCK_MONOTONIC) > self.deadline {
            self.timed_out = true;
        }
        self.timed_out
    }
}

/// One line of /proc/self/maps that may hold roots.
struct Mapping {
    start: u64,
    end: u64,
    path: Vec<u8>,
}

/// None when /proc/self/maps cannot be read (no /proc): without the
/// roots every block would look lost, so there is no check then.
fn rw_private_mappings() -> Option<Vec<Mapping>> {
    let text = std::fs::read("/proc/self/maps").ok()?;
    if text.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for line in text.split(|&c| c == b'\n') {
        let mut f = line
            .split(|&c| c == b' ')
            .filter(|w| !w.is_empty())
            .peekable();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        if perms.len() < 4 || &perms[..2] != b"rw" || perms[3] != b'p' {
            continue;
        }
        let (_off, _dev, _inode) = (f.next(), f.next(), f.next());
        let path: Vec<u8> = f.collect::<Vec<_>>().join(&b' ');
        let r = std::str::from_utf8(range).unwrap_or("");
        let Some((a, b)) = r.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        out.push(Mapping { start, end, path });
    }
    Some(out)
}

/// The stack pointers of the threads blocked in a system call, or stopped
/// outside one (`/proc/self/task/*/syscall`; "running" threads give none).
fn thread_sps() -> Vec<u64> {
    let mut sps = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return sps;
    };
    for e in dir.flatten() {
        let mut p = e.path();
        p.push("syscall");
        let Ok(t) = std::fs::read_to_string(&p) else {
            continue;
        };
        let w: Vec<&str> = t.split_whitespace().collect();
        if w.len() >= 3 {
            let sp = w[w.len() - 2];
            if let Ok(v) = u64::from_str_radix(sp.trim_start_matches("0x"), 16) {
                sps.push(v);
            }
        }
    }
    sps
}

/// libtrace.so's own loaded segments: not roots.
fn own_ranges() -> Vec<(u64, u64)> {
    unsafe extern "C" fn cb(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader's info for this call; `data` is our Vec.
        let (out, info) = unsafe { (&mut *(data as *mut Vec<(u64, u64)>), &*info) };
        if info.dlpi_addr as usize != crate::unwind::self_base() {
            return 0;
        }
        for i in 0..info.dlpi_phnum as usize {
            // SAFETY: dlpi_phnum program headers.
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            if ph.p_type == libc::PT_LOAD {
                let s = info.dlpi_addr + ph.p_vaddr;
                // Up to the page's end: the .bss tail shares it.
                let e = (s + ph.p_memsz + 4095) & !4095;
                out.push((s & !4095, e));
            }
        }
        1
    }
    let mut v: Vec<(u64, u64)> = Vec::new();
    // SAFETY: the callback only reads the loader's data during the call.
    unsafe { libc::dl_iterate_phdr(Some(cb), &mut v as *mut _ as *mut libc::c_void) };
    v
}

/// The root ranges: every private writable mapping (modules' data and
/// .bss, thread stacks and their TLS, the program's anonymous memory)
/// except malloc's heaps, memtrace's own memory, and chunks glibc mmapped
/// for single blocks (the traced ones are scanned as blocks).
fn roots(mem: &mut SelfMem, exclude: &[u64]) -> Option<Vec<(u64, u64)>> {
    let own = own_ranges();
    let sps = thread_sps();
    let here = &own as *const _ as u64; // this thread's stack: the scanner's
    let mut roots = Vec::new();
    let mut holes = Vec::new();
    for m in rw_private_mappings()? {
        let inside = |a: u64| a >= m.start && a < m.end;
        if m.path == b"[heap]"
            || m.path.starts_with(b"[anon:glibc: malloc")
            || m.path.starts_with(b"/dev/")
            || inside(here)
            || own.iter().any(|&(s, e)| s < m.end && m.start < e)
        {
            continue;
        }
        let mut start = m.start;
        if let Some(&sp) = sps.iter().find(|&&sp| inside(sp)) {
            start = sp.saturating_sub(RED_ZONE).max(m.start);
        } else if m.path.is_empty() {
            if m.start % ARENA_HEAP_ALIGN == 0 && is_arena_heap(mem, m.start) {
                continue;
            }
            // Chunks glibc mmapped for one block each, from the start.
            while start < m.end {
                let mut h = [0u64; 2];
                if mem.read(start, &mut h) < 2 {
                    break;
                }
                let size = h[1] & !7;
                if h[1] & 2 != 0 && size >= 4096 && size % 4096 == 0 && size <= m.end - start {
                    start += size;
                } else {
                    break;
                }
            }
        }
        if start < m.end {
            roots.push((start, m.end));
        }
        // The writer's own big tables (the live table holds every live
        // address): the chunk glibc mmapped for each, wherever it sits in
        // a mapping merged with its neighbours.
        for &a in exclude.iter().filter(|&&a| inside(a)) {
            holes.push(mmapped_chunk_around(mem, a, m.start).unwrap_or((m.start, m.end)));
        }
    }
    holes.extend(own_mappings());
    Some(subtract(roots, &holes))
}

/// The chunk glibc mmapped that holds `addr`: its header sits at the start
/// of a page at or below it (prev_size, then size with IS_MMAPPED), no lower
/// than `floor`.
fn mmapped_chunk_around(mem: &mut SelfMem, addr: u64, floor: u64) -> Option<(u64, u64)> {
    let mut page = addr & !4095;
    loop {
        let mut h = [0u64; 2];
        if mem.read(page, &mut h) == 2 {
            let size = h[1] & !7;
            if h[1] & 2 != 0 && size >= 4096 && size % 4096 == 0 && page.checked_add(size)? > addr {
                return Some((page, page + size));
            }
        }
        if page < floor + 4096 {
            return None;
        }
        page -= 4096;
    }
}

/// A non-main arena's heap starts with its `heap_info`: `ar_ptr` (the
/// arena, inside this heap or another), `prev`, `size`, `mprotect_size`
/// (size ≤ mprotect_size ≤ 64 MiB, page multiples).
fn is_arena_heap(mem: &mut SelfMem, start: u64) -> bool {
    let mut h = [0u64; 4];
    if mem.read(start, &mut h) < 4 {
        return false;
    }
    let (size, mprot) = (h[2], h[3]);
    size != 0 && size % 4096 == 0 && size <= mprot && mprot <= ARENA_HEAP_ALIGN && h[0] != 0
}

/// The leak check of the exit snapshot, or None when it is off
/// (`MEMTRACE_LEAK_CHECK=off`, or sampling: most blocks are not known).
/// `live`: every live block (address, size, stack); `storage`: addresses
/// inside the writer's tables that hold those addresses (not roots).
pub fn check(
    live: impl Iterator<Item = (u64, u64, u32)>,
    storage: &[u64],
    beat: fn(),
) -> Option<LeakCheck> {
    if OFF.load(Ordering::Relaxed) || crate::config::sample_rate() != 0 {
        return None;
    }
    let t0 = crate::sys::now_ns(libc::CLOCK_MONOTONIC);
    let mut mem = SelfMem {
        // SAFETY: getpid has no preconditions.
        pid: unsafe { libc::getpid() },
        deadline: t0 + BOUND_NS,
        timed_out: false,
        beat,
    };
    let probe = [0x6d656d7472616365u64; 1];
    let mut got = [0u64; 1];
    if mem.read(probe.as_ptr() as u64, &mut got) != 1 || got != probe {
        return Some(LeakCheck {
            status: LeakStatus::Unavailable,
            ..Default::default()
        });
    }
    let no_memory = || LeakCheck {
        status: LeakStatus::NoMemory,
        ..Default::default()
    };
    let mut blocks: Vec<(u64, u64, u32)> = Vec::new();
    let mut scan_blocks: Vec<Block> = Vec::new();
    let n = live.size_hint().0;
    if blocks.try_reserve_exact(n).is_err() || scan_blocks.try_reserve_exact(n).is_err() {
        return Some(no_memory());
    }
    blocks.extend(live);
    blocks.sort_unstable_by_key(|b| b.0);
    blocks.dedup_by_key(|b| b.0);
    scan_blocks.extend(blocks.iter().map(|&(addr, size, _)| Block { addr, size }));
    let mut exclude = vec![blocks.as_ptr() as u64, scan_blocks.as_ptr() as u64];
    exclude.extend_from_slice(storage);
    let Some(roots) = roots(&mut mem, &exclude) else {
        return Some(LeakCheck {
            status: LeakStatus::Unavailable,
            ..Default::default()
        });
    };
    let params = Params {
        glibc_chunk_headers: true,
    };
    let outcome = scan::classify(&scan_blocks, &roots, &mut mem, params);
    let scan_ns = crate::sys::now_ns(libc::CLOCK_MONOTONIC) - t0;
    let o = match outcome {
        Ok(o) => o,
        Err(why) => {
            return Some(LeakCheck {
                status: match why {
                    scan::Incomplete::OutOfTime => LeakStatus::TimedOut,
                    scan::Incomplete::NoMemory => LeakStatus::NoMemory,
                },
                scan_ns,
                ..Default::default()
            })
        }
    };
    let mut per: HashMap<(u32, u8), LeakRecord, crate::sys::BuildMix> = HashMap::default();
    for (i, &(_, size, stack)) in blocks.iter().enumerate() {
        let class = match o.class[i] {
            Class::Definite => LeakClass::Definite,
            Class::Indirect => LeakClass::Indirect,
            Class::Possible => LeakClass::Possible,
            Class::Reachable => LeakClass::Reachable,
        };
        let r = per
            .entry((stack, class as u8))
            .or_insert_with(|| LeakRecord {
                stack: stack as u64,
                class,
                blocks: 0,
                bytes: 0,
                indirect_bytes: 0,
            });
        r.blocks += 1;
        r.bytes += size;
        r.indirect_bytes += o.indirect[i];
    }
    let mut records: Vec<LeakRecord> = per.into_values().collect();
    records.sort_unstable_by_key(|r| (r.stack, r.class));
    crate::verbose(&format!(
        "leak check: {} blocks, {} bytes of roots and {} of blocks read in {} ms",
        blocks.len(),
        o.root_bytes,
        o.heap_bytes,
        scan_ns / 1_000_000
    ));
    Some(LeakCheck {
        status: LeakStatus::Complete,
        scan_ns,
        root_bytes: o.root_bytes,
        heap_bytes: o.heap_bytes,
        records,
    })
}

impl Reader for &mut SelfMem {
    fn read(&mut self, addr: u64, out: &mut [u64]) -> usize {
        (**self).read(addr, out)
    }
    fn read_many(&mut self, ranges: &[(u64, usize)], out: &mut [u64]) -> usize {
        let remote: Vec<libc::iovec> = ranges
            .iter()
            .map(|&(a, n)| libc::iovec {
                iov_base: a as *mut libc::c_void,
                iov_len: n * 8,
            })
            .collect();
        let local = libc::iovec {
            iov_base: out.as_mut_ptr().cast(),
            iov_len: out.len() * 8,
        };
        // SAFETY: `local` is our buffer, as long as the ranges together;
        // the remote ranges are only read by the kernel (EFAULT where
        // unmapped: the transfer stops there).
        let n = unsafe {
            libc::process_vm_readv(self.pid, &local, 1, remote.as_ptr(), remote.len() as _, 0)
        };
        if n < 0 {
            0
        } else {
            n as usize / 8
        }
    }
    fn out_of_time(&mut self) -> bool {
        (**self).out_of_time()
    }
}

#[cfg(test)]
mod tests {
    use super::subtract;

    #[test]
    fn subtract_holes() {
        assert_eq!(
            subtract(vec![(0, 100), (200, 300)], &[(50, 60), (250, 400), (0, 10)]),
            vec![(10, 50), (60, 100), (200, 250)]
        );
    }
}
