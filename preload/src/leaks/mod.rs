//! The leak check of the exit snapshot (issue 15): every live block
//! classified as memcheck does (`scan`), from the roots found here, memory
//! read with `process_vm_readv` on our own pid so that a page unmapped
//! under us (other threads still run at exit) gives EFAULT, never SIGSEGV.
//! The result goes into the exit snapshot as the LEAKS section (format
//! 1.3), per stack and class. docs/ARCHITECTURE.md ("The leak check")
//! says what the roots are and where they fall short.

mod objects;
pub mod scan;
mod threads;

pub use threads::note_exiting_thread;

use memtrace_format::leaks::{LeakCheck, LeakStatus};
use scan::{Block, Class, Params, Reader};
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
/// except malloc's heaps, memtrace's own memory, the scanning thread's
/// stack, and chunks glibc mmapped for single blocks (the traced ones are
/// scanned as blocks).
fn roots(mem: &mut SelfMem, exclude: &[u64]) -> Option<Vec<(u64, u64)>> {
    let own = own_ranges();
    let threads = threads::threads();
    let here = &own as *const _ as u64; // this thread's stack: the scanner's
    let own_stack = threads::own_stack().filter(|&(lo, hi)| lo <= here && here < hi);
    let mut roots = Vec::new();
    let mut holes = Vec::new();
    for m in rw_private_mappings()? {
        let inside = |a: u64| a >= m.start && a < m.end;
        if m.path == b"[heap]"
            || m.path.starts_with(b"[anon:glibc: malloc")
            || m.path.starts_with(b"/dev/")
            || (own_stack.is_none() && inside(here))
            || own.iter().any(|&(s, e)| s < m.end && m.start < e)
        {
            continue;
        }
        let mut start = m.start;
        if let Some(sp) = threads.lowest_sp_in(m.start, m.end) {
            if threads.unknown == 0 && is_thread_stack(mem, &m) {
                start = sp.saturating_sub(RED_ZONE).max(m.start);
            }
        } else if m.path.is_empty() {
            // Chunks glibc mmapped for one block each, from the start.
            while let Some(size) = mmapped_chunk_at(mem, start, m.end) {
                start += size;
            }
        }
        if start < m.end {
            roots.push((start, m.end));
        }
        if m.path.is_empty() {
            holes.extend(arena_heaps(mem, m.start, m.end));
        }
        // The writer's own big tables (the live table holds every live
        // address): the chunk glibc mmapped for each, wherever it sits in
        // a mapping merged with its neighbours. None found: no hole (the
        // table's words can only keep blocks reachable; a hole too big
        // would drop the program's roots and report their blocks lost).
        for &a in exclude.iter().filter(|&&a| inside(a)) {
            holes.extend(mmapped_chunk_around(mem, a, m.start, m.end));
        }
    }
    holes.extend(own_stack);
    holes.extend(own_mappings());
    Some(subtract(roots, &holes))
}

/// Whether memory below a stack pointer in `m` may be left out: the main
/// thread's `[stack]`, or an anonymous mapping topped by a glibc thread's
/// TCB (which pthread_create puts at the top of every stack, its own or
/// the program's): not a coroutine's stack carved out of a bigger mapping
/// whose other memory holds roots.
fn is_thread_stack<R: Reader>(mem: &mut R, m: &Mapping) -> bool {
    if m.path == b"[stack]" {
        return true;
    }
    m.path.is_empty() && tcb_near_top(mem, m.start, m.end)
}

/// Where glibc looks for a TCB: its struct pthread (≈ 2.3 KiB) and the
/// padding that aligns it sit in the last two pages of the stack block.
const TCB_SEARCH: u64 = 8192;

/// A TCB's first words: `tcb` (the thread pointer, its own address),
/// `dtv`, `self` (its own address again).
fn tcb_near_top<R: Reader>(mem: &mut R, start: u64, end: u64) -> bool {
    let from = end.saturating_sub(TCB_SEARCH).max(start);
    let mut w = [0u64; (TCB_SEARCH / 8) as usize];
    let n = ((end - from) / 8) as usize;
    let got = mem.read(from, &mut w[..n]);
    (0..got.saturating_sub(2)).any(|i| {
        let a = from + 8 * i as u64;
        w[i] == a && w[i + 2] == a
    })
}

/// The size of the chunk glibc mmapped for one block whose header is at
/// `page`, if there is one that ends by `end`: prev_size 0 (glibc sets it so
/// for a chunk at the start of its mapping), then the size, a page
/// multiple, with IS_MMAPPED and no other flag. Words of the program or of
/// our tables rarely pass all of that; when they do, the chunk still ends
/// inside the mapping.
fn mmapped_chunk_at<R: Reader>(mem: &mut R, page: u64, end: u64) -> Option<u64> {
    let mut h = [0u64; 2];
    if page >= end || mem.read(page, &mut h) < 2 {
        return None;
    }
    let size = h[1] & !7;
    let ok = h[0] == 0 && h[1] & 7 == 2 && size >= 4096 && size % 4096 == 0;
    (ok && size <= end - page).then_some(size)
}

/// The chunk glibc mmapped that holds `addr`: its header sits at the start
/// of a page at or below it, within `[floor, end)`.
fn mmapped_chunk_around<R: Reader>(
    mem: &mut R,
    addr: u64,
    floor: u64,
    end: u64,
) -> Option<(u64, u64)> {
    let mut page = addr & !4095;
    loop {
        if let Some(size) = mmapped_chunk_at(mem, page, end).filter(|&s| page + s > addr) {
            return Some((page, page + size));
        }
        if page < floor + 4096 {
            return None;
        }
        page -= 4096;
    }
}

/// The non-main arenas' heaps in `[start, end)`: each where a heap starts
/// (64 MiB aligned), its read-write part `[heap, heap + mprotect_size)`.
/// Not the whole mapping: the kernel merges a heap grown to 64 MiB, or
/// one whose start a later mapping touches, with its neighbours, which
/// may be the program's memory.
fn arena_heaps<R: Reader>(mem: &mut R, start: u64, end: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = start.next_multiple_of(ARENA_HEAP_ALIGN);
    while at < end {
        if let Some(len) = arena_heap_at(mem, at) {
            out.push((at, (at + len).min(end)));
        }
        at += ARENA_HEAP_ALIGN;
    }
    out
}

/// A heap starts with its `heap_info`: `ar_ptr` (its arena, just after the
/// `heap_info` of the arena's first heap: a few words past a 64 MiB
/// boundary), `prev` (none, or the previous heap: 64 MiB aligned), `size`,
/// `mprotect_size` (size ≤ mprotect_size ≤ 64 MiB, page multiples): the
/// read-write length, `mprotect_size`.
fn arena_heap_at<R: Reader>(mem: &mut R, at: u64) -> Option<u64> {
    let mut h = [0u64; 4];
    if mem.read(at, &mut h) < 4 {
        return None;
    }
    let [ar_ptr, prev, size, mprot] = h;
    let arena_ok = ar_ptr != 0 && ar_ptr % ARENA_HEAP_ALIGN < 4096 && ar_ptr % 16 == 0;
    let prev_ok = prev % ARENA_HEAP_ALIGN == 0;
    let size_ok = size != 0 && size % 4096 == 0 && size <= mprot && mprot <= ARENA_HEAP_ALIGN;
    (arena_ok && prev_ok && size_ok && mprot % 4096 == 0).then_some(mprot)
}

/// The leak check of the exit snapshot, or None when it is off
/// (`MEMTRACE_LEAK_CHECK=off`, or sampling: most blocks are not known).
/// `live`: every live block (address, size, stack); `tracked`: the live
/// objects of custom allocators (address, size, stack, domain; a layer of
/// their own, scan.rs); `storage`: addresses inside the writer's tables
/// that hold those addresses (not roots).
pub fn check(
    live: impl Iterator<Item = (u64, u64, u32)>,
    tracked: Vec<objects::Object>,
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
    let (objects, overlapping) = objects::layer(tracked);
    let scan_objects = objects::scan_blocks(&objects);
    let mut exclude = vec![
        blocks.as_ptr() as u64,
        scan_blocks.as_ptr() as u64,
        objects.as_ptr() as u64,
        scan_objects.as_ptr() as u64,
        overlapping.as_ptr() as u64,
    ];
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
    let outcome = scan::classify_layers(&scan_blocks, &scan_objects, &roots, &mut mem, params);
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
    let heap = blocks
        .iter()
        .enumerate()
        .map(|(i, &(_, size, stack))| (size, stack, 0, o.class[i], o.indirect[i]));
    let n = blocks.len();
    let tracked = objects
        .iter()
        .enumerate()
        .map(|(j, &(_, size, stack, domain))| {
            (size, stack, domain, o.class[n + j], o.indirect[n + j])
        });
    let unscanned = overlapping
        .iter()
        .map(|&(_, size, stack, domain)| (size, stack, domain, Class::Reachable, 0));
    let records = objects::records(heap.chain(tracked).chain(unscanned));
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
    use super::*;
    use std::collections::BTreeMap;

    /// Memory as a map of words (absent: unreadable).
    struct Words(BTreeMap<u64, u64>);

    impl Reader for Words {
        fn read(&mut self, addr: u64, out: &mut [u64]) -> usize {
            for (i, o) in out.iter_mut().enumerate() {
                match self.0.get(&(addr + 8 * i as u64)) {
                    Some(&w) => *o = w,
                    None => return i,
                }
            }
            out.len()
        }
    }

    /// A mapping of `pages` zeroed pages at 0x10000.
    fn mapping(pages: u64) -> Words {
        Words((0..pages * 512).map(|i| (0x10000 + 8 * i, 0)).collect())
    }

    #[test]
    fn the_chunk_around_a_table_is_its_own_not_a_bucket_that_looks_like_one() {
        // A 16-page chunk at 0x10000 in a 32-page mapping; inside it, at a
        // page start, the words of one live-table bucket (size 1000, stack 3
        // of thread 2: 0x2_0000_0003), which once made an 8 GiB hole.
        let mut m = mapping(32);
        m.0.insert(0x10008, 0x10000 | 2);
        m.0.insert(0x15000, 1000);
        m.0.insert(0x15008, 0x2_0000_0003);
        let (end, addr) = (0x30000, 0x17f00);
        assert_eq!(
            mmapped_chunk_around(&mut m, addr, 0x10000, end),
            Some((0x10000, 0x20000))
        );
        // Even with prev_size 0 and IS_MMAPPED alone, a size past the end
        // of the mapping is no chunk.
        m.0.insert(0x15000, 0);
        m.0.insert(0x15008, 0x2_0000_0002);
        assert_eq!(
            mmapped_chunk_around(&mut m, addr, 0x10000, end),
            Some((0x10000, 0x20000))
        );
        // No header at all: no hole (never the whole mapping).
        m.0.insert(0x10008, 0);
        assert_eq!(mmapped_chunk_around(&mut m, addr, 0x10000, end), None);
    }

    #[test]
    fn mmapped_chunk_flags() {
        let mut m = mapping(4);
        m.0.insert(0x10008, 0x2000 | 2);
        assert_eq!(mmapped_chunk_at(&mut m, 0x10000, 0x14000), Some(0x2000));
        assert_eq!(mmapped_chunk_at(&mut m, 0x10000, 0x11000), None);
        for bad in [0x2000 | 3, 0x2000 | 6, 0x2000, 0x2100 | 2] {
            m.0.insert(0x10008, bad);
            assert_eq!(mmapped_chunk_at(&mut m, 0x10000, 0x14000), None, "{bad:#x}");
        }
        m.0.insert(0x10008, 0x2000 | 2);
        m.0.insert(0x10000, 16);
        assert_eq!(mmapped_chunk_at(&mut m, 0x10000, 0x14000), None);
    }

    /// A heap_info of glibc 2.36 at `at`: its arena 48 bytes in.
    fn heap_info(m: &mut Words, at: u64, prev: u64, len: u64) {
        for (i, w) in [at + 48, prev, len, len].into_iter().enumerate() {
            m.0.insert(at + 8 * i as u64, w);
        }
    }

    #[test]
    fn arena_heaps_inside_merged_mappings() {
        const A: u64 = ARENA_HEAP_ALIGN;
        let mut m = Words(BTreeMap::new());
        // The program's memory, then a heap of 0x21000 bytes.
        heap_info(&mut m, 2 * A, 0, 0x21000);
        assert_eq!(
            arena_heaps(&mut m, 2 * A - 0x10000, 2 * A + 0x21000),
            vec![(2 * A, 2 * A + 0x21000)]
        );
        // A full heap merged with the next one and the program's memory
        // after it.
        heap_info(&mut m, 4 * A, 0, A);
        heap_info(&mut m, 5 * A, 4 * A, 0x8000);
        assert_eq!(
            arena_heaps(&mut m, 4 * A, 5 * A + 0x20000),
            vec![(4 * A, 5 * A), (5 * A, 5 * A + 0x8000)]
        );
        // Words of the program at a boundary: ar_ptr far from a boundary,
        // prev not a heap, size zero.
        for (ar, prev, size) in [
            (6 * A + 0x10000, 0, 0x1000),
            (6 * A + 48, 0x1000, 0x1000),
            (6 * A + 48, 0, 0),
        ] {
            for (i, w) in [ar, prev, size, 0x1000].into_iter().enumerate() {
                m.0.insert(6 * A + 8 * i as u64, w);
            }
            assert_eq!(arena_heaps(&mut m, 6 * A, 6 * A + 0x1000), vec![]);
        }
    }

    #[test]
    fn thread_stacks_by_their_tcb() {
        let mut m = mapping(8);
        let (start, end) = (0x10000, 0x18000);
        assert!(!tcb_near_top(&mut m, start, end));
        let tcb = end - 0x900;
        m.0.insert(tcb, tcb);
        m.0.insert(tcb + 8, 0x5000);
        assert!(!tcb_near_top(&mut m, start, end));
        m.0.insert(tcb + 16, tcb);
        assert!(tcb_near_top(&mut m, start, end));
        // Lower in the mapping: a coroutine's, not the top of a stack.
        let mut big = mapping(12);
        big.0.extend(m.0);
        assert!(!tcb_near_top(&mut big, start, end + 0x4000));
    }

    #[test]
    fn subtract_holes() {
        assert_eq!(
            subtract(vec![(0, 100), (200, 300)], &[(50, 60), (250, 400), (0, 10)]),
            vec![(10, 50), (60, 100), (200, 250)]
        );
    }
}
