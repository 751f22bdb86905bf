//! `memtrace diff OLD NEW`: `[ Top N differences ]` and one
//! str(StatisticDiff) line per group (`new.compare_to(old)`).

use super::json::{write_json, CountSize, DiffJson, StatisticJson};
use super::session::Session;
use super::{CommonArgs, Failure, StatArgs};
use crate::display::diff_sampling_note;
use crate::stats;
use memtrace_format::{Header, SnapshotKind};
use std::io::Write;
use std::path::Path;

pub(super) fn diff(
    out: &mut dyn Write,
    old: &Path,
    new: &Path,
    stat: &StatArgs,
    common: &CommonArgs,
) -> Result<(), Failure> {
    let key = stat.key_type()?;
    let mut s = Session::new(common.rules());
    let mut filters = common.filters();
    let old_snap = s.load(old)?.filter_traces(&s.table, &mut filters);
    let new_snap = s.load(new)?.filter_traces(&s.table, &mut filters);
    if let (Some(o), Some(n)) = (&old_snap.header, &new_snap.header) {
        for w in pairing_warnings(old, o, new, n) {
            eprintln!("memtrace: warning: {w}");
        }
    }
    let diffs = stats::compare_to(&new_snap, &old_snap, &s.table, key, stat.cumulative)
        .map_err(|e| Failure::Usage(e.0))?;
    let (old_rate, new_rate) = (old_snap.sample_rate(), new_snap.sample_rate());
    if common.json {
        return write_json(
            out,
            &DiffJson {
                command: "diff",
                cumulative: stat.cumulative,
                estimated: old_rate > 0 || new_rate > 0,
                groups: diffs.len(),
                key: key.name(),
                limit: stat.limit,
                new: new.display().to_string(),
                new_malloc_owner: new_snap.malloc_owner(),
                new_sample_rate: new_rate,
                new_total: CountSize::of(new_snap.totals()),
                old: old.display().to_string(),
                old_malloc_owner: old_snap.malloc_owner(),
                old_sample_rate: old_rate,
                old_total: CountSize::of(old_snap.totals()),
                statistics: diffs
                    .iter()
                    .take(stat.limit)
                    .enumerate()
                    .map(|(i, d)| StatisticJson::diff(&s.table, i + 1, d))
                    .collect(),
            },
        );
    }
    writeln!(
        out,
        "[ Top {} differences ]{}",
        stat.limit,
        diff_sampling_note(old_rate, new_rate)
    )?;
    for d in diffs.iter().take(stat.limit) {
        writeln!(out, "{}", d.format(&s.table))?;
    }
    Ok(())
}

/// What a user comparing OLD and NEW would want to know before reading the
/// result: they come from different programs, or NEW was taken before OLD
/// in the same process (the arguments swapped: growth shows as shrinking).
fn pairing_warnings(old: &Path, o: &Header, new: &Path, n: &Header) -> Vec<String> {
    let mut warnings = Vec::new();
    if !o.exe.is_empty() && !n.exe.is_empty() && o.exe != n.exe {
        warnings.push(format!(
            "{} and {} come from different programs ({} and {}): their lines need not correspond",
            old.display(),
            new.display(),
            String::from_utf8_lossy(&o.exe),
            String::from_utf8_lossy(&n.exe)
        ));
    } else if o.pid == n.pid && taken_after(o, n) {
        warnings.push(format!(
            "{} was taken after {} in the same process: did you mean `memtrace diff {} {}`?",
            old.display(),
            new.display(),
            new.display(),
            old.display()
        ));
    }
    warnings
}

/// Was `a` taken after `b` in the process? By the event order (`seq`), which
/// a clock step cannot confuse; an exit snapshot comes after every other.
fn taken_after(a: &Header, b: &Header) -> bool {
    match (a.kind, b.kind) {
        (SnapshotKind::Exit, SnapshotKind::Signal) => true,
        (SnapshotKind::Signal, SnapshotKind::Exit) => false,
        _ => a.seq > b.seq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(exe: &str, pid: u32, kind: SnapshotKind, seq: u64) -> Header {
        Header {
            exe: exe.as_bytes().to_vec(),
            pid,
            kind,
            seq,
            ..Header::default()
        }
    }

    #[test]
    fn warns_on_other_programs_and_swapped_order() {
        let (a, b) = (Path::new("a.snap"), Path::new("b.snap"));
        let one = header("/bin/x", 7, SnapshotKind::Signal, 10);
        let two = header("/bin/x", 7, SnapshotKind::Signal, 20);
        let exit = header("/bin/x", 7, SnapshotKind::Exit, 5);
        assert!(pairing_warnings(a, &one, b, &two).is_empty());
        assert!(pairing_warnings(a, &one, b, &exit).is_empty());
        assert_eq!(
            pairing_warnings(a, &two, b, &one),
            ["a.snap was taken after b.snap in the same process: did you mean `memtrace diff b.snap a.snap`?"]
        );
        assert_eq!(pairing_warnings(a, &exit, b, &one).len(), 1);
        // Two runs of one program: either order is a fair comparison.
        assert!(
            pairing_warnings(a, &two, b, &header("/bin/x", 8, SnapshotKind::Signal, 1)).is_empty()
        );
        assert_eq!(
            pairing_warnings(a, &one, b, &header("/bin/y", 7, SnapshotKind::Signal, 20)),
            ["a.snap and b.snap come from different programs (/bin/x and /bin/y): their lines need not correspond"]
        );
    }
}
