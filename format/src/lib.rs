//! The memtrace snapshot dump format (see `docs/FORMAT.md`, which this code
//! must match).
//!
//! A dump is `MAGIC`, a major and a minor version, then a list of sections
//! (`tag: u8`, `len: varint`, `len` bytes), closed by an `END` section whose
//! payload is the CRC-32 of every byte before it. Sections are length-framed
//! so that a later minor version can add sections an older reader skips, and
//! so that the future history stream can reuse the same framing.
//!
//! The writer side (`encode`) is called by libtrace.so's writer thread; the
//! reader side (`decode`) takes untrusted bytes and never panics, never loops
//! without consuming input, and never allocates more than the input could
//! describe.
//!
//! Besides the format, the conventions libtrace.so and the analyzer share:
//! [`naming`] (snapshot file names, `%p`) and [`signals`] (signal names).

pub mod domains;
pub mod history;
pub mod leaks;
pub mod naming;
pub mod signals;
pub mod tracing_start;
pub mod varint;
pub mod whole_run;

use std::fmt;
use varint::{put_blob, put_u64, unzigzag, zigzag, Reader};
pub use whole_run::{
    MemoryUse, Peak, SnapshotMark, StackTotals, TimePoint, Timeline, WholeRun,
    MAX_POINTS_IN_TIMELINE,
};

/// First eight bytes of every dump.
pub const MAGIC: &[u8; 8] = b"MEMTRACE";
/// Files with another major version are refused; minor versions only add
/// sections or trailing fields.
pub const VERSION_MAJOR: u16 = 1;
pub const VERSION_MINOR: u16 = 4;
/// Deepest stack a dump may hold (`MEMTRACE_FRAMES` is capped at 256).
pub const MAX_FRAMES: usize = 256;

pub mod tag {
    pub const HEADER: u8 = 0x01;
    pub const MODULES: u8 = 0x02;
    pub const STACKS: u8 = 0x03;
    pub const TRACES: u8 = 0x04;
    pub const END: u8 = 0xff;
}

/// Why a dump was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SnapshotKind {
    /// On the snapshot signal; `Header::index` is n of `<prefix>.<n>.snap`.
    #[default]
    Signal,
    /// At exit: what was never freed.
    Exit,
}

/// `Header::default()`: a signal snapshot with every number 0 and every
/// string empty, for tools and tests that build dumps themselves.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Header {
    pub kind: SnapshotKind,
    /// n of `<prefix>.<n>.snap`; 0 for the exit snapshot.
    pub index: u64,
    pub pid: u32,
    /// Wall-clock time of the snapshot moment, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Global event sequence number at the snapshot moment: the dump holds
    /// exactly the events numbered below it.
    pub seq: u64,
    /// `MEMTRACE_FRAMES` in force: stacks hold at most this many frames.
    pub frame_limit: u32,
    /// Sum of the requested sizes of the live blocks (get_traced_memory()[0]).
    pub traced_bytes: u64,
    /// Highest `traced_bytes` seen so far (get_traced_memory()[1]).
    pub peak_bytes: u64,
    /// Allocations and frees recorded so far (every traced call, not only live ones).
    pub alloc_count: u64,
    pub free_count: u64,
    /// Mean bytes between samples, 0 when every allocation is recorded.
    pub sample_rate: u64,
    /// argv of the traced process, raw bytes (not necessarily UTF-8).
    pub cmdline: Vec<Vec<u8>>,
    /// `/proc/self/exe` at start.
    pub exe: Vec<u8>,
    /// (1.1) Empty when the program's `malloc` is libtrace.so's. Otherwise the
    /// path of the module whose `malloc` the program really calls (jemalloc
    /// linked in, say): its allocations bypass the hooks and are not traced.
    pub malloc_owner: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// p_vaddr of the PT_LOAD header; loaded at `Module::base + vaddr`.
    pub vaddr: u64,
    pub memsz: u64,
    /// p_offset in the file.
    pub file_offset: u64,
    /// p_flags (PF_X = 1, PF_W = 2, PF_R = 4).
    pub flags: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Path as the dynamic loader knows it; the main program has its
    /// `/proc/self/exe` path here, the vDSO `[vdso]`.
    pub path: Vec<u8>,
    /// Load bias (dlpi_addr): runtime address = base + ELF virtual address.
    pub base: u64,
    /// NT_GNU_BUILD_ID, empty if the module has none.
    pub build_id: Vec<u8>,
    /// Unloaded (dlclose) before the snapshot, kept because a stack points into it.
    pub unloaded: bool,
    pub segments: Vec<Segment>,
}

impl Module {
    /// True if the runtime address `addr` lies in one of this module's segments.
    pub fn contains(&self, addr: u64) -> bool {
        self.segments.iter().any(|s| {
            let start = self.base.wrapping_add(s.vaddr);
            addr >= start && addr - start < s.memsz
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stack {
    /// Interned id, unique within the file; traces refer to it.
    pub id: u64,
    /// Return addresses, most recent call first. The analyzer looks up
    /// address − 1 to land inside the calling instruction.
    pub frames: Vec<u64>,
    /// The real stack was deeper than `Header::frame_limit` and was cut.
    pub truncated: bool,
}

/// `count` live blocks of `size` requested bytes each, allocated at `stack`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceGroup {
    pub stack: u64,
    pub size: u64,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub header: Header,
    pub modules: Vec<Module>,
    /// Every stack a trace, the peak or the totals name.
    pub stacks: Vec<Stack>,
    pub traces: Vec<TraceGroup>,
    /// (1.4) The domain of each trace group, parallel to `traces` (0: the
    /// malloc heap; other: a custom allocator's objects, `memtrace_track`);
    /// empty when every group is the heap's.
    pub domains: Vec<u32>,
    /// (1.2) The whole run up to this moment; empty in older files.
    pub run: WholeRun,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// Does not start with the magic: not a memtrace snapshot at all.
    NotASnapshot,
    /// A major version this code does not read.
    UnsupportedVersion(u16),
    /// Ends before the END section or in the middle of a field.
    Truncated,
    /// The END checksum does not match: the bytes were damaged.
    BadChecksum,
    /// Structurally invalid.
    Corrupt(&'static str),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::NotASnapshot => write!(f, "not a memtrace snapshot (bad magic)"),
            FormatError::UnsupportedVersion(v) => write!(
                f,
                "snapshot format version {v} is not supported (this memtrace reads version {VERSION_MAJOR})"
            ),
            FormatError::Truncated => write!(f, "truncated snapshot"),
            FormatError::BadChecksum => write!(f, "corrupt snapshot (checksum mismatch)"),
            FormatError::Corrupt(what) => write!(f, "corrupt snapshot ({what})"),
        }
    }
}

impl std::error::Error for FormatError {}

// ---------------------------------------------------------------- encoding

fn section(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    out.push(tag);
    put_blob(out, payload);
}

fn encode_header(h: &Header) -> Vec<u8> {
    let mut p = Vec::with_capacity(256);
    p.push(match h.kind {
        SnapshotKind::Signal => 0,
        SnapshotKind::Exit => 1,
    });
    for v in [
        h.index,
        h.pid as u64,
        h.time_ns,
        h.seq,
        h.frame_limit as u64,
        h.traced_bytes,
        h.peak_bytes,
        h.alloc_count,
        h.free_count,
        h.sample_rate,
    ] {
        put_u64(&mut p, v);
    }
    put_u64(&mut p, h.cmdline.len() as u64);
    for a in &h.cmdline {
        put_blob(&mut p, a);
    }
    put_blob(&mut p, &h.exe);
    put_blob(&mut p, &h.malloc_owner);
    p
}

pub(crate) fn encode_modules(mods: &[Module]) -> Vec<u8> {
    let mut p = Vec::new();
    put_u64(&mut p, mods.len() as u64);
    for m in mods {
        put_blob(&mut p, &m.path);
        put_u64(&mut p, m.base);
        put_blob(&mut p, &m.build_id);
        p.push(m.unloaded as u8);
        put_u64(&mut p, m.segments.len() as u64);
        for s in &m.segments {
            put_u64(&mut p, s.vaddr);
            put_u64(&mut p, s.memsz);
            put_u64(&mut p, s.file_offset);
            put_u64(&mut p, s.flags as u64);
        }
    }
    p
}

/// Frames are delta-coded against the previous frame of the same stack:
/// neighbouring frames usually sit in the same module, so deltas are short.
pub(crate) fn encode_stacks(stacks: &[Stack]) -> Vec<u8> {
    let mut p = Vec::new();
    put_u64(&mut p, stacks.len() as u64);
    for s in stacks {
        put_u64(&mut p, s.id);
        p.push(s.truncated as u8);
        put_u64(&mut p, s.frames.len() as u64);
        let mut prev = 0u64;
        for &f in &s.frames {
            put_u64(&mut p, zigzag(f.wrapping_sub(prev) as i64));
            prev = f;
        }
    }
    p
}

fn encode_traces(traces: &[TraceGroup]) -> Vec<u8> {
    let mut p = Vec::with_capacity(traces.len() * 6 + 8);
    encode_trace_groups(&mut p, traces);
    p
}

/// A count, then (stack, size, count) per group: TRACES and PEAK alike.
pub(crate) fn encode_trace_groups(p: &mut Vec<u8>, groups: &[TraceGroup]) {
    put_u64(p, groups.len() as u64);
    for t in groups {
        put_u64(p, t.stack);
        put_u64(p, t.size);
        put_u64(p, t.count);
    }
}

/// Encodes a whole snapshot. The caller writes the bytes to a temporary file
/// and renames it, so a reader never sees a half-written dump under its name.
pub fn encode(s: &Snapshot) -> Vec<u8> {
    encode_with_leaks(s, None)
}

/// `encode`, with the exit snapshot's LEAKS section (1.3) when given.
pub fn encode_with_leaks(s: &Snapshot, leak_check: Option<&leaks::LeakCheck>) -> Vec<u8> {
    encode_full(s, leak_check, None)
}

/// `encode_with_leaks`, with the TRACING_START section (1.4) of a process
/// traced since `memtrace attach` when given.
pub fn encode_full(
    s: &Snapshot,
    leak_check: Option<&leaks::LeakCheck>,
    start: Option<&tracing_start::TracingStart>,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION_MAJOR.to_le_bytes());
    out.extend_from_slice(&VERSION_MINOR.to_le_bytes());
    section(&mut out, tag::HEADER, &encode_header(&s.header));
    section(&mut out, tag::MODULES, &encode_modules(&s.modules));
    section(&mut out, tag::STACKS, &encode_stacks(&s.stacks));
    section(&mut out, tag::TRACES, &encode_traces(&s.traces));
    if let Some(d) = domains::encode_domains(&s.domains) {
        section(&mut out, domains::TAG, &d);
    }
    encode_whole_run(&mut out, &s.run);
    if let Some(l) = leak_check {
        section(&mut out, leaks::TAG, &leaks::encode_leaks(l));
        if let Some(d) = leaks::encode_domain_leaks(l) {
            section(&mut out, leaks::DOMAIN_TAG, &d);
        }
    }
    if let Some(t) = start {
        section(
            &mut out,
            tracing_start::TAG,
            &tracing_start::encode_tracing_start(t),
        );
    }
    let crc = crc32fast::hash(&out);
    out.push(tag::END);
    put_blob(&mut out, &crc.to_le_bytes());
    out
}

/// The whole-run sections that hold something (whole_run.rs).
fn encode_whole_run(out: &mut Vec<u8>, run: &WholeRun) {
    if let Some(p) = &run.peak {
        section(out, whole_run::tag::PEAK, &whole_run::encode_peak(p));
    }
    if !run.totals.is_empty() {
        section(
            out,
            whole_run::tag::TOTALS,
            &whole_run::encode_totals(&run.totals),
        );
    }
    if let Some(t) = &run.timeline {
        section(
            out,
            whole_run::tag::TIMELINE,
            &whole_run::encode_timeline(t),
        );
    }
    if let Some(m) = &run.memory {
        section(out, whole_run::tag::MEMORY, &whole_run::encode_memory(m));
    }
}

// ---------------------------------------------------------------- decoding

fn decode_header(r: &mut Reader) -> Result<Header, FormatError> {
    let kind = match r.u8()? {
        0 => SnapshotKind::Signal,
        1 => SnapshotKind::Exit,
        _ => return Err(FormatError::Corrupt("unknown snapshot kind")),
    };
    let index = r.u64()?;
    let pid = r.bounded(u32::MAX as u64, "pid out of range")? as u32;
    let time_ns = r.u64()?;
    let seq = r.u64()?;
    let frame_limit = r.bounded(MAX_FRAMES as u64, "frame limit out of range")? as u32;
    let traced_bytes = r.u64()?;
    let peak_bytes = r.u64()?;
    let alloc_count = r.u64()?;
    let free_count = r.u64()?;
    let sample_rate = r.u64()?;
    let n = r.count(1, "argument count past end")?;
    let mut cmdline = Vec::with_capacity(n);
    for _ in 0..n {
        cmdline.push(r.blob()?.to_vec());
    }
    let exe = r.blob()?.to_vec();
    // Fields added by minor versions are read only when present.
    let malloc_owner = if r.is_empty() {
        Vec::new()
    } else {
        r.blob()?.to_vec()
    };
    Ok(Header {
        kind,
        index,
        pid,
        time_ns,
        seq,
        frame_limit,
        traced_bytes,
        peak_bytes,
        alloc_count,
        free_count,
        sample_rate,
        cmdline,
        exe,
        malloc_owner,
    })
}

pub(crate) fn decode_modules(r: &mut Reader) -> Result<Vec<Module>, FormatError> {
    let n = r.count(5, "module count past end")?;
    let mut mods = Vec::with_capacity(n);
    for _ in 0..n {
        let path = r.blob()?.to_vec();
        let base = r.u64()?;
        let build_id = r.blob()?.to_vec();
        let unloaded = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(FormatError::Corrupt("bad module flag")),
        };
        let ns = r.count(4, "segment count past end")?;
        let mut segments = Vec::with_capacity(ns);
        for _ in 0..ns {
            segments.push(Segment {
                vaddr: r.u64()?,
                memsz: r.u64()?,
                file_offset: r.u64()?,
                flags: r.bounded(u32::MAX as u64, "segment flags out of range")? as u32,
            });
        }
        mods.push(Module {
            path,
            base,
            build_id,
            unloaded,
            segments,
        });
    }
    Ok(mods)
}

pub(crate) fn decode_stacks(r: &mut Reader) -> Result<Vec<Stack>, FormatError> {
    let n = r.count(3, "stack count past end")?;
    let mut stacks = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.u64()?;
        let truncated = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(FormatError::Corrupt("bad stack flag")),
        };
        let nf = r.bounded(MAX_FRAMES as u64, "stack deeper than 256 frames")? as usize;
        let mut frames = Vec::with_capacity(nf.min(r.remaining()));
        let mut prev = 0u64;
        for _ in 0..nf {
            prev = prev.wrapping_add(unzigzag(r.u64()?) as u64);
            frames.push(prev);
        }
        stacks.push(Stack {
            id,
            frames,
            truncated,
        });
    }
    Ok(stacks)
}

fn decode_traces(r: &mut Reader) -> Result<Vec<TraceGroup>, FormatError> {
    decode_trace_groups(r)
}

pub(crate) fn decode_trace_groups(r: &mut Reader) -> Result<Vec<TraceGroup>, FormatError> {
    let n = r.count(3, "trace count past end")?;
    let mut traces = Vec::with_capacity(n);
    for _ in 0..n {
        traces.push(TraceGroup {
            stack: r.u64()?,
            size: r.u64()?,
            count: r.u64()?,
        });
    }
    Ok(traces)
}

/// Checks the framing: magic, version, and that the END section's CRC covers
/// everything before it. Returns the sections' bytes (without the END).
pub(crate) fn check_envelope(bytes: &[u8]) -> Result<&[u8], FormatError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(FormatError::NotASnapshot);
    }
    if bytes.len() < 12 {
        return Err(FormatError::Truncated);
    }
    let major = u16::from_le_bytes([bytes[8], bytes[9]]);
    if major != VERSION_MAJOR {
        return Err(FormatError::UnsupportedVersion(major));
    }
    // END is the last 6 bytes: tag, length 4, CRC-32 little-endian.
    if bytes.len() < 12 + 6 {
        return Err(FormatError::Truncated);
    }
    let end = bytes.len() - 6;
    if bytes[end] != tag::END || bytes[end + 1] != 4 {
        return Err(FormatError::Truncated);
    }
    let want = u32::from_le_bytes([
        bytes[end + 2],
        bytes[end + 3],
        bytes[end + 4],
        bytes[end + 5],
    ]);
    if crc32fast::hash(&bytes[..end]) != want {
        return Err(FormatError::BadChecksum);
    }
    Ok(&bytes[12..end])
}

/// Decodes a dump from untrusted bytes.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, FormatError> {
    let body = check_envelope(bytes)?;
    let mut r = Reader::new(body);
    let (mut header, mut modules, mut stacks, mut traces) = (None, None, None, None);
    let (mut peak, mut totals, mut timeline, mut memory) = (None, None, None, None);
    let mut domain_pairs = None;
    while !r.is_empty() {
        let t = r.u8()?;
        let mut s = Reader::new(r.blob()?);
        use whole_run::tag as run;
        match t {
            tag::HEADER if header.is_none() => header = Some(decode_header(&mut s)?),
            tag::MODULES if modules.is_none() => modules = Some(decode_modules(&mut s)?),
            tag::STACKS if stacks.is_none() => stacks = Some(decode_stacks(&mut s)?),
            tag::TRACES if traces.is_none() => traces = Some(decode_traces(&mut s)?),
            run::PEAK if peak.is_none() => peak = Some(whole_run::decode_peak(&mut s)?),
            run::TOTALS if totals.is_none() => totals = Some(whole_run::decode_totals(&mut s)?),
            run::TIMELINE if timeline.is_none() => {
                timeline = Some(whole_run::decode_timeline(&mut s)?)
            }
            run::MEMORY if memory.is_none() => memory = Some(whole_run::decode_memory(&mut s)?),
            domains::TAG if domain_pairs.is_none() => {
                domain_pairs = Some(domains::decode_domains(&mut s)?)
            }
            tag::HEADER
            | tag::MODULES
            | tag::STACKS
            | tag::TRACES
            | run::PEAK
            | run::TOTALS
            | run::TIMELINE
            | run::MEMORY
            | domains::TAG => return Err(FormatError::Corrupt("section appears twice")),
            tag::END => return Err(FormatError::Corrupt("END section before the end")),
            _ => continue, // a section from a newer minor version: skip it
        }
    }
    let header = header.ok_or(FormatError::Corrupt("no header section"))?;
    let stacks = stacks.ok_or(FormatError::Corrupt("no stacks section"))?;
    let traces: Vec<TraceGroup> = traces.ok_or(FormatError::Corrupt("no traces section"))?;
    let domains = domains::expand(&domain_pairs.unwrap_or_default(), traces.len())?;
    let snap = Snapshot {
        header,
        modules: modules.unwrap_or_default(),
        stacks,
        traces,
        domains,
        run: WholeRun {
            peak,
            totals: totals.unwrap_or_default(),
            timeline,
            memory,
        },
    };
    validate(&snap)?;
    Ok(snap)
}

/// Cross-references: stack ids are unique, every trace names a stack, no
/// stack is deeper than the frame limit.
fn validate(s: &Snapshot) -> Result<(), FormatError> {
    let mut ids: Vec<u64> = s.stacks.iter().map(|st| st.id).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(FormatError::Corrupt("duplicate stack id"));
    }
    if s.stacks
        .iter()
        .any(|st| st.frames.len() > s.header.frame_limit as usize)
    {
        return Err(FormatError::Corrupt("stack deeper than the frame limit"));
    }
    if s.traces
        .iter()
        .any(|t| ids.binary_search(&t.stack).is_err())
    {
        return Err(FormatError::Corrupt("trace refers to an unknown stack"));
    }
    whole_run::validate(&s.run, &ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            header: Header {
                kind: SnapshotKind::Signal,
                index: 2,
                pid: 4242,
                time_ns: 1_700_000_000_123_456_789,
                seq: 99,
                frame_limit: 32,
                traced_bytes: 3000,
                peak_bytes: 5000,
                alloc_count: 10,
                free_count: 7,
                sample_rate: 0,
                cmdline: vec![b"./app".to_vec(), b"--x".to_vec()],
                exe: b"/tmp/app".to_vec(),
                malloc_owner: Vec::new(),
            },
            modules: vec![Module {
                path: b"/tmp/app".to_vec(),
                base: 0x5555_5555_4000,
                build_id: vec![0xde, 0xad, 0xbe, 0xef],
                unloaded: false,
                segments: vec![Segment {
                    vaddr: 0x1000,
                    memsz: 0x2000,
                    file_offset: 0x1000,
                    flags: 5,
                }],
            }],
            stacks: vec![
                Stack {
                    id: 1,
                    frames: vec![0x5555_5555_5123, 0x5555_5555_5001, 0x7fff_0000_0000],
                    truncated: false,
                },
                Stack {
                    id: 7,
                    frames: vec![0x10],
                    truncated: true,
                },
            ],
            traces: vec![
                TraceGroup {
                    stack: 1,
                    size: 1000,
                    count: 2,
                },
                TraceGroup {
                    stack: 7,
                    size: 1000,
                    count: 1,
                },
            ],
            // The second group is a custom allocator's (1.4 DOMAINS).
            domains: vec![0, 9],
            run: WholeRun {
                peak: Some(Peak {
                    time_ns: 1_700_000_000_100_000_000,
                    event: 77,
                    traced_bytes: 5000,
                    groups: vec![TraceGroup {
                        stack: 1,
                        size: 1000,
                        count: 5,
                    }],
                }),
                totals: vec![
                    StackTotals {
                        stack: 1,
                        allocs: 9,
                        alloc_bytes: 9000,
                        frees: 7,
                        freed_bytes: 7000,
                        temporary: 3,
                        temporary_bytes: 3000,
                    },
                    StackTotals {
                        stack: 7,
                        allocs: 1,
                        alloc_bytes: 1000,
                        ..Default::default()
                    },
                ],
                timeline: Some(Timeline {
                    start_ns: 1_700_000_000_000_000_000,
                    interval_ns: 10_000_000,
                    points: vec![
                        TimePoint {
                            time_ns: 1_700_000_000_010_000_000,
                            traced_bytes: 1000,
                            rss_bytes: 3 << 20,
                        },
                        TimePoint {
                            time_ns: 1_700_000_000_020_000_000,
                            traced_bytes: 5000,
                            rss_bytes: 4 << 20,
                        },
                    ],
                    snapshots: vec![SnapshotMark {
                        index: 1,
                        time_ns: 1_700_000_000_015_000_000,
                    }],
                }),
                memory: Some(MemoryUse {
                    rss_bytes: 4 << 20,
                    rss_peak_bytes: 5 << 20,
                    heap_arena_bytes: 135_168,
                    heap_free_bytes: 100_000,
                    heap_mmap_bytes: 0,
                }),
            },
        }
    }

    #[test]
    fn roundtrip() {
        let s = sample();
        assert_eq!(decode(&encode(&s)).unwrap(), s);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let b = encode(&sample());
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err(), "prefix of {n} bytes accepted");
        }
    }

    #[test]
    fn every_bit_flip_is_an_error() {
        let b = encode(&sample());
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[i] ^= 1 << bit;
                assert!(decode(&c).is_err(), "flip of byte {i} bit {bit} accepted");
            }
        }
    }

    #[test]
    fn foreign_and_future_files() {
        assert_eq!(
            decode(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\0\0\0\0"),
            Err(FormatError::NotASnapshot)
        );
        let mut b = encode(&sample());
        b[8] = 2;
        assert_eq!(decode(&b), Err(FormatError::UnsupportedVersion(2)));
    }

    #[test]
    fn reads_a_1_0_header_without_malloc_owner() {
        let h = sample().header;
        let mut p = encode_header(&h);
        p.pop(); // the empty malloc_owner blob is one zero byte
        assert_eq!(decode_header(&mut Reader::new(&p)).unwrap(), h);
    }

    #[test]
    fn reads_a_1_1_file_without_whole_run_sections() {
        let mut s = sample();
        s.run = WholeRun::default();
        assert_eq!(decode(&encode(&s)).unwrap().run, WholeRun::default());
    }

    #[test]
    fn whole_run_cross_references_are_checked() {
        let mut s = sample();
        s.run.totals[1].stack = 8;
        assert_eq!(
            decode(&encode(&s)),
            Err(FormatError::Corrupt("totals refer to an unknown stack"))
        );
        let mut s = sample();
        s.run.peak.as_mut().unwrap().traced_bytes = 4999;
        assert_eq!(
            decode(&encode(&s)),
            Err(FormatError::Corrupt("peak bytes differ from its groups"))
        );
        let mut s = sample();
        s.run.totals[0].frees = 10;
        assert_eq!(
            decode(&encode(&s)),
            Err(FormatError::Corrupt("totals: more frees than allocations"))
        );
    }

    #[test]
    fn module_contains() {
        let m = &sample().modules[0];
        assert!(m.contains(0x5555_5555_5000));
        assert!(!m.contains(0x5555_5555_4fff));
        assert!(!m.contains(0x5555_5555_7000));
    }
}
