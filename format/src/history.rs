//! The history file `<prefix>.history` (docs/FORMAT.md, "The history
//! file"): a file header, then self-delimiting records, each compressed
//! (raw deflate) and checksummed (CRC-32). The writer appends one record per
//! point with one write(2); a record cut short at the end of the file (the
//! process was killed while writing it, or the file is still being written)
//! is the end of the history, never misread.
//!
//! The reader streams: [`HistoryReader`] returns one record at a time,
//! [`HistoryState`] applies points and holds only what the latest point
//! needs (the live groups, the stacks and modules named so far, the totals
//! per stack, a decimated timeline), and turns it into a [`Snapshot`].

use crate::varint::{put_blob, put_u64, unzigzag, zigzag, Reader};
use crate::whole_run::{decode_totals, encode_totals};
use crate::{
    decode_modules, decode_stacks, encode_modules, encode_stacks, FormatError, Header, Module,
    Peak, Snapshot, SnapshotKind, SnapshotMark, Stack, StackTotals, TimePoint, Timeline,
    TraceGroup, WholeRun, MAX_POINTS_IN_TIMELINE,
};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;

pub const HISTORY_MAGIC: &[u8; 8] = b"MTHISTRY";
pub const HISTORY_MAJOR: u16 = 1;
/// 1: a point may end with the peak's changes (`Point::peak`).
pub const HISTORY_MINOR: u16 = 2;
/// Magic and the two versions.
pub const FILE_HEADER_LEN: usize = 12;
/// Length and CRC of a record.
pub const FRAME_LEN: usize = 8;
/// Largest record body (kind and compressed payload) a reader accepts.
pub const MAX_RECORD: usize = 64 << 20;
/// Largest payload once inflated.
pub const MAX_PAYLOAD: usize = 256 << 20;

pub mod kind {
    pub const START: u8 = 1;
    pub const POINT: u8 = 2;
}

/// What the first record says about the process.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Start {
    pub pid: u32,
    /// Tracing started (the preload's initialisation), ns since the epoch.
    pub start_ns: u64,
    /// MEMTRACE_HISTORY's period, ns.
    pub period_ns: u64,
    pub frame_limit: u32,
    pub sample_rate: u64,
    pub cmdline: Vec<Vec<u8>>,
    pub exe: Vec<u8>,
    pub malloc_owner: Vec<u8>,
    /// A fork child: its parent's pid (its first point holds every group
    /// inherited); 0 otherwise.
    pub parent_pid: u32,
    /// (1.2, trailing) A process traced since `memtrace attach`: when
    /// tracing began, as a snapshot's TRACING_START section says it.
    pub tracing_start: Option<crate::tracing_start::TracingStart>,
}

/// One point: the state at a completed cut, as changes since the previous
/// point of the same file.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Point {
    /// CLOCK_REALTIME of the cut, ns since the epoch.
    pub time_ns: u64,
    /// The cut's number (as a snapshot's `seq`).
    pub seq: u64,
    pub traced_bytes: u64,
    pub peak_bytes: u64,
    pub alloc_count: u64,
    pub free_count: u64,
    pub rss_bytes: u64,
    /// The whole module list when it changed since the previous point.
    pub modules: Option<Vec<Module>>,
    /// Stacks named for the first time.
    pub new_stacks: Vec<Stack>,
    /// (stack, size, change of count), each group at most once.
    pub group_changes: Vec<(u64, u64, i64)>,
    /// The totals of the stacks whose totals changed (absolute values).
    pub totals: Vec<StackTotals>,
    /// The peak when it moved since the previous point (1.1; `None`: it
    /// did not, or the file is 1.0).
    pub peak: Option<PeakChange>,
    /// Snapshots written since the previous point (1.1).
    pub snapshots: Vec<SnapshotMark>,
}

/// The exact peak so far (docs/FORMAT.md, PEAK) as changes of its groups
/// since the peak the previous points gave (1.1).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PeakChange {
    /// Traced bytes at the peak: Σ size × count of its groups.
    pub traced_bytes: u64,
    /// The key of the event that reached it.
    pub event: u64,
    /// When the writer applied that event, ns since the epoch.
    pub time_ns: u64,
    /// (stack, size, change of count at the peak), each group at most once.
    pub groups: Vec<(u64, u64, i64)>,
}

/// A record read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Start(Start),
    Point(Point),
    /// A kind this reader does not know (a later minor version): skipped.
    Unknown(u8),
}

// ---------------------------------------------------------------- writing

/// The first 12 bytes of the file.
pub fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(HISTORY_MAGIC);
    h[8..10].copy_from_slice(&HISTORY_MAJOR.to_le_bytes());
    h[10..12].copy_from_slice(&HISTORY_MINOR.to_le_bytes());
    h
}

/// Frames a record: length, CRC, kind, deflated payload.
fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut body = vec![kind];
    let mut enc = flate2::write::DeflateEncoder::new(body, flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(payload);
    body = enc.finish().unwrap_or_else(|_| vec![kind]);
    let mut out = Vec::with_capacity(FRAME_LEN + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

pub fn encode_start(s: &Start) -> Vec<u8> {
    let mut p = Vec::new();
    put_u64(&mut p, s.pid as u64);
    put_u64(&mut p, s.start_ns);
    put_u64(&mut p, s.period_ns);
    put_u64(&mut p, s.frame_limit as u64);
    put_u64(&mut p, s.sample_rate);
    put_u64(&mut p, s.cmdline.len() as u64);
    for a in &s.cmdline {
        put_blob(&mut p, a);
    }
    put_blob(&mut p, &s.exe);
    put_blob(&mut p, &s.malloc_owner);
    put_u64(&mut p, s.parent_pid as u64);
    if let Some(t) = &s.tracing_start {
        put_blob(&mut p, &crate::tracing_start::encode_tracing_start(t));
    }
    frame(kind::START, &p)
}

pub fn encode_point(pt: &Point) -> Vec<u8> {
    let mut p = Vec::new();
    for v in [
        pt.time_ns,
        pt.seq,
        pt.traced_bytes,
        pt.peak_bytes,
        pt.alloc_count,
        pt.free_count,
        pt.rss_bytes,
    ] {
        put_u64(&mut p, v);
    }
    match &pt.modules {
        None => p.push(0),
        Some(m) => {
            p.push(1);
            p.extend_from_slice(&encode_modules(m));
        }
    }
    p.extend_from_slice(&encode_stacks(&pt.new_stacks));
    put_changes(&mut p, &pt.group_changes);
    p.extend_from_slice(&encode_totals(&pt.totals));
    // 1.1: trailing fields a 1.0 reader never looks at.
    match &pt.peak {
        None => p.push(0),
        Some(pk) => {
            p.push(1);
            put_u64(&mut p, pk.traced_bytes);
            put_u64(&mut p, pk.event);
            put_u64(&mut p, pk.time_ns);
            put_changes(&mut p, &pk.groups);
        }
    }
    put_u64(&mut p, pt.snapshots.len() as u64);
    for m in &pt.snapshots {
        put_u64(&mut p, m.index);
        put_u64(&mut p, m.time_ns);
    }
    frame(kind::POINT, &p)
}

/// n, then n × (stack, size, zigzag change).
fn put_changes(p: &mut Vec<u8>, changes: &[(u64, u64, i64)]) {
    put_u64(p, changes.len() as u64);
    for &(stack, size, delta) in changes {
        put_u64(p, stack);
        put_u64(p, size);
        put_u64(p, zigzag(delta));
    }
}

fn get_changes(r: &mut Reader) -> Result<Vec<(u64, u64, i64)>, FormatError> {
    let n = r.count(3, "group count past end")?;
    let mut changes = Vec::with_capacity(n);
    for _ in 0..n {
        let stack = r.u64()?;
        let size = r.u64()?;
        let delta = unzigzag(r.u64()?);
        changes.push((stack, size, delta));
    }
    Ok(changes)
}

// ---------------------------------------------------------------- reading

/// Reads the records of a history from `r` one at a time.
pub struct HistoryReader<R: Read> {
    r: R,
    /// Records returned so far.
    pub records: u64,
}

/// Reads up to `buf.len()` bytes; fewer only at the end of the input.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// An I/O error while reading a history.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    Format(FormatError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Format(FormatError::NotASnapshot) => {
                write!(f, "not a memtrace history (bad magic)")
            }
            ReadError::Format(FormatError::UnsupportedVersion(v)) => write!(
                f,
                "history format version {v} is not supported (this memtrace reads version {HISTORY_MAJOR})"
            ),
            ReadError::Format(FormatError::BadChecksum) => {
                write!(f, "corrupt history (a record's checksum does not match)")
            }
            ReadError::Format(FormatError::Truncated) => write!(f, "truncated history"),
            ReadError::Format(FormatError::Corrupt(w)) => write!(f, "corrupt history ({w})"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<FormatError> for ReadError {
    fn from(e: FormatError) -> Self {
        ReadError::Format(e)
    }
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl<R: Read> HistoryReader<R> {
    /// Checks the file header.
    pub fn new(mut r: R) -> Result<Self, ReadError> {
        let mut h = [0u8; FILE_HEADER_LEN];
        let n = read_full(&mut r, &mut h)?;
        if n < 8 || &h[..8] != HISTORY_MAGIC {
            return Err(FormatError::NotASnapshot.into());
        }
        if n < FILE_HEADER_LEN {
            return Err(FormatError::Truncated.into());
        }
        let major = u16::from_le_bytes([h[8], h[9]]);
        if major != HISTORY_MAJOR {
            return Err(FormatError::UnsupportedVersion(major).into());
        }
        Ok(HistoryReader { r, records: 0 })
    }

    /// The next complete record; `None` at the end of the history: the end
    /// of the input, or a record cut short there (torn: ignored).
    pub fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        let mut f = [0u8; FRAME_LEN];
        let n = read_full(&mut self.r, &mut f)?;
        if n < FRAME_LEN {
            return Ok(None);
        }
        let len = u32::from_le_bytes([f[0], f[1], f[2], f[3]]) as usize;
        let crc = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
        if len == 0 || len > MAX_RECORD {
            return Err(FormatError::Corrupt("record length out of range").into());
        }
        // Grows with the bytes really there, not with the length read.
        let mut body = Vec::new();
        (&mut self.r).take(len as u64).read_to_end(&mut body)?;
        if body.len() < len {
            return Ok(None);
        }
        if crc32fast::hash(&body) != crc {
            return Err(FormatError::BadChecksum.into());
        }
        let kind = body[0];
        let mut payload = Vec::new();
        let dec = flate2::read::DeflateDecoder::new(&body[1..]);
        dec.take(MAX_PAYLOAD as u64 + 1)
            .read_to_end(&mut payload)
            .map_err(|_| FormatError::Corrupt("record does not inflate"))?;
        if payload.len() > MAX_PAYLOAD {
            return Err(FormatError::Corrupt("record larger than 256 MiB").into());
        }
        let rec = match kind {
            kind::START => Record::Start(decode_start(&payload)?),
            kind::POINT => Record::Point(decode_point(&payload)?),
            k => Record::Unknown(k),
        };
        self.records += 1;
        Ok(Some(rec))
    }
}

fn decode_start(b: &[u8]) -> Result<Start, FormatError> {
    let mut r = Reader::new(b);
    let pid = r.bounded(u32::MAX as u64, "pid out of range")? as u32;
    let start_ns = r.u64()?;
    let period_ns = r.u64()?;
    let frame_limit = r.bounded(crate::MAX_FRAMES as u64, "frame limit above 256")? as u32;
    let sample_rate = r.u64()?;
    let argc = r.count(1, "argument count past end")?;
    let mut cmdline = Vec::with_capacity(argc);
    for _ in 0..argc {
        cmdline.push(r.blob()?.to_vec());
    }
    let exe = r.blob()?.to_vec();
    let malloc_owner = r.blob()?.to_vec();
    let parent_pid = r.bounded(u32::MAX as u64, "pid out of range")? as u32;
    // Absent before 1.2, and for a process traced from its start.
    let tracing_start = if r.is_empty() {
        None
    } else {
        Some(crate::tracing_start::decode_tracing_start_payload(
            r.blob()?,
        )?)
    };
    Ok(Start {
        pid,
        start_ns,
        period_ns,
        frame_limit,
        sample_rate,
        cmdline,
        exe,
        malloc_owner,
        parent_pid,
        tracing_start,
    })
}

fn decode_point(b: &[u8]) -> Result<Point, FormatError> {
    let mut r = Reader::new(b);
    let mut v = [0u64; 7];
    for x in v.iter_mut() {
        *x = r.u64()?;
    }
    let modules = match r.u8()? {
        0 => None,
        1 => Some(decode_modules(&mut r)?),
        _ => return Err(FormatError::Corrupt("bad modules flag")),
    };
    let new_stacks = decode_stacks(&mut r)?;
    let group_changes = get_changes(&mut r)?;
    let totals = decode_totals(&mut r)?;
    // 1.1's peak; anything after what this reader knows is a later minor's.
    let peak = match r.is_empty() {
        true => None,
        false => match r.u8()? {
            0 => None,
            1 => Some(PeakChange {
                traced_bytes: r.u64()?,
                event: r.u64()?,
                time_ns: r.u64()?,
                groups: get_changes(&mut r)?,
            }),
            _ => return Err(FormatError::Corrupt("bad peak flag")),
        },
    };
    let mut snapshots = Vec::new();
    if !r.is_empty() {
        let n = r.count(2, "snapshot count past end")?;
        for _ in 0..n {
            snapshots.push(SnapshotMark {
                index: r.u64()?,
                time_ns: r.u64()?,
            });
        }
    }
    Ok(Point {
        time_ns: v[0],
        seq: v[1],
        traced_bytes: v[2],
        peak_bytes: v[3],
        alloc_count: v[4],
        free_count: v[5],
        rss_bytes: v[6],
        modules,
        new_stacks,
        group_changes,
        totals,
        peak,
        snapshots,
    })
}

// ---------------------------------------------------------------- state

/// Σ size × count of `groups` after `changes` (starting from `sum`, their
/// sum now), checking that each names a known stack, no group changes twice
/// and no count leaves 0..2^64.
fn checked_sum(
    groups: &HashMap<(u64, u64), u64>,
    sum: u128,
    changes: &[(u64, u64, i64)],
    known: &dyn Fn(u64) -> bool,
) -> Result<i128, FormatError> {
    let mut sum = sum as i128;
    let mut keys: Vec<(u64, u64)> = Vec::with_capacity(changes.len());
    for &(stack, size, delta) in changes {
        if !known(stack) {
            return Err(FormatError::Corrupt("group names an unknown stack"));
        }
        keys.push((stack, size));
        let now = groups.get(&(stack, size)).copied().unwrap_or(0) as i128;
        let count = now + delta as i128;
        if count < 0 {
            return Err(FormatError::Corrupt("group count below zero"));
        }
        if count > u64::MAX as i128 {
            return Err(FormatError::Corrupt("group count past 2^64"));
        }
        // One product fits in i128; their sum may not.
        sum = sum
            .checked_add(size as i128 * delta as i128)
            .ok_or(FormatError::Corrupt("bytes past 2^127"))?;
    }
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return Err(FormatError::Corrupt("group changed twice in a point"));
    }
    Ok(sum)
}

/// Applies changes `checked_sum` accepted; groups at 0 are dropped.
fn apply_changes(groups: &mut HashMap<(u64, u64), u64>, changes: &[(u64, u64, i64)]) {
    for &(stack, size, delta) in changes {
        let e = groups.entry((stack, size)).or_insert(0);
        *e = (*e as i128 + delta as i128) as u64;
        if *e == 0 {
            groups.remove(&(stack, size));
        }
    }
}

/// The history applied up to some point: what a snapshot of that moment
/// holds. Memory: the live groups, the stacks and totals named so far, at
/// most `MAX_POINTS_IN_TIMELINE` timeline points.
#[derive(Default)]
pub struct HistoryState {
    pub start: Option<Start>,
    /// The last point applied, without its changes.
    pub last: Option<Point>,
    pub points: u64,
    groups: HashMap<(u64, u64), u64>,
    traced: u128,
    /// The peak's groups and bytes, and its event and time (1.1).
    peak_groups: HashMap<(u64, u64), u64>,
    peak_traced: u128,
    peak: Option<PeakChange>,
    stacks: HashMap<u64, Stack>,
    modules: Vec<Module>,
    totals: BTreeMap<u64, StackTotals>,
    timeline: Vec<TimePoint>,
    /// The snapshots' moments (1.1), the latest `MAX_POINTS_IN_TIMELINE`.
    marks: std::collections::VecDeque<SnapshotMark>,
    /// Keep one point every `stride` in the timeline.
    stride: u64,
}

impl HistoryState {
    /// Applies a record; a point is checked first (its groups must name
    /// known stacks, counts never go below 0, traced bytes must equal the
    /// groups' sum) and nothing is changed if it fails.
    pub fn apply(&mut self, rec: Record) -> Result<(), FormatError> {
        match rec {
            Record::Start(s) => {
                if self.start.is_some() {
                    return Err(FormatError::Corrupt("a second start record"));
                }
                self.start = Some(s);
                Ok(())
            }
            Record::Point(p) => {
                if self.start.is_none() {
                    return Err(FormatError::Corrupt("a point before the start record"));
                }
                self.apply_point(p)
            }
            Record::Unknown(_) => Ok(()),
        }
    }

    fn apply_point(&mut self, mut p: Point) -> Result<(), FormatError> {
        if let Some(last) = &self.last {
            if p.time_ns < last.time_ns {
                return Err(FormatError::Corrupt("points out of time order"));
            }
        }
        for s in &p.new_stacks {
            if s.frames.len() > crate::MAX_FRAMES {
                return Err(FormatError::Corrupt("stack deeper than 256 frames"));
            }
            if self.stacks.contains_key(&s.id) {
                return Err(FormatError::Corrupt("stack defined twice"));
            }
        }
        let mut ids: Vec<u64> = p.new_stacks.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(FormatError::Corrupt("stack defined twice"));
        }
        let known = |id: u64| self.stacks.contains_key(&id) || ids.binary_search(&id).is_ok();
        // Check before changing anything.
        let traced = checked_sum(&self.groups, self.traced, &p.group_changes, &known)?;
        if traced != p.traced_bytes as i128 {
            return Err(FormatError::Corrupt("traced bytes differ from the groups"));
        }
        if let Some(pk) = &p.peak {
            let bytes = checked_sum(&self.peak_groups, self.peak_traced, &pk.groups, &known)?;
            if bytes != pk.traced_bytes as i128 {
                return Err(FormatError::Corrupt("peak bytes differ from its groups"));
            }
        }
        for t in &p.totals {
            if !known(t.stack) {
                return Err(FormatError::Corrupt("totals name an unknown stack"));
            }
        }
        // Apply.
        self.traced = traced as u128;
        for s in p.new_stacks.drain(..) {
            self.stacks.insert(s.id, s);
        }
        apply_changes(&mut self.groups, &p.group_changes);
        if let Some(pk) = p.peak.take() {
            apply_changes(&mut self.peak_groups, &pk.groups);
            self.peak_traced = pk.traced_bytes as u128;
            self.peak = Some(PeakChange {
                groups: Vec::new(),
                ..pk
            });
        }
        for t in p.totals.drain(..) {
            self.totals.insert(t.stack, t);
        }
        if let Some(m) = p.modules.take() {
            self.modules = m;
        }
        for m in p.snapshots.drain(..) {
            if self.marks.len() >= MAX_POINTS_IN_TIMELINE {
                self.marks.pop_front();
            }
            self.marks.push_back(m);
        }
        p.group_changes = Vec::new();
        if self.stride == 0 {
            self.stride = 1;
        }
        if self.points.is_multiple_of(self.stride) {
            self.timeline.push(TimePoint {
                time_ns: p.time_ns,
                traced_bytes: p.traced_bytes,
                rss_bytes: p.rss_bytes,
            });
            if self.timeline.len() >= MAX_POINTS_IN_TIMELINE {
                let mut i = 0;
                self.timeline.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                self.stride *= 2;
            }
        }
        self.points += 1;
        self.last = Some(p);
        Ok(())
    }

    /// The live groups now, sorted.
    pub fn groups(&self) -> Vec<TraceGroup> {
        sorted_groups(&self.groups)
    }

    /// The exact peak so far, when the file holds it (1.1).
    pub fn peak(&self) -> Option<Peak> {
        let pk = self.peak.as_ref()?;
        Some(Peak {
            time_ns: pk.time_ns,
            event: pk.event,
            traced_bytes: pk.traced_bytes,
            groups: sorted_groups(&self.peak_groups),
        })
    }

    /// The state at the last point applied, as a snapshot (its peak only
    /// when the file holds the peak's groups: 1.1). `None` before the first
    /// point.
    pub fn snapshot(&self) -> Option<Snapshot> {
        let start = self.start.as_ref()?;
        let last = self.last.as_ref()?;
        let traces = self.groups();
        let totals: Vec<StackTotals> = self.totals.values().cloned().collect();
        let peak = self.peak();
        let mut ids: Vec<u64> = traces
            .iter()
            .map(|t| t.stack)
            .chain(totals.iter().map(|t| t.stack))
            .chain(peak.iter().flat_map(|p| p.groups.iter().map(|g| g.stack)))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let stacks = ids
            .iter()
            .filter_map(|id| self.stacks.get(id).cloned())
            .collect();
        let mut points = self.timeline.clone();
        if points.last().map(|p| p.time_ns) != Some(last.time_ns) {
            points.push(TimePoint {
                time_ns: last.time_ns,
                traced_bytes: last.traced_bytes,
                rss_bytes: last.rss_bytes,
            });
        }
        Some(Snapshot {
            header: Header {
                kind: SnapshotKind::Signal,
                index: 0,
                pid: start.pid,
                time_ns: last.time_ns,
                seq: last.seq,
                frame_limit: start.frame_limit.max(1),
                traced_bytes: last.traced_bytes,
                peak_bytes: (last.peak_bytes.max(last.traced_bytes))
                    .max(self.peak.as_ref().map_or(0, |p| p.traced_bytes)),
                alloc_count: last.alloc_count,
                free_count: last.free_count,
                sample_rate: start.sample_rate,
                cmdline: start.cmdline.clone(),
                exe: start.exe.clone(),
                malloc_owner: start.malloc_owner.clone(),
            },
            modules: self.modules.clone(),
            stacks,
            traces,
            // History keeps the malloc heap (domain 0) only (docs/HISTORY.md).
            domains: Vec::new(),
            run: WholeRun {
                peak,
                totals,
                timeline: Some(Timeline {
                    start_ns: start.start_ns,
                    interval_ns: start.period_ns.saturating_mul(self.stride.max(1)),
                    points,
                    snapshots: self.marks.iter().copied().collect(),
                }),
                memory: None,
            },
        })
    }
}

fn sorted_groups(groups: &HashMap<(u64, u64), u64>) -> Vec<TraceGroup> {
    let mut g: Vec<TraceGroup> = groups
        .iter()
        .map(|(&(stack, size), &count)| TraceGroup { stack, size, count })
        .collect();
    g.sort_unstable_by_key(|t| (t.stack, t.size));
    g
}

/// Reads a history up to the last point at or before `at_ns` (ns since the
/// epoch; `None`: the last complete point) and returns it as a snapshot.
/// Streams: memory is bounded by the live groups and stacks, not by the
/// file's length.
pub fn read_at<R: Read>(r: R, at_ns: Option<u64>) -> Result<Snapshot, ReadError> {
    let mut rd = HistoryReader::new(r)?;
    let mut st = HistoryState::default();
    while let Some(rec) = rd.next_record()? {
        if let (Record::Point(p), Some(at)) = (&rec, at_ns) {
            if p.time_ns > at && st.last.is_some() {
                break;
            }
            if p.time_ns > at {
                return Err(FormatError::Corrupt("no point at or before that time").into());
            }
        }
        st.apply(rec)?;
    }
    st.snapshot()
        .ok_or_else(|| FormatError::Corrupt("no complete point yet").into())
}

/// The start record of a history (for `--at`, which counts from it).
pub fn read_start<R: Read>(r: R) -> Result<Start, ReadError> {
    let mut rd = HistoryReader::new(r)?;
    match rd.next_record()? {
        Some(Record::Start(s)) => Ok(s),
        _ => Err(FormatError::Corrupt("no start record").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(id: u64) -> Stack {
        Stack {
            id,
            frames: vec![0x1000 + id, 0x2000],
            truncated: false,
        }
    }

    fn sample_file() -> (Vec<u8>, Vec<usize>) {
        let mut f = file_header().to_vec();
        let mut ends = Vec::new();
        f.extend(encode_start(&Start {
            pid: 42,
            start_ns: 1_000,
            period_ns: 100,
            frame_limit: 32,
            cmdline: vec![b"prog".to_vec()],
            exe: b"/bin/prog".to_vec(),
            ..Default::default()
        }));
        ends.push(f.len());
        let mut traced = 0u64;
        for i in 0..5u64 {
            traced += 16 * (i + 1);
            let mut pt = Point {
                time_ns: 1_000 + 100 * (i + 1),
                seq: i,
                traced_bytes: traced,
                peak_bytes: traced,
                alloc_count: i + 1,
                rss_bytes: 4096,
                new_stacks: vec![stack(i)],
                group_changes: vec![(i, 16, i as i64 + 1)],
                totals: vec![StackTotals {
                    stack: i,
                    allocs: i + 1,
                    alloc_bytes: 16 * (i + 1),
                    ..Default::default()
                }],
                ..Default::default()
            };
            if i == 0 {
                pt.modules = Some(vec![]);
            }
            f.extend(encode_point(&pt));
            ends.push(f.len());
        }
        (f, ends)
    }

    fn points_in(bytes: &[u8]) -> Result<u64, ReadError> {
        let mut rd = HistoryReader::new(bytes)?;
        let mut st = HistoryState::default();
        while let Some(rec) = rd.next_record()? {
            st.apply(rec)?;
        }
        Ok(st.points)
    }

    #[test]
    fn round_trip() {
        let (f, _) = sample_file();
        let s = read_at(&f[..], None).unwrap();
        assert_eq!(s.header.pid, 42);
        assert_eq!(s.header.time_ns, 1_500);
        assert_eq!(s.traces.len(), 5);
        assert_eq!(s.traces[4].count, 5);
        assert_eq!(s.header.traced_bytes, 16 * 15);
        assert_eq!(s.stacks.len(), 5);
        assert_eq!(s.run.totals.len(), 5);
        let t = s.run.timeline.unwrap();
        assert_eq!(t.points.len(), 5);
        let s = read_at(&f[..], Some(1_250)).unwrap();
        assert_eq!(s.header.time_ns, 1_200);
        assert_eq!(s.traces.len(), 2);
        assert!(read_at(&f[..], Some(1_050)).is_err());
    }

    #[test]
    fn start_carries_the_tracing_start_of_an_attach() {
        use crate::tracing_start::{StartedBy, TracingStart};
        let plain = Start {
            pid: 7,
            cmdline: vec![b"prog".to_vec()],
            ..Default::default()
        };
        let attached = Start {
            tracing_start: Some(TracingStart {
                by: StartedBy::Attach,
                began_ns: 5_000,
                process_start_ns: 2_000,
            }),
            ..plain.clone()
        };
        for start in [plain, attached] {
            let mut f = file_header().to_vec();
            f.extend(encode_start(&start));
            assert_eq!(read_start(&f[..]).unwrap(), start);
        }
    }

    #[test]
    fn truncated_at_every_byte_of_the_last_record() {
        let (f, ends) = sample_file();
        let last_start = ends[ends.len() - 2];
        for cut in last_start..f.len() {
            assert_eq!(points_in(&f[..cut]).unwrap(), 4, "cut at {cut}");
            let s = read_at(&f[..cut], None).unwrap();
            assert_eq!(s.header.time_ns, 1_400);
        }
        assert_eq!(points_in(&f).unwrap(), 5);
        // Truncated anywhere: the points before the cut record, never an error.
        for cut in FILE_HEADER_LEN..f.len() {
            let whole = ends.iter().filter(|&&e| e <= cut).count() as u64;
            assert_eq!(points_in(&f[..cut]).unwrap(), whole.saturating_sub(1));
        }
    }

    #[test]
    fn damaged_bytes_are_caught() {
        let (f, _) = sample_file();
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x41;
            // Never a panic; a damaged record is an error or, for a length
            // that now reaches past the end, the end of the history.
            if let Ok(n) = points_in(&g) {
                assert!(n <= 5);
            }
        }
    }

    #[test]
    fn bad_header() {
        assert!(HistoryReader::new(&b"MEMTRACE\x01\x00\x02\x00"[..]).is_err());
        assert!(HistoryReader::new(&b"MTHISTRY\x02\x00\x00\x00"[..]).is_err());
        assert!(HistoryReader::new(&b"MTHIS"[..]).is_err());
    }

    #[test]
    fn inconsistent_point_refused() {
        let mut f = file_header().to_vec();
        f.extend(encode_start(&Start::default()));
        f.extend(encode_point(&Point {
            traced_bytes: 17,
            new_stacks: vec![stack(1)],
            group_changes: vec![(1, 16, 1)],
            ..Default::default()
        }));
        assert!(points_in(&f).is_err());
        let mut f = file_header().to_vec();
        f.extend(encode_start(&Start::default()));
        f.extend(encode_point(&Point {
            group_changes: vec![(1, 16, -1)],
            traced_bytes: 0,
            new_stacks: vec![stack(1)],
            ..Default::default()
        }));
        assert!(points_in(&f).is_err());
    }

    type Changes = Vec<(u64, u64, i64)>;

    /// A point with the peak's changes; `peak` as (bytes, changes).
    fn point_with_peak(
        time_ns: u64,
        stacks: Vec<Stack>,
        groups: Vec<(u64, u64, i64)>,
        traced: u64,
        peak: Option<(u64, Changes)>,
    ) -> Vec<u8> {
        encode_point(&Point {
            time_ns,
            traced_bytes: traced,
            new_stacks: stacks,
            group_changes: groups,
            peak: peak.map(|(bytes, groups)| PeakChange {
                traced_bytes: bytes,
                event: time_ns,
                time_ns,
                groups,
            }),
            ..Default::default()
        })
    }

    #[test]
    fn peak_as_changes() {
        let mut f = file_header().to_vec();
        f.extend(encode_start(&Start {
            frame_limit: 32,
            ..Default::default()
        }));
        f.extend(point_with_peak(
            1,
            vec![stack(1), stack(2)],
            vec![(1, 100, 2), (2, 10, 1)],
            210,
            Some((210, vec![(1, 100, 2), (2, 10, 1)])),
        ));
        // Below the peak: no peak section, the peak stays.
        f.extend(point_with_peak(2, vec![], vec![(1, 100, -2)], 10, None));
        let s = read_at(&f[..], None).unwrap();
        let p = s.run.peak.as_ref().unwrap();
        assert_eq!((p.traced_bytes, p.time_ns), (210, 1));
        assert_eq!(p.groups.len(), 2);
        assert_eq!(s.header.peak_bytes, 210);
        // A higher peak made of other blocks.
        f.extend(point_with_peak(
            3,
            vec![stack(3)],
            vec![(3, 300, 1)],
            310,
            Some((310, vec![(1, 100, -2), (3, 300, 1)])),
        ));
        let s = read_at(&f[..], None).unwrap();
        let p = s.run.peak.unwrap();
        let g: Vec<_> = p
            .groups
            .iter()
            .map(|g| (g.stack, g.size, g.count))
            .collect();
        assert_eq!(g, [(2, 10, 1), (3, 300, 1)]);
        assert_eq!(p.traced_bytes, 310);
        // The snapshot it makes is a valid one (the peak's stacks in it).
        let back = crate::decode(&crate::encode(&read_at(&f[..], None).unwrap())).unwrap();
        assert_eq!(back.run.peak.unwrap().groups.len(), 2);
        // A 1.0 file (no peak sections) has no peak.
        let (old, _) = sample_file();
        assert!(read_at(&old[..], None).unwrap().run.peak.is_none());
    }

    #[test]
    fn bytes_past_i128_refused_not_wrapped() {
        let mut f = file_header().to_vec();
        f.extend(encode_start(&Start::default()));
        f.extend(point_with_peak(
            1,
            vec![stack(1), stack(2)],
            vec![(1, u64::MAX, i64::MAX), (2, u64::MAX, i64::MAX)],
            0,
            None,
        ));
        assert!(points_in(&f).is_err());
    }

    #[test]
    fn inconsistent_peak_refused() {
        for peak in [
            (20, vec![(1, 10, 1)]),             // bytes differ
            (10, vec![(9, 10, 1)]),             // unknown stack
            (0, vec![(1, 10, -1)]),             // below zero
            (20, vec![(1, 10, 1), (1, 10, 1)]), // twice
        ] {
            let mut f = file_header().to_vec();
            f.extend(encode_start(&Start::default()));
            f.extend(point_with_peak(1, vec![stack(1)], vec![], 0, Some(peak)));
            assert!(points_in(&f).is_err());
        }
    }

    #[test]
    fn snapshot_marks() {
        let (mut f, _) = sample_file();
        f.extend(encode_point(&Point {
            time_ns: 1_700,
            traced_bytes: 16 * 15,
            snapshots: vec![SnapshotMark {
                index: 1,
                time_ns: 1_650,
            }],
            ..Default::default()
        }));
        let s = read_at(&f[..], None).unwrap();
        let marks = s.run.timeline.unwrap().snapshots;
        assert_eq!(
            marks,
            [SnapshotMark {
                index: 1,
                time_ns: 1_650
            }]
        );
    }
}
