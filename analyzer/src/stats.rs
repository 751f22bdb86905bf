//! `Statistic`, `StatisticDiff`, `Snapshot.statistics()` and
//! `Snapshot.compare_to()`: a port of CPython's `Lib/tracemalloc.py`.
//!
//! Differences, all deliberate:
//! - a trace group of count c adds size×c and c (it *is* c traces);
//! - the `traceback` key's label names the allocating frame (the most recent
//!   kept frame), not the oldest one CPython 3.7+ prints; grouping and
//!   sorting still use the whole traceback exactly as CPython does;
//! - a `function` key groups by function name and the file it lives in,
//!   labelled `function (file)`; it sorts as a one-frame key `(label, 0)`.

use crate::format::{statistic_diff_str, statistic_str};
use crate::frame::{FrameId, FrameTable};
use crate::sampling::{estimate_sum, round_estimate};
use crate::snapshot::{Snapshot, Trace};
use crate::util::FxHashMap as HashMap;
use std::cmp::Ordering;
use std::rc::Rc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Lineno,
    Filename,
    Traceback,
    Function,
}

impl KeyType {
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Lineno => "lineno",
            KeyType::Filename => "filename",
            KeyType::Traceback => "traceback",
            KeyType::Function => "function",
        }
    }
}

/// What a group is keyed on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GroupKey {
    /// (filename, lineno) location id.
    Loc(u32),
    /// filename id (printed `filename:0`).
    File(u32),
    /// function label id.
    Func(u32),
    /// location ids, most recent first.
    Traceback(Rc<[u32]>),
}

#[derive(Clone, Debug)]
pub struct Statistic {
    pub key: GroupKey,
    /// The frames of the first traceback seen in the group, most recent
    /// first (one frame except for the `traceback` key).
    pub frames: Rc<[FrameId]>,
    pub size: u64,
    pub count: u64,
    /// Some traceback of the group was cut at the frame limit.
    pub truncated: bool,
    /// Sampled snapshots: the unrounded estimates of size and count being
    /// summed; `size` and `count` are set from them, rounded, at the end.
    est: (f64, f64),
}

#[derive(Clone, Debug)]
pub struct StatisticDiff {
    pub key: GroupKey,
    pub frames: Rc<[FrameId]>,
    pub size: u64,
    pub size_diff: i64,
    pub count: u64,
    pub count_diff: i64,
}

/// `str(statistic.traceback)` with memtrace's choice for the traceback key.
pub fn key_label(table: &FrameTable, key: &GroupKey, frames: &[FrameId]) -> String {
    match key {
        GroupKey::Loc(l) => format!("{}:{}", table.loc_filename(*l), table.loc_lineno(*l)),
        GroupKey::File(f) => format!("{}:0", table.file_name(*f)),
        GroupKey::Func(f) => table.func_label(*f).to_string(),
        GroupKey::Traceback(_) => table.frame(frames[0]).location(),
    }
}

impl Statistic {
    pub fn label(&self, table: &FrameTable) -> String {
        key_label(table, &self.key, &self.frames)
    }

    /// `str(Statistic)`.
    pub fn format(&self, table: &FrameTable) -> String {
        statistic_str(&self.label(table), self.size, self.count)
    }
}

impl StatisticDiff {
    pub fn label(&self, table: &FrameTable) -> String {
        key_label(table, &self.key, &self.frames)
    }

    /// `str(StatisticDiff)`.
    pub fn format(&self, table: &FrameTable) -> String {
        statistic_diff_str(
            &self.label(table),
            self.size,
            self.size_diff,
            self.count,
            self.count_diff,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `Snapshot._group_by`'s check of its arguments: the `traceback` key has
/// no cumulative mode.
pub fn check_key(key_type: KeyType, cumulative: bool) -> Result<(), KeyError> {
    if cumulative && key_type == KeyType::Traceback {
        return Err(KeyError(
            "cumulative mode cannot be used with key type 'traceback'".into(),
        ));
    }
    Ok(())
}

fn frame_key(table: &FrameTable, key_type: KeyType, id: FrameId) -> GroupKey {
    let f = table.frame(id);
    match key_type {
        KeyType::Lineno => GroupKey::Loc(f.loc),
        KeyType::Filename => GroupKey::File(f.file),
        KeyType::Function => GroupKey::Func(f.func),
        KeyType::Traceback => unreachable!(),
    }
}

fn add(
    stats: &mut HashMap<GroupKey, Statistic>,
    key: GroupKey,
    frames: impl FnOnce() -> Rc<[FrameId]>,
    t: &Trace,
    truncated: bool,
    rate: u64,
) {
    let (size, count, add_size) = (t.size, t.count, t.bytes);
    let est = if rate > 0 {
        estimate_sum(size, count, add_size, rate)
    } else {
        (0.0, 0.0)
    };
    match stats.get_mut(&key) {
        Some(s) => {
            s.size = s.size.saturating_add(add_size);
            s.count = s.count.saturating_add(count);
            s.truncated |= truncated;
            s.est.0 += est.0;
            s.est.1 += est.1;
        }
        None => {
            stats.insert(
                key.clone(),
                Statistic {
                    key,
                    frames: frames(),
                    size: add_size,
                    count,
                    truncated,
                    est,
                },
            );
        }
    }
}

/// `Snapshot._group_by(key_type, cumulative)`.
pub fn group_by(
    snap: &Snapshot,
    table: &FrameTable,
    key_type: KeyType,
    cumulative: bool,
) -> Result<HashMap<GroupKey, Statistic>, KeyError> {
    check_key(key_type, cumulative)?;
    let mut stats: HashMap<GroupKey, Statistic> = HashMap::default();
    let rate = snap.sample_rate();
    if !cumulative {
        // One key per traceback, computed once.
        let mut keys: Vec<Option<GroupKey>> = vec![None; snap.tracebacks.len()];
        for t in &snap.traces {
            let tb = &snap.tracebacks[t.traceback as usize];
            let key = keys[t.traceback as usize]
                .get_or_insert_with(|| match key_type {
                    KeyType::Traceback => {
                        GroupKey::Traceback(tb.frames.iter().map(|&f| table.frame(f).loc).collect())
                    }
                    k => frame_key(table, k, tb.frames[0]),
                })
                .clone();
            let frames = || -> Rc<[FrameId]> {
                if key_type == KeyType::Traceback {
                    tb.frames.clone()
                } else {
                    Rc::from(&tb.frames[..1])
                }
            };
            add(&mut stats, key, frames, t, tb.truncated, rate);
        }
    } else {
        for t in &snap.traces {
            let tb = &snap.tracebacks[t.traceback as usize];
            for &f in tb.frames.iter() {
                add(
                    &mut stats,
                    frame_key(table, key_type, f),
                    || Rc::from(&[f][..]),
                    t,
                    tb.truncated,
                    rate,
                );
            }
        }
    }
    if rate > 0 {
        // Sampled: each statistic is its rounded estimate.
        for s in stats.values_mut() {
            s.size = round_estimate(s.est.0);
            s.count = round_estimate(s.est.1);
        }
    }
    Ok(stats)
}

fn cmp_loc(table: &FrameTable, a: u32, b: u32) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    table
        .loc_filename(a)
        .cmp(table.loc_filename(b))
        .then(table.loc_lineno(a).cmp(&table.loc_lineno(b)))
}

/// `Traceback.__lt__`: tuples of (filename, lineno), oldest frame first.
pub fn cmp_key(table: &FrameTable, a: &GroupKey, b: &GroupKey) -> Ordering {
    match (a, b) {
        (GroupKey::Loc(x), GroupKey::Loc(y)) => cmp_loc(table, *x, *y),
        (GroupKey::File(x), GroupKey::File(y)) => table.file_name(*x).cmp(table.file_name(*y)),
        (GroupKey::Func(x), GroupKey::Func(y)) => table.func_label(*x).cmp(table.func_label(*y)),
        (GroupKey::Traceback(x), GroupKey::Traceback(y)) => {
            for (p, q) in x.iter().rev().zip(y.iter().rev()) {
                let o = cmp_loc(table, *p, *q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => Ordering::Equal, // never mixed
    }
}

/// `Snapshot.statistics(key_type, cumulative)`: sorted by (size, count,
/// traceback), all descending.
pub fn statistics(
    snap: &Snapshot,
    table: &FrameTable,
    key_type: KeyType,
    cumulative: bool,
) -> Result<Vec<Statistic>, KeyError> {
    let mut v: Vec<Statistic> = group_by(snap, table, key_type, cumulative)?
        .into_values()
        .collect();
    v.sort_by(|a, b| {
        b.size
            .cmp(&a.size)
            .then(b.count.cmp(&a.count))
            .then_with(|| cmp_key(table, &b.key, &a.key))
    });
    Ok(v)
}

fn diff(a: u64, b: u64) -> i64 {
    (a as i128 - b as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// `new.compare_to(old, key_type, cumulative)`: groups of both, unchanged
/// ones kept, vanished ones with size and count 0; sorted by
/// (|size_diff|, size, |count_diff|, count, traceback), all descending.
pub fn compare_to(
    new: &Snapshot,
    old: &Snapshot,
    table: &FrameTable,
    key_type: KeyType,
    cumulative: bool,
) -> Result<Vec<StatisticDiff>, KeyError> {
    let new_group = group_by(new, table, key_type, cumulative)?;
    let mut old_group = group_by(old, table, key_type, cumulative)?;
    let mut out = Vec::with_capacity(new_group.len() + old_group.len());
    for (key, stat) in new_group {
        match old_group.remove(&key) {
            Some(prev) => out.push(StatisticDiff {
                key,
                frames: stat.frames,
                size: stat.size,
                size_diff: diff(stat.size, prev.size),
                count: stat.count,
                count_diff: diff(stat.count, prev.count),
            }),
            None => out.push(StatisticDiff {
                key,
                frames: stat.frames,
                size: stat.size,
                size_diff: diff(stat.size, 0),
                count: stat.count,
                count_diff: diff(stat.count, 0),
            }),
        }
    }
    for (key, stat) in old_group {
        out.push(StatisticDiff {
            key,
            frames: stat.frames,
            size: 0,
            size_diff: diff(0, stat.size),
            count: 0,
            count_diff: diff(0, stat.count),
        });
    }
    out.sort_by(|a, b| {
        b.size_diff
            .unsigned_abs()
            .cmp(&a.size_diff.unsigned_abs())
            .then(b.size.cmp(&a.size))
            .then(
                b.count_diff
                    .unsigned_abs()
                    .cmp(&a.count_diff.unsigned_abs()),
            )
            .then(b.count.cmp(&a.count))
            .then_with(|| cmp_key(table, &b.key, &a.key))
    });
    Ok(out)
}
