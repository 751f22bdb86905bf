//! The reachability scan, memcheck's algorithm (mc_leakcheck.c), pure:
//! given the live blocks sorted by address, a memory reader and the root
//! ranges, classify every block.
//!
//! * Phase 1, from the roots: every aligned word of a root range that
//!   points into a block marks it *reachable* when it points to its first
//!   byte, *possibly lost* when it points inside (a block already reachable
//!   stays so; a possible one reached later by a start pointer becomes
//!   reachable and is scanned again). Marked blocks are scanned in turn,
//!   with the same rule (the state depends on the pointer, not on the state
//!   of the block holding it, as in memcheck).
//! * Phase 2, the lost ones: blocks still unreached, in address order, each
//!   leads a *clique*: the unreached blocks it reaches (start or interior
//!   pointers alike) become *indirectly lost* and their bytes (and those of
//!   an earlier clique they absorb) count as the leader's indirect bytes.
//!   The leaders are *definitely lost*. A cycle of lost blocks gives one
//!   definite (its lowest address) and the rest indirect, as memcheck does.
//!
//! Conservative and word-sized: words at 8-byte aligned addresses; an
//! interior lookup is a binary search in the sorted blocks; iterative (an
//! explicit stack). Unit tests run it on arrays (`tests` below).
//!
//! Custom allocators' objects (`memtrace_track`) lie inside heap blocks (a
//! pool's chunk), so they are a second layer of blocks (`classify_layers`),
//! each layer sorted and without overlaps of its own: a word marks the
//! block it points into in *each* layer. The chunk stays a block, reached
//! by the pool's pointers to it as before; an object is reached only by a
//! pointer to it (or into it), like a heap block. Scanning a reached chunk
//! reads its objects' words too, so what a lost object points to may count
//! as reached through the chunk: the rule errs towards "reachable", never
//! towards a false leak. memcheck removes a malloc'd block that holds
//! MALLOCLIKE blocks from its check instead; here its bytes stay accounted
//! for, as the heap's figures require.

/// Where block contents and roots are read from.
pub trait Reader {
    /// Fills `out` with the words at `addr` (8-byte aligned) and after;
    /// returns how many words from the start were read (fewer when the
    /// memory stops being readable).
    fn read(&mut self, addr: u64, out: &mut [u64]) -> usize;
    /// Checked every so often: true stops the scan (`Incomplete`).
    fn out_of_time(&mut self) -> bool {
        false
    }
    /// Reads several ranges `(addr, words)` one after the other into `out`
    /// (as long as their sum); returns how many words from the start of
    /// `out` were read: a shortfall stops at the first range that could
    /// not be read whole. One system call for many small blocks.
    fn read_many(&mut self, ranges: &[(u64, usize)], out: &mut [u64]) -> usize {
        let mut at = 0;
        for &(addr, n) in ranges {
            let got = self.read(addr, &mut out[at..at + n]);
            at += got;
            if got < n {
                break;
            }
        }
        at
    }
}

/// Blocks this small are read many at a time.
const SMALL_WORDS: usize = 512;
/// At most this many ranges a call (the kernel's IOV_MAX is 1024).
const BATCH: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
#[repr(u8)]
pub enum Class {
    /// No pointer to it at all (a clique leader).
    Definite = 0,
    /// Reached only from lost blocks.
    Indirect = 1,
    /// Reached from a root only through an interior pointer.
    Possible = 2,
    /// A chain of start pointers from a root.
    Reachable = 3,
}

/// A live block as the scan sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Block {
    pub addr: u64,
    pub size: u64,
}

/// Options.
#[derive(Clone, Copy, Default)]
pub struct Params {
    /// Ignore interior pointers to where glibc keeps the header of the next
    /// chunk (`addr + usable − 8`): malloc's own bins point there, from
    /// libc's data, and are no pointers of the program.
    pub glibc_chunk_headers: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Per block, in the order given.
    pub class: Vec<Class>,
    /// Per block: for definite ones, the bytes of the blocks of its clique.
    pub indirect: Vec<u64>,
    pub root_bytes: u64,
    pub heap_bytes: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Incomplete {
    /// `Reader::out_of_time` said so.
    OutOfTime,
    /// No memory for the scan's tables.
    NoMemory,
}

/// The usable size glibc gives a request of `size` bytes (non-mmapped
/// chunks): chunk = max(32, align16(size + 8)), usable = chunk − 8.
pub fn glibc_usable(size: u64) -> u64 {
    let chunk = (size.saturating_add(8).saturating_add(15) & !15).max(32);
    chunk - 8
}

const CHUNK_WORDS: usize = 8192;
const PAGE: u64 = 4096;
const UNREACHED: u8 = 4;

struct Scanner<'a, R: Reader> {
    /// The heap's blocks, then the custom allocators' objects: block i of
    /// layer 1 is number `layers[0].len() + i`.
    layers: [&'a [Block]; 2],
    reader: R,
    params: Params,
    state: Vec<u8>,
    indirect: Vec<u64>,
    stack: Vec<u32>,
    buf: Vec<u64>,
    words: u64,
    root_bytes: u64,
    heap_bytes: u64,
}

#[derive(Clone, Copy)]
enum Mode {
    /// Phase 1.
    Roots,
    /// Phase 2: the clique of this leader.
    Clique(u32),
}

impl<R: Reader> Scanner<'_, R> {
    /// Block number `i` (both layers).
    #[inline]
    fn block(&self, i: usize) -> Block {
        let heap = self.layers[0];
        if i < heap.len() {
            heap[i]
        } else {
            self.layers[1][i - heap.len()]
        }
    }

    /// The block of `layer` `ptr` points into (its number), and whether to
    /// its start.
    #[inline]
    fn lookup(&self, layer: usize, ptr: u64) -> Option<(usize, bool)> {
        let blocks = self.layers[layer];
        let i = blocks.partition_point(|b| b.addr <= ptr);
        if i == 0 {
            return None;
        }
        let b = blocks[i - 1];
        let number = i - 1 + if layer == 0 { 0 } else { self.layers[0].len() };
        if ptr == b.addr {
            return Some((number, true));
        }
        if ptr - b.addr >= b.size {
            return None;
        }
        // glibc's chunk headers follow heap blocks only.
        if layer == 0 && self.params.glibc_chunk_headers && ptr - b.addr == glibc_usable(b.size) - 8
        {
            return None;
        }
        Some((number, false))
    }

    #[inline]
    fn visit(&mut self, word: u64, mode: Mode) {
        self.visit_layer(0, word, mode);
        if !self.layers[1].is_empty() {
            self.visit_layer(1, word, mode);
        }
    }

    #[inline]
    fn visit_layer(&mut self, layer: usize, word: u64, mode: Mode) {
        let blocks = self.layers[layer];
        // Cheap reject: below the first block or past the last one.
        let (first, last) = match (blocks.first(), blocks.last()) {
            (Some(f), Some(l)) => (f.addr, l.addr.saturating_add(l.size.max(1))),
            _ => return,
        };
        if word < first || word >= last {
            return;
        }
        let Some((i, start)) = self.lookup(layer, word) else {
            return;
        };
        match mode {
            Mode::Roots => {
                let via = if start {
                    Class::Reachable as u8
                } else {
                    Class::Possible as u8
                };
                let s = self.state[i];
                if s == UNREACHED || (s == Class::Possible as u8 && via == Class::Reachable as u8) {
                    self.state[i] = via;
                    self.stack.push(i as u32);
                }
            }
            Mode::Clique(leader) => {
                if self.state[i] == UNREACHED && i as u32 != leader {
                    self.state[i] = Class::Indirect as u8;
                    let absorbed = self.block(i).size + std::mem::take(&mut self.indirect[i]);
                    self.indirect[leader as usize] += absorbed;
                    self.stack.push(i as u32);
                }
            }
        }
    }

    /// Scans the aligned words of `[start, end)`.
    fn scan_range(&mut self, start: u64, end: u64, mode: Mode) -> Result<u64, Incomplete> {
        let mut at = start.saturating_add(7) & !7;
        let mut scanned = 0;
        let mut buf = std::mem::take(&mut self.buf);
        while at < end && end - at >= 8 {
            let n = (((end - at) / 8) as usize).min(CHUNK_WORDS);
            let got = self.reader.read(at, &mut buf[..n]);
            for &w in &buf[..got.min(n)] {
                self.visit(w, mode);
            }
            scanned += got as u64 * 8;
            self.words += got as u64;
            if got < n {
                // Unreadable from at + got words: skip to the next page.
                let bad = at + got as u64 * 8;
                at = (bad & !(PAGE - 1)) + PAGE;
            } else {
                at += n as u64 * 8;
            }
            if self.words >= 1 << 16 {
                self.words = 0;
                if self.reader.out_of_time() {
                    self.buf = buf;
                    return Err(Incomplete::OutOfTime);
                }
            }
        }
        self.buf = buf;
        Ok(scanned)
    }

    fn drain(&mut self, mode: Mode) -> Result<(), Incomplete> {
        let mut batch: Vec<u32> = Vec::new();
        let mut ranges: Vec<(u64, usize)> = Vec::new();
        while let Some(i) = self.stack.pop() {
            let b = self.block(i as usize);
            let (start, n) = words_of(b);
            if n > SMALL_WORDS {
                let got = self.scan_range(b.addr, b.addr.saturating_add(b.size), mode)?;
                self.heap_bytes += got;
                continue;
            }
            // Small: gather more small ones from the stack's top (the
            // result does not depend on the order blocks are scanned in).
            batch.clear();
            ranges.clear();
            batch.push(i);
            ranges.push((start, n));
            let mut total = n;
            while batch.len() < BATCH {
                let Some(&j) = self.stack.last() else { break };
                let (s2, n2) = words_of(self.block(j as usize));
                if n2 > SMALL_WORDS || total + n2 > CHUNK_WORDS {
                    break;
                }
                self.stack.pop();
                batch.push(j);
                ranges.push((s2, n2));
                total += n2;
            }
            let mut buf = std::mem::take(&mut self.buf);
            let got = self.reader.read_many(&ranges, &mut buf[..total]);
            let mut at = 0;
            let mut k = 0;
            // Whole ranges read: visit their words.
            while k < ranges.len() && at + ranges[k].1 <= got {
                for &w in &buf[at..at + ranges[k].1] {
                    self.visit(w, mode);
                }
                at += ranges[k].1;
                k += 1;
            }
            self.buf = buf;
            self.heap_bytes += at as u64 * 8;
            self.words += at as u64;
            // The rest one by one (an unreadable page on the way).
            for &(s2, n2) in &ranges[k..] {
                let got = self.scan_range(s2, s2 + n2 as u64 * 8, mode)?;
                self.heap_bytes += got;
            }
            if self.words >= 1 << 16 {
                self.words = 0;
                if self.reader.out_of_time() {
                    return Err(Incomplete::OutOfTime);
                }
            }
        }
        Ok(())
    }
}

/// A block's aligned words: first address and how many.
fn words_of(b: Block) -> (u64, usize) {
    let start = b.addr.saturating_add(7) & !7;
    let end = b.addr.saturating_add(b.size);
    (start, (end.saturating_sub(start) / 8) as usize)
}

/// Classifies `blocks` (sorted by address, not overlapping) reading memory
/// through `reader`, from the roots `roots` (`[start, end)` ranges).
#[cfg(test)]
pub fn classify<R: Reader>(
    blocks: &[Block],
    roots: &[(u64, u64)],
    reader: R,
    params: Params,
) -> Result<Outcome, Incomplete> {
    classify_layers(blocks, &[], roots, reader, params)
}

/// `classify` of the heap's `blocks` and the custom allocators' `objects`
/// (each sorted by address, not overlapping within itself; see the module
/// doc). The outcome lists the blocks, then the objects.
pub fn classify_layers<R: Reader>(
    blocks: &[Block],
    objects: &[Block],
    roots: &[(u64, u64)],
    reader: R,
    params: Params,
) -> Result<Outcome, Incomplete> {
    debug_assert!(blocks.windows(2).all(|w| w[0].addr < w[1].addr));
    debug_assert!(objects
        .windows(2)
        .all(|w| w[0].addr.saturating_add(w[0].size) <= w[1].addr));
    let n = blocks.len() + objects.len();
    // The program's memory is not ours to exhaust: no room, no scan.
    let (mut state, mut indirect, mut stack, mut buf) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if state.try_reserve_exact(n).is_err()
        || indirect.try_reserve_exact(n).is_err()
        || stack.try_reserve_exact(n).is_err()
        || buf.try_reserve_exact(CHUNK_WORDS).is_err()
    {
        return Err(Incomplete::NoMemory);
    }
    state.resize(n, UNREACHED);
    indirect.resize(n, 0);
    buf.resize(CHUNK_WORDS, 0);
    let mut s = Scanner {
        layers: [blocks, objects],
        reader,
        params,
        state,
        indirect,
        stack,
        buf,
        words: 0,
        root_bytes: 0,
        heap_bytes: 0,
    };
    for &(start, end) in roots {
        let n = s.scan_range(start, end, Mode::Roots)?;
        s.root_bytes += n;
        s.drain(Mode::Roots)?;
    }
    for i in 0..n {
        if s.state[i] == UNREACHED {
            // A leader stays unreached (definite) unless a later clique
            // takes it in.
            s.stack.push(i as u32);
            s.drain(Mode::Clique(i as u32))?;
        }
    }
    let class = s
        .state
        .iter()
        .map(|&c| match c {
            1 => Class::Indirect,
            2 => Class::Possible,
            3 => Class::Reachable,
            _ => Class::Definite,
        })
        .collect();
    Ok(Outcome {
        class,
        indirect: s.indirect,
        root_bytes: s.root_bytes,
        heap_bytes: s.heap_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory: words at chosen addresses; anything else unreadable.
    struct Fake(std::collections::BTreeMap<u64, u64>);

    impl Reader for &Fake {
        fn read(&mut self, addr: u64, out: &mut [u64]) -> usize {
            for (k, o) in out.iter_mut().enumerate() {
                match self.0.get(&(addr + 8 * k as u64)) {
                    Some(&w) => *o = w,
                    None => return k,
                }
            }
            out.len()
        }
    }

    const ROOT: u64 = 0x1000;

    /// Blocks of 32 bytes at 0x10000 + 0x100·i, zero-filled, plus a root
    /// range of 4 words at ROOT.
    fn setup(n: usize) -> (Vec<Block>, Fake) {
        let mut m = std::collections::BTreeMap::new();
        let blocks: Vec<Block> = (0..n)
            .map(|i| Block {
                addr: 0x10000 + 0x100 * i as u64,
                size: 32,
            })
            .collect();
        for b in &blocks {
            for w in 0..4 {
                m.insert(b.addr + 8 * w, 0);
            }
        }
        for w in 0..4 {
            m.insert(ROOT + 8 * w, 0);
        }
        (blocks, Fake(m))
    }

    fn run(blocks: &[Block], mem: &Fake) -> Outcome {
        classify(
            blocks,
            &[(ROOT, ROOT + 32)],
            mem,
            Params {
                glibc_chunk_headers: true,
            },
        )
        .unwrap()
    }

    fn b(i: u64) -> u64 {
        0x10000 + 0x100 * i
    }

    #[test]
    fn nothing_points_definite() {
        let (blocks, mem) = setup(2);
        let o = run(&blocks, &mem);
        assert_eq!(o.class, vec![Class::Definite, Class::Definite]);
        assert_eq!(o.indirect, vec![0, 0]);
    }

    #[test]
    fn chain_from_root_reachable_and_from_lost_indirect() {
        let (blocks, mut mem) = setup(5);
        mem.0.insert(ROOT, b(0)); // root → 0 → 1
        mem.0.insert(b(0) + 8, b(1));
        mem.0.insert(b(2), b(3)); // 2 → 3 → 4, 2 lost
        mem.0.insert(b(3) + 24, b(4));
        let o = run(&blocks, &mem);
        use Class::*;
        assert_eq!(
            o.class,
            vec![Reachable, Reachable, Definite, Indirect, Indirect]
        );
        assert_eq!(o.indirect, vec![0, 0, 64, 0, 0]);
        assert_eq!(o.root_bytes, 32);
    }

    #[test]
    fn interior_pointer_possible_then_start_upgrades() {
        let (blocks, mut mem) = setup(3);
        mem.0.insert(ROOT, b(0) + 16); // interior → possible
        mem.0.insert(b(0), b(1)); // possible's child by start: reachable (memcheck)
        mem.0.insert(ROOT + 8, b(2) + 8);
        let o = run(&blocks, &mem);
        assert_eq!(
            o.class,
            vec![Class::Possible, Class::Reachable, Class::Possible]
        );
        mem.0.insert(ROOT + 16, b(2)); // and a start pointer after: reachable
        let o = run(&blocks, &mem);
        assert_eq!(o.class[2], Class::Reachable);
    }

    #[test]
    fn cycle_of_lost_blocks_is_lost() {
        let (blocks, mut mem) = setup(3);
        mem.0.insert(b(0), b(1));
        mem.0.insert(b(1), b(2));
        mem.0.insert(b(2), b(0));
        let o = run(&blocks, &mem);
        use Class::*;
        assert_eq!(o.class, vec![Definite, Indirect, Indirect]);
        assert_eq!(o.indirect, vec![64, 0, 0]);
    }

    #[test]
    fn later_leader_absorbs_an_earlier_clique() {
        // 2 → 0 → 1: 0 leads first (0 + 1), then 2 absorbs it.
        let (blocks, mut mem) = setup(3);
        mem.0.insert(b(0), b(1));
        mem.0.insert(b(2), b(0));
        let o = run(&blocks, &mem);
        use Class::*;
        assert_eq!(o.class, vec![Indirect, Indirect, Definite]);
        assert_eq!(o.indirect, vec![0, 0, 64]);
    }

    #[test]
    fn past_the_end_unaligned_and_headers_ignored() {
        let (blocks, mut mem) = setup(3);
        mem.0.insert(ROOT, b(0) + 32); // one past the end: nothing
        mem.0.insert(ROOT + 8, b(1) + glibc_usable(32) - 8); // next chunk's header
        let o = run(&blocks, &mem);
        assert_eq!(o.class, vec![Class::Definite; 3]);
        // A pointer at an unaligned place is not seen.
        let (blocks, mut mem) = setup(1);
        mem.0.insert(ROOT + 4, b(0));
        assert_eq!(run(&blocks, &mem).class, vec![Class::Definite]);
    }

    #[test]
    fn unreadable_pages_skipped_zero_size_blocks() {
        let (mut blocks, mut mem) = setup(2);
        blocks[1].size = 0;
        // A root range with a hole: words at ROOT.. then unreadable, then a
        // page later a pointer.
        mem.0.insert(ROOT + 0x1000, b(1));
        mem.0.insert(ROOT + 0x1008, b(0) + 8);
        let o = classify(&blocks, &[(ROOT, ROOT + 0x1010)], &mem, Params::default()).unwrap();
        assert_eq!(o.class, vec![Class::Possible, Class::Reachable]);
    }

    #[test]
    fn unreadable_block_in_a_batch() {
        // Root → 0, 1, 2; 1 cannot be read; 0 → 3 is found after it.
        let (blocks, mut mem) = setup(4);
        mem.0.insert(ROOT, b(0));
        mem.0.insert(ROOT + 8, b(1));
        mem.0.insert(ROOT + 16, b(2));
        mem.0.insert(b(0) + 8, b(3));
        for w in 0..4 {
            mem.0.remove(&(b(1) + 8 * w));
        }
        let o = run(&blocks, &mem);
        assert_eq!(o.class, vec![Class::Reachable; 4]);
        assert_eq!(o.heap_bytes, 3 * 32);
    }

    /// A pool: one heap chunk holding three objects. The root points to
    /// the chunk (the pool's pointer), which is also the first object's
    /// start; nothing points to the second; the second points to the third.
    /// Chunk and first object reachable, the second definitely lost, the
    /// third reached through the chunk's words (the rule errs towards
    /// reachable).
    #[test]
    fn objects_inside_a_chunk_are_a_layer_of_their_own() {
        let chunk = Block {
            addr: 0x10000,
            size: 256,
        };
        let obj = |k: u64| Block {
            addr: 0x10000 + 0x40 * k,
            size: 32,
        };
        let mut m = std::collections::BTreeMap::new();
        for w in 0..32 {
            m.insert(chunk.addr + 8 * w, 0);
        }
        for w in 0..4 {
            m.insert(ROOT + 8 * w, 0);
        }
        m.insert(ROOT, chunk.addr);
        m.insert(obj(1).addr, obj(2).addr);
        let o = classify_layers(
            &[chunk],
            &[obj(0), obj(1), obj(2)],
            &[(ROOT, ROOT + 32)],
            &Fake(m),
            Params::default(),
        )
        .unwrap();
        assert_eq!(
            o.class,
            vec![
                Class::Reachable,
                Class::Reachable,
                Class::Definite,
                Class::Reachable
            ]
        );
        assert_eq!(o.indirect, vec![0, 0, 0, 0]);
    }

    #[test]
    fn deep_chain_no_recursion_and_time_bound() {
        let n = 200_000;
        let (blocks, mut mem) = setup(n);
        for i in 0..n as u64 - 1 {
            mem.0.insert(b(i) + 8, b(i + 1));
        }
        let o = run(&blocks, &mem);
        assert_eq!(o.class[0], Class::Definite);
        assert!(o.class[1..].iter().all(|&c| c == Class::Indirect));
        assert_eq!(o.indirect[0], 32 * (n as u64 - 1));

        struct Never<'a>(&'a Fake);
        impl Reader for Never<'_> {
            fn read(&mut self, addr: u64, out: &mut [u64]) -> usize {
                let mut r = self.0;
                r.read(addr, out)
            }
            fn out_of_time(&mut self) -> bool {
                true
            }
        }
        assert_eq!(
            classify(&blocks, &[], Never(&mem), Params::default()),
            Err(Incomplete::OutOfTime)
        );
    }
}
