//! `memtrace leaks`: the exit snapshot's leak check (LEAKS, format 1.3) as
//! memcheck prints it: loss records, each with its traceback, then the
//! LEAK SUMMARY. Also what `memtrace run --leak-check` prints on stderr.

use super::json::{write_json, FrameJson};
use super::session::Session;
use super::{CommonArgs, Failure};
use crate::format::{traceback_lines, LineCache};
use crate::frame::FrameTable;
use crate::pattern::Pattern;
use memtrace_format::leaks::{LeakCheck, LeakClass, LeakStatus};
use memtrace_format::TraceGroup;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// memcheck's `--show-leak-kinds` default.
pub const DEFAULT_SHOW: &str = "definite,possible";

/// Parses `definite,indirect,possible,reachable` (or `all`, `none`).
pub fn parse_show(s: &str) -> Result<Vec<LeakClass>, String> {
    let mut v = Vec::new();
    for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match w {
            "all" => v.extend(LeakClass::ALL),
            "none" => {}
            "definite" => v.push(LeakClass::Definite),
            "indirect" => v.push(LeakClass::Indirect),
            "possible" => v.push(LeakClass::Possible),
            "reachable" => v.push(LeakClass::Reachable),
            _ => {
                return Err(format!(
                "--show: unknown kind {w:?} (definite, indirect, possible, reachable, all, none)"
            ))
            }
        }
    }
    Ok(v)
}

/// LeakSanitizer's suppressions: `leak:PATTERN` lines (`#` comments and
/// other types ignored). A pattern matches a frame's function, file or
/// module name as a substring; `*` is any run, `^`/`$` anchor it.
pub struct Suppressions(Vec<(String, Pattern)>);

impl Suppressions {
    pub fn none() -> Suppressions {
        Suppressions(Vec::new())
    }

    pub fn read(path: &Path) -> Result<Suppressions, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {}", path.display(), crate::util::io_msg(&e)))?;
        Ok(Self::parse(&text))
    }

    pub fn parse(text: &str) -> Suppressions {
        let mut v = Vec::new();
        for line in text.lines().map(str::trim) {
            let Some(pat) = line.strip_prefix("leak:") else {
                continue;
            };
            let pat = pat.trim();
            if pat.is_empty() {
                continue;
            }
            let mut g = String::new();
            let (body, anchored_start) = match pat.strip_prefix('^') {
                Some(b) => (b, true),
                None => (pat, false),
            };
            let (body, anchored_end) = match body.strip_suffix('$') {
                Some(b) => (b, true),
                None => (body, false),
            };
            if !anchored_start {
                g.push('*');
            }
            for c in body.chars() {
                // Only `*` is special in LeakSanitizer's patterns.
                match c {
                    '?' | '[' | ']' => {
                        g.push('[');
                        g.push(c);
                        g.push(']');
                    }
                    _ => g.push(c),
                }
            }
            if !anchored_end {
                g.push('*');
            }
            v.push((pat.to_string(), Pattern::new(&g)));
        }
        Suppressions(v)
    }

    fn matches(&self, table: &FrameTable, frames: &[crate::frame::FrameId]) -> bool {
        frames.iter().any(|&id| {
            let f = table.frame(id);
            let names = [
                f.function.as_deref(),
                Some(f.filename.as_str()),
                f.module.as_deref(),
            ];
            self.0
                .iter()
                .any(|(_, p)| names.iter().flatten().any(|n| p.matches(n)))
        })
    }
}

/// What was found, after suppressions.
#[derive(Default, Clone, Copy, Serialize)]
pub struct Totals {
    pub bytes: u64,
    pub blocks: u64,
}

#[derive(Default, Serialize)]
pub struct Summary {
    pub definitely_lost: Totals,
    pub indirectly_lost: Totals,
    pub possibly_lost: Totals,
    pub still_reachable: Totals,
    pub suppressed: Totals,
}

impl Summary {
    /// Anything definitely or indirectly lost (what fails a CI job).
    pub fn lost(&self) -> bool {
        self.definitely_lost.blocks + self.indirectly_lost.blocks > 0
    }
}

/// `1234567` → `1,234,567`, as memcheck prints numbers.
pub fn commas(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn words(c: LeakClass) -> &'static str {
    match c {
        LeakClass::Definite => "definitely lost",
        LeakClass::Indirect => "indirectly lost",
        LeakClass::Possible => "possibly lost",
        LeakClass::Reachable => "still reachable",
    }
}

fn json_name(c: LeakClass) -> &'static str {
    match c {
        LeakClass::Definite => "definite",
        LeakClass::Indirect => "indirect",
        LeakClass::Possible => "possible",
        LeakClass::Reachable => "reachable",
    }
}

struct Record {
    /// 0: heap blocks; other: a custom allocator's objects (memtrace_track).
    domain: u32,
    class: LeakClass,
    blocks: u64,
    bytes: u64,
    indirect: u64,
    frames: Vec<crate::frame::FrameId>,
}

#[derive(Serialize)]
struct RecordJson<'a> {
    record: usize,
    of: usize,
    kind: &'static str,
    /// Only for a custom allocator's objects (format 1.4).
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<u32>,
    bytes: u64,
    direct_bytes: u64,
    indirect_bytes: u64,
    blocks: u64,
    frames: Vec<FrameJson<'a>>,
}

#[derive(Serialize)]
struct LeaksJson<'a> {
    command: &'static str,
    snapshot: String,
    records: Vec<RecordJson<'a>>,
    summary: &'a Summary,
    scan_ms: f64,
    scanned_bytes: u64,
}

pub struct Options<'a> {
    pub show: Vec<LeakClass>,
    pub suppressions: &'a Suppressions,
}

/// Reads `path`'s leak check and prints it; returns the summary.
pub(super) fn report(
    out: &mut dyn Write,
    path: &Path,
    opts: &Options,
    common: &CommonArgs,
) -> Result<Summary, Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::Input(format!("{}: {}", path.display(), crate::util::io_msg(&e))))?;
    let dump = memtrace_format::decode(&bytes)
        .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
    let check: LeakCheck = match memtrace_format::leaks::decode_leaks(&bytes, &dump) {
        Err(e) => return Err(Failure::Input(format!("{}: {e}", path.display()))),
        Ok(None) => {
            return Err(Failure::Input(format!(
                "{}: no leak check in this snapshot (only exit snapshots of format 1.3 have one; \
                 not with MEMTRACE_LEAK_CHECK=off or MEMTRACE_SAMPLE)",
                path.display()
            )))
        }
        Ok(Some(c)) => c,
    };
    match check.status {
        LeakStatus::Complete => {}
        LeakStatus::TimedOut => {
            return Err(Failure::Input(format!(
                "{}: the leak check stopped at its time bound ({:.1} s): no result",
                path.display(),
                check.scan_ns as f64 / 1e9
            )))
        }
        LeakStatus::Unavailable => {
            return Err(Failure::Input(format!(
                "{}: the leak check could not read the process's memory or its map (process_vm_readv refused, or no /proc)",
                path.display()
            )))
        }
        LeakStatus::NoMemory => {
            return Err(Failure::Input(format!(
                "{}: the leak check found no memory for its tables: no result",
                path.display()
            )))
        }
    }
    // The records as the groups of a view: one group each, told apart by
    // its size (the record's index + 1), so they are never merged.
    let mut d = dump.clone();
    d.traces = check
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| TraceGroup {
            stack: r.stack,
            size: i as u64 + 1,
            count: 1,
        })
        .collect();
    // Each record's domain, so that --domain filters the records.
    d.domains = check.records.iter().map(|r| r.domain).collect();
    d.run = Default::default();
    let mut s = Session::new(common.rules());
    let snap = s
        .symbolize_dump(path, &d, &[crate::snapshot::View::Live])
        .pop()
        .flatten()
        .ok_or_else(|| Failure::Input(format!("{}: no live blocks", path.display())))?
        .filter_traces(&s.table, &mut common.filters());
    let mut summary = Summary::default();
    let mut records: Vec<Record> = Vec::new();
    for t in &snap.traces {
        let r = &check.records[(t.size - 1) as usize];
        let frames: Vec<_> = snap.tracebacks[t.traceback as usize].frames.to_vec();
        if opts.suppressions.matches(&s.table, &frames) {
            summary.suppressed.bytes += r.bytes;
            summary.suppressed.blocks += r.blocks;
            continue;
        }
        let tot = match r.class {
            LeakClass::Definite => &mut summary.definitely_lost,
            LeakClass::Indirect => &mut summary.indirectly_lost,
            LeakClass::Possible => &mut summary.possibly_lost,
            LeakClass::Reachable => &mut summary.still_reachable,
        };
        tot.bytes += r.bytes;
        tot.blocks += r.blocks;
        records.push(Record {
            domain: r.domain,
            class: r.class,
            blocks: r.blocks,
            bytes: r.bytes,
            indirect: r.indirect_bytes,
            frames,
        });
    }
    // memcheck's order: total bytes, then class, then blocks.
    records.sort_by_key(|r| (r.bytes + r.indirect, r.class, r.blocks));
    let n = records.len();
    let mut lc = LineCache::new();
    if common.json {
        let doc = LeaksJson {
            command: "leaks",
            snapshot: path.display().to_string(),
            records: records
                .iter()
                .enumerate()
                .filter(|(_, r)| opts.show.contains(&r.class))
                .map(|(i, r)| RecordJson {
                    record: i + 1,
                    of: n,
                    kind: json_name(r.class),
                    domain: (r.domain != 0).then_some(r.domain),
                    bytes: r.bytes + r.indirect,
                    direct_bytes: r.bytes,
                    indirect_bytes: r.indirect,
                    blocks: r.blocks,
                    frames: r
                        .frames
                        .iter()
                        .map(|&f| FrameJson::with_source(&s.table, f, &mut lc))
                        .collect(),
                })
                .collect(),
            summary: &summary,
            scan_ms: check.scan_ns as f64 / 1e6,
            scanned_bytes: check.root_bytes + check.heap_bytes,
        };
        write_json(out, &doc)?;
        return Ok(summary);
    }
    for (i, r) in records.iter().enumerate() {
        if !opts.show.contains(&r.class) {
            continue;
        }
        let amount = if r.class == LeakClass::Definite && r.indirect > 0 {
            format!(
                "{} ({} direct, {} indirect)",
                commas(r.bytes + r.indirect),
                commas(r.bytes),
                commas(r.indirect)
            )
        } else {
            commas(r.bytes)
        };
        // memcheck's line; a custom allocator's objects say their domain.
        let domain = match r.domain {
            0 => String::new(),
            d => format!(" (domain {d})"),
        };
        writeln!(
            out,
            "{amount} bytes in {} blocks are {} in loss record {} of {n}{domain}",
            commas(r.blocks),
            words(r.class),
            i + 1
        )?;
        for line in traceback_lines(&s.table, &r.frames, None, true, &mut lc) {
            writeln!(out, "{line}")?;
        }
        writeln!(out)?;
    }
    write_summary(out, &summary, &opts.show)?;
    Ok(summary)
}

fn write_summary(out: &mut dyn Write, s: &Summary, show: &[LeakClass]) -> std::io::Result<()> {
    let all = [
        &s.definitely_lost,
        &s.indirectly_lost,
        &s.possibly_lost,
        &s.still_reachable,
    ];
    if all.iter().all(|t| t.blocks == 0) && s.suppressed.blocks == 0 {
        return writeln!(out, "All heap blocks were freed -- no leaks are possible");
    }
    writeln!(out, "LEAK SUMMARY:")?;
    let line = |label: &str, t: &Totals| {
        format!(
            "{label:>18}: {} bytes in {} blocks",
            commas(t.bytes),
            commas(t.blocks)
        )
    };
    writeln!(out, "{}", line("definitely lost", &s.definitely_lost))?;
    writeln!(out, "{}", line("indirectly lost", &s.indirectly_lost))?;
    writeln!(out, "{}", line("possibly lost", &s.possibly_lost))?;
    writeln!(out, "{}", line("still reachable", &s.still_reachable))?;
    writeln!(out, "{}", line("suppressed", &s.suppressed))?;
    if !show.contains(&LeakClass::Reachable) && s.still_reachable.blocks > 0 {
        writeln!(
            out,
            "Reachable blocks (those to which a pointer was found) are not shown."
        )?;
        writeln!(
            out,
            "To see them, rerun with: --show definite,indirect,possible,reachable"
        )?;
    }
    Ok(())
}

/// `memtrace leaks SNAP`.
pub(super) fn leaks(
    out: &mut dyn Write,
    path: &Path,
    show: &str,
    suppressions: Option<&Path>,
    common: &CommonArgs,
) -> Result<(), Failure> {
    let show = parse_show(show).map_err(Failure::Usage)?;
    let sup = match suppressions {
        Some(p) => Suppressions::read(p).map_err(Failure::Input)?,
        None => Suppressions::none(),
    };
    report(
        out,
        path,
        &Options {
            show,
            suppressions: &sup,
        },
        common,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_and_show() {
        assert_eq!(commas(0), "0");
        assert_eq!(commas(999), "999");
        assert_eq!(commas(1000), "1,000");
        assert_eq!(commas(100064), "100,064");
        assert_eq!(commas(1234567), "1,234,567");
        assert_eq!(
            parse_show("definite,possible").unwrap(),
            vec![LeakClass::Definite, LeakClass::Possible]
        );
        assert_eq!(parse_show("all").unwrap().len(), 4);
        assert!(parse_show("lost").is_err());
    }

    #[test]
    fn summary_word_for_word() {
        let s = Summary {
            definitely_lost: Totals {
                bytes: 100064,
                blocks: 101,
            },
            indirectly_lost: Totals {
                bytes: 3136,
                blocks: 49,
            },
            possibly_lost: Totals {
                bytes: 528,
                blocks: 2,
            },
            still_reachable: Totals {
                bytes: 68533,
                blocks: 32,
            },
            suppressed: Totals::default(),
        };
        let mut out = Vec::new();
        write_summary(&mut out, &s, &LeakClass::ALL).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "LEAK SUMMARY:
   definitely lost: 100,064 bytes in 101 blocks
   indirectly lost: 3,136 bytes in 49 blocks
     possibly lost: 528 bytes in 2 blocks
   still reachable: 68,533 bytes in 32 blocks
        suppressed: 0 bytes in 0 blocks
"
        );
    }

    #[test]
    fn suppression_patterns() {
        let s = Suppressions::parse("# c\nleak:libfoo.so\nleak:^make_*$\nother:x\n");
        assert_eq!(s.0.len(), 2);
        assert!(s.0[0].1.matches("/usr/lib/libfoo.so.1"));
        assert!(s.0[1].1.matches("make_tree"));
        assert!(!s.0[1].1.matches("remake_tree"));
    }
}
