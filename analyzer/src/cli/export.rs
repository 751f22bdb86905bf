//! `memtrace export SNAP --format pprof|tracemalloc -o FILE`: the snapshot
//! as a gzip'd pprof heap profile or as the pickle tracemalloc's
//! `Snapshot.load()` reads. Also the loading `flamegraph` shares.

use super::session::malloc_owner_warning;
use super::{CommonArgs, Failure};
use crate::export::{pickle, pprof, Group, Stacks, View};
use crate::filter::FilterSet;
use crate::frame::FrameTable;
use crate::snapshot::read_dump;
use crate::symbolize::Symbolizer;
use clap::ValueEnum;
use std::io::Write;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum ExportFormat {
    /// gzip'd profile.proto shaped like Go's heap profiles (`go tool pprof`, Pyroscope, Parca).
    Pprof,
    /// The pickle of a `tracemalloc.Snapshot` (`Snapshot.load(FILE)` in CPython 3.9-3.13).
    Tracemalloc,
}

/// A dump with its stacks symbolized, the filters, and the frame table.
pub(super) struct Loaded {
    pub dump: memtrace_format::Snapshot,
    pub stacks: Stacks,
    pub table: FrameTable,
    pub filters: std::cell::RefCell<FilterSet>,
}

impl Loaded {
    /// The groups the filters let through.
    pub fn filter(&self, groups: Vec<Group>) -> Vec<Group> {
        self.stacks
            .filter(&self.table, &mut self.filters.borrow_mut(), groups)
    }
}

/// Reads and symbolizes one snapshot for an export; prints its warnings.
pub(super) fn load(path: &Path, common: &CommonArgs) -> Result<Loaded, Failure> {
    if common.json {
        return Err(Failure::Usage(
            "--json does not apply here: the command writes a file".into(),
        ));
    }
    let dump = read_dump(path).map_err(|e| Failure::Input(e.to_string()))?;
    let shown = path.display().to_string();
    if !dump.header.malloc_owner.is_empty() {
        let owner = String::from_utf8_lossy(&dump.header.malloc_owner);
        eprintln!(
            "memtrace: warning: {}",
            malloc_owner_warning(&shown, &owner)
        );
    }
    let mut table = FrameTable::new();
    let mut sym = Symbolizer::new();
    let stacks = Stacks::new(&dump, &mut table, &mut sym, &common.rules());
    for w in sym.warnings.drain(..) {
        eprintln!("memtrace: warning: {w}");
    }
    // The symbolizer's parsed modules are not needed any more; freeing
    // them piece by piece would cost time for nothing.
    std::mem::forget(sym);
    Ok(Loaded {
        dump,
        stacks,
        table,
        filters: std::cell::RefCell::new(common.filters()),
    })
}

/// The groups of `view` the filters let through (refused, with one line,
/// for a file without the view).
pub(super) fn groups(l: &Loaded, path: &Path, view: View) -> Result<Vec<Group>, Failure> {
    let all = l.stacks.view(&l.dump, view).ok_or_else(|| {
        Failure::Input(format!(
            "{}: no {} blocks in this snapshot: it was written before format 1.2 (no whole-run sections)",
            path.display(),
            view.describe()
        ))
    })?;
    Ok(l.filter(all))
}

/// Creates FILE (`-` is stdout) and writes into it.
pub(super) fn write_to(
    output: &Path,
    stdout: &mut dyn Write,
    f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), Failure> {
    if output == Path::new("-") {
        return Ok(f(stdout)?);
    }
    let cannot =
        |e: std::io::Error| Failure::Input(format!("{}: {}", output.display(), crate::io_msg(&e)));
    let file = std::fs::File::create(output).map_err(cannot)?;
    let mut w = std::io::BufWriter::new(file);
    f(&mut w).and_then(|()| w.flush()).map_err(cannot)
}

pub(super) fn export(
    out: &mut dyn Write,
    path: &Path,
    format: ExportFormat,
    output: &Path,
    peak: bool,
    common: &CommonArgs,
) -> Result<(), Failure> {
    let l = load(path, common)?;
    let inuse = groups(&l, path, if peak { View::Peak } else { View::Live })?;
    let h = &l.dump.header;
    match format {
        ExportFormat::Pprof => {
            let allocated = l.stacks.view(&l.dump, View::Allocated).map(|g| l.filter(g));
            let time_ns = match (&l.dump.run.peak, peak) {
                (Some(p), true) => p.time_ns,
                _ => h.time_ns,
            };
            let duration_ns = l
                .dump
                .run
                .timeline
                .as_ref()
                .map(|t| time_ns.saturating_sub(t.start_ns))
                .unwrap_or(0);
            let cmdline: Vec<String> = h
                .cmdline
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let mut comments = vec![format!(
                "memtrace {}{}",
                path.display(),
                if peak { " (peak)" } else { "" }
            )];
            if !cmdline.is_empty() {
                comments.push(format!("command: {}", cmdline.join(" ")));
            }
            comments.push(format!("pid: {}", h.pid));
            let profile = pprof::build(
                &l.stacks,
                &l.table,
                &pprof::HeapProfile {
                    allocated: allocated.as_deref(),
                    inuse: &inuse,
                    sample_rate: h.sample_rate,
                    time_ns,
                    duration_ns,
                    modules: &l.dump.modules,
                    comments,
                },
            );
            write_to(output, out, |w| pprof::write(&profile, w))
        }
        ExportFormat::Tracemalloc => {
            let bytes = pickle::write(
                &l.stacks,
                &l.table,
                &pickle::PickleSnapshot {
                    groups: &inuse,
                    sample_rate: h.sample_rate,
                    traceback_limit: h.frame_limit as u64,
                },
            );
            write_to(output, out, |w| w.write_all(&bytes))
        }
    }
}
