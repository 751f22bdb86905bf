//! pprof's `profile.proto`, gzip'd, shaped like the heap profiles Go's
//! runtime writes (`runtime/pprof`'s `writeHeapProto`): sample types
//! `alloc_objects`/`alloc_space`/`inuse_objects`/`inuse_space` (count,
//! bytes), default `inuse_space`, period type `space`/`bytes` and period the
//! sampling rate (1 when every allocation was recorded, as Go's
//! `MemProfileRate = 1`), values already scaled to unsampled estimates, one
//! sample per stack with Go's `bytes` label (the mean block size). The
//! objects of a custom allocator (format 1.4 domains) are samples of their
//! own with a numeric `domain` label (`go tool pprof -tags`,
//! `-tagfocus=domain=7`); the heap's (domain 0) carry none, as before.
//!
//! The few messages of `profile.proto` are derived by hand with prost
//! (field numbers from pprof's `proto/profile.proto`): no protoc, no build
//! script.

use super::{round, Group, Stacks};
use crate::frame::{basename, FrameTable};
use crate::util::FxHashMap as HashMap;
use memtrace_format::Module;
use prost::Message;
use std::io::Write;

#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "7")]
    pub drop_frames: i64,
    #[prost(int64, tag = "8")]
    pub keep_frames: i64,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
    #[prost(int64, tag = "3")]
    pub column: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

/// What goes into a heap profile besides the stacks.
pub struct HeapProfile<'a> {
    /// Every allocation since the start (`alloc_*`); `None` when the file
    /// has no totals (format < 1.2): the profile then has only `inuse_*`.
    pub allocated: Option<&'a [Group]>,
    /// The live blocks (`inuse_*`).
    pub inuse: &'a [Group],
    /// The header's sample_rate (0: every allocation recorded).
    pub sample_rate: u64,
    pub time_ns: u64,
    /// Since the start of tracing, if known.
    pub duration_ns: u64,
    pub modules: &'a [Module],
    pub comments: Vec<String>,
}

#[derive(Default)]
struct Strings {
    table: Vec<String>,
    ids: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Strings {
        let mut s = Strings::default();
        s.id(""); // string_table[0] must be ""
        s
    }

    fn id(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.ids.insert(s.to_string(), i);
        i
    }
}

fn saturate(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

/// Builds the profile.
pub fn build(stacks: &Stacks, table: &FrameTable, p: &HeapProfile) -> Profile {
    let mut strings = Strings::new();
    let vt = |t: &str, u: &str, s: &mut Strings| ValueType {
        r#type: s.id(t),
        unit: s.id(u),
    };
    let mut sample_type = Vec::new();
    if p.allocated.is_some() {
        sample_type.push(vt("alloc_objects", "count", &mut strings));
        sample_type.push(vt("alloc_space", "bytes", &mut strings));
    }
    sample_type.push(vt("inuse_objects", "count", &mut strings));
    sample_type.push(vt("inuse_space", "bytes", &mut strings));
    let period_type = Some(vt("space", "bytes", &mut strings));
    let default_sample_type = strings.id("inuse_space");
    let bytes_key = strings.id("bytes");
    let domain_key = strings.id("domain");

    // Per stack: unrounded estimates (alloc bytes, alloc count, inuse bytes, inuse count).
    // Domain 0 per stack; other domains' groups per (stack, domain).
    let mut per_stack: Vec<[f64; 4]> = vec![[0.0; 4]; stacks.stacks.len()];
    let mut per_domain: std::collections::BTreeMap<(usize, u32), [f64; 4]> = Default::default();
    let rate = p.sample_rate;
    let mut add = |g: &Group, at: usize| {
        let (b, c) = g.estimate(rate);
        let v = if g.domain == 0 {
            &mut per_stack[g.stack]
        } else {
            per_domain.entry((g.stack, g.domain)).or_default()
        };
        v[at] += b;
        v[at + 1] += c;
    };
    for g in p.allocated.unwrap_or(&[]) {
        add(g, 0);
    }
    for g in p.inuse {
        add(g, 2);
    }
    let samples: Vec<(usize, u32, [f64; 4])> = per_stack
        .iter()
        .enumerate()
        .map(|(si, &v)| (si, 0, v))
        .chain(per_domain.into_iter().map(|((si, d), v)| (si, d, v)))
        .collect();

    let mapping: Vec<Mapping> = p
        .modules
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let start = m.segments.iter().map(|s| s.vaddr).min().unwrap_or(0);
            let end = m
                .segments
                .iter()
                .map(|s| s.vaddr.saturating_add(s.memsz))
                .max()
                .unwrap_or(0);
            let off = m
                .segments
                .iter()
                .min_by_key(|s| s.vaddr)
                .map(|s| s.file_offset)
                .unwrap_or(0);
            let build_id: String = m.build_id.iter().map(|b| format!("{b:02x}")).collect();
            Mapping {
                id: i as u64 + 1,
                memory_start: m.base.wrapping_add(start),
                memory_limit: m.base.wrapping_add(end),
                file_offset: off,
                filename: strings.id(&String::from_utf8_lossy(&m.path)),
                build_id: strings.id(&build_id),
                has_functions: true,
                has_filenames: true,
                has_line_numbers: true,
                has_inline_frames: true,
            }
        })
        .collect();

    let mut function: Vec<Function> = Vec::new();
    let mut func_ids: HashMap<(i64, i64), u64> = HashMap::default();
    let mut location: Vec<Location> = Vec::new();
    let mut loc_ids: HashMap<u32, u64> = HashMap::default();
    let mut sample = Vec::new();
    for (si, domain, v) in samples {
        let st = &stacks.stacks[si];
        let (ab, ac, ib, ic) = (round(v[0]), round(v[1]), round(v[2]), round(v[3]));
        if ab == 0 && ac == 0 && ib == 0 && ic == 0 {
            continue;
        }
        let mut location_id = Vec::with_capacity(st.locations.len());
        for &l in &st.locations {
            let id = *loc_ids.entry(l).or_insert_with(|| {
                let loc = &stacks.locations[l as usize];
                let line = loc
                    .frames
                    .iter()
                    .map(|&fid| {
                        let f = table.frame(fid);
                        // Functions are named as memtrace's `function` key
                        // names them; without line information the module
                        // stands for the file.
                        // A frame with no function either is its `<module+0x…>`
                        // name without the brackets, which pprof would take
                        // for C++ template arguments and drop.
                        let name = match &f.function {
                            Some(n) => n.clone(),
                            None => f
                                .filename
                                .trim_start_matches('<')
                                .trim_end_matches('>')
                                .to_string(),
                        };
                        let file = if f.has_line {
                            f.filename.clone()
                        } else {
                            f.module.as_deref().map(basename).unwrap_or("").to_string()
                        };
                        let key = (strings.id(&name), strings.id(&file));
                        let function_id = *func_ids.entry(key).or_insert_with(|| {
                            function.push(Function {
                                id: function.len() as u64 + 1,
                                name: key.0,
                                system_name: key.0,
                                filename: key.1,
                                start_line: 0,
                            });
                            function.len() as u64
                        });
                        Line {
                            function_id,
                            line: if f.has_line { f.lineno as i64 } else { 0 },
                            column: 0,
                        }
                    })
                    .collect();
                location.push(Location {
                    id: location.len() as u64 + 1,
                    mapping_id: loc.module.map(|m| m as u64 + 1).unwrap_or(0),
                    address: loc.address,
                    line,
                    is_folded: false,
                });
                location.len() as u64
            });
            location_id.push(id);
        }
        let mut value = Vec::with_capacity(4);
        if p.allocated.is_some() {
            value.push(saturate(ac));
            value.push(saturate(ab));
        }
        value.push(saturate(ic));
        value.push(saturate(ib));
        // Go's label: the mean size of the stack's blocks (a domain's
        // objects have no totals: their live ones).
        let (b, c) = if p.allocated.is_some() && ac > 0 {
            (ab, ac)
        } else {
            (ib, ic)
        };
        let mut label = match b.checked_div(c) {
            Some(mean) if mean > 0 => vec![Label {
                key: bytes_key,
                str: 0,
                num: saturate(mean),
                num_unit: 0,
            }],
            _ => vec![],
        };
        if domain != 0 {
            label.push(Label {
                key: domain_key,
                str: 0,
                num: domain as i64,
                num_unit: 0,
            });
        }
        sample.push(Sample {
            location_id,
            value,
            label,
        });
    }
    let comment = p.comments.iter().map(|c| strings.id(c)).collect();
    Profile {
        sample_type,
        sample,
        mapping,
        location,
        function,
        string_table: strings.table,
        drop_frames: 0,
        keep_frames: 0,
        time_nanos: saturate(p.time_ns),
        duration_nanos: saturate(p.duration_ns),
        period_type,
        period: if rate == 0 { 1 } else { saturate(rate) },
        comment,
        default_sample_type,
    }
}

/// Writes the profile gzip'd, as `go tool pprof` and the profilers that
/// ingest pprof expect it.
pub fn write(profile: &Profile, out: impl Write) -> std::io::Result<()> {
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    gz.write_all(&profile.encode_to_vec())?;
    gz.finish()?.flush()
}
