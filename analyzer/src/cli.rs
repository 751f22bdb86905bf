//! The `memtrace` command line. See `docs/CLI.md`.
//!
//! Exit codes: 0 ok, 1 bad input (a snapshot that cannot be read, a rank
//! that does not exist), 2 bad usage.

use crate::filter::{Filter, FilterSet, Pattern};
use crate::format::{kib, traceback_lines, traceback_slice, LineCache};
use crate::snapshot::{self, FrameId, FrameRules, FrameTable, Snapshot};
use crate::stats::{self, KeyType, Statistic};
use crate::symbolize::Symbolizer;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;

const SYSTEM_HELP: &str = "\
THE USER'S LINE, NOT THE ALLOCATOR'S:
  Before grouping, filtering or printing, memtrace drops the frames that belong to the
  toolchain and the system rather than the program:
    - frames without line information (except the main executable's functions when the
      traceback has no line information at all: a program built without -g);
    - source files under /usr/include, /usr/lib, /usr/local/include, /rustc/, /rust/deps/, a
      cargo registry or git checkout (*/.cargo/registry/*, */.cargo/git/*), a rustup toolchain,
      /build/glibc-*, /build/gcc-*;
    - the runtimes' modules: libc, libm, libpthread, libdl, librt, ld-linux, libstdc++,
      libgcc_s, libunwind, the vDSO and memtrace's own libtrace.so;
    - runtime functions: std::*, __gnu_cxx::*, alloc::*, core::* (and <std::..>, <alloc::..>,
      <core::..> impls), operator new/delete, __rdl_*, __rust_*, __rg_*, the malloc family,
      _start, __libc_start_*.
  If that would leave a traceback empty, its innermost frame is kept.
  --raw keeps every frame; --user PATTERN exempts matching frames from the rule and
  --system PATTERN adds them to it (fnmatch on the file name, the module path or file
  name, or the function name).

FRAMES WITHOUT LINE INFORMATION:
  are named <function in module> (or <module+0xoffset>) with line 0 in statistics, and
  printed as `File \"/path/libfoo.so\", function foo+0x12` in tracebacks.

EXIT STATUS: 0 ok, 1 bad input, 2 bad usage.";

const RUN_HELP: &str = "\
EXAMPLE:
  memtrace run -- ./app --its-options     # writes memtrace.<pid>.exit.snap (and .<n>.snap on SIGUSR2)

  Before running, a statically linked or set-user-ID/set-group-ID CMD is refused (exit 1): the
  loader ignores LD_PRELOAD for it. An existing LD_PRELOAD is kept after libtrace.so.
  While CMD runs, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2 and the snapshot signal sent to memtrace are
  passed on to it; SIGINT and SIGQUIT are left to CMD (a terminal sends them to both).
  Afterwards each snapshot written is listed on stderr (`memtrace: wrote PATH`), or one line
  says that none was written and why that may be.

EXIT STATUS: CMD's exit code, or 128+N when signal N ended it; 127 CMD not found, 126 CMD cannot
  be executed, 1 CMD cannot be traced (nothing run), 2 bad usage.";

#[derive(Parser, Debug)]
#[command(
    name = "memtrace",
    version,
    about = "Python's tracemalloc for native programs: statistics over libtrace.so snapshots",
    after_help = SYSTEM_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The biggest allocation sites: `[ Top N ]` then one str(Statistic) line each.
    #[command(after_help = SYSTEM_HELP)]
    Top {
        /// Snapshot file (`<prefix>.<n>.snap` or `<prefix>.exit.snap`).
        snapshot: PathBuf,
        #[command(flatten)]
        stat: StatArgs,
        /// Print the "pretty top" of the tracemalloc documentation (display_top).
        #[arg(long)]
        pretty: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// What grew between two snapshots: `[ Top N differences ]` then str(StatisticDiff) lines.
    #[command(after_help = SYSTEM_HELP)]
    Diff {
        /// The older snapshot.
        old: PathBuf,
        /// The newer snapshot.
        new: PathBuf,
        #[command(flatten)]
        stat: StatArgs,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// The traceback of the R-th biggest group by traceback.
    #[command(after_help = SYSTEM_HELP)]
    Traceback {
        snapshot: PathBuf,
        /// Which group, 1 = the biggest.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        rank: u64,
        /// Traceback.format(limit): N > 0 prints the N most recent frames, N <= 0 all but the
        /// |N| most recent (0 prints none).
        #[arg(long, allow_hyphen_values = true)]
        frames: Option<i64>,
        /// Print the oldest call first (CPython 3.7+'s default order) instead of the most recent.
        #[arg(long)]
        oldest_first: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Run CMD under libtrace.so (found next to this binary, or $MEMTRACE_PRELOAD), wait for it,
    /// list the snapshots it wrote on stderr and exit with its status (128+N if signal N killed it).
    #[command(after_help = RUN_HELP, override_usage = "memtrace run [OPTIONS] -- CMD [ARGS]...")]
    Run {
        /// Snapshot file prefix (MEMTRACE_OUT); `%p` is the pid. Default memtrace.%p.
        #[arg(long, value_name = "PREFIX", value_parser = clap::value_parser!(std::ffi::OsString))]
        out: Option<std::ffi::OsString>,
        /// Snapshot signal (MEMTRACE_SIGNAL): USR1, USR2, a number, or off. Default USR2.
        #[arg(long, value_name = "SIG")]
        signal: Option<String>,
        /// Stack depth kept (MEMTRACE_FRAMES), 1-256. Default 32.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
        frames: Option<u32>,
        /// Trace the programs CMD starts with exec too (MEMTRACE_FOLLOW_EXEC=1).
        #[arg(long)]
        follow_exec: bool,
        /// The command and its arguments (after `--`).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD",
              value_parser = clap::value_parser!(std::ffi::OsString))]
        command: Vec<std::ffi::OsString>,
    },
    /// Header facts: traced memory now and at peak, blocks, allocations, frees, process.
    Stats {
        snapshot: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Key {
    Lineno,
    Filename,
    Traceback,
    Function,
}

impl From<Key> for KeyType {
    fn from(k: Key) -> KeyType {
        match k {
            Key::Lineno => KeyType::Lineno,
            Key::Filename => KeyType::Filename,
            Key::Traceback => KeyType::Traceback,
            Key::Function => KeyType::Function,
        }
    }
}

#[derive(Args, Debug)]
struct StatArgs {
    /// Group by: lineno (file:line of the allocating user frame), filename, traceback (the
    /// whole kept traceback, labelled by its allocating frame) or function ("function (file)").
    #[arg(long, value_enum, default_value = "lineno")]
    key: Key,
    /// How many lines to print.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Count every frame of each traceback, not only the most recent (lineno, filename, function).
    #[arg(long)]
    cumulative: bool,
}

#[derive(Args, Debug)]
struct CommonArgs {
    /// Keep only traces matching PATTERN (tracemalloc Filter(True, ...)): fnmatch on the file
    /// name, module or function of the most recent kept frame; `PATTERN:LINENO` also requires
    /// that line. Several --include are or-ed.
    #[arg(long, value_name = "PATTERN")]
    include: Vec<String>,
    /// Drop traces matching PATTERN (Filter(False, ...)); every --exclude must let a trace through.
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Filters test every kept frame of the traceback, not only the most recent (Filter's all_frames).
    #[arg(long)]
    all_frames: bool,
    /// Keep toolchain and system frames (operator new, malloc, std::, alloc::, libc ...).
    #[arg(long, alias = "keep-system-frames")]
    raw: bool,
    /// Treat frames matching PATTERN as the program's, even if the rule would drop them.
    #[arg(long, value_name = "PATTERN")]
    user: Vec<String>,
    /// Treat frames matching PATTERN as system frames and drop them too.
    #[arg(long, value_name = "PATTERN")]
    system: Vec<String>,
    /// Print JSON instead of text (schema in docs/CLI.md).
    #[arg(long)]
    json: bool,
}

impl CommonArgs {
    fn rules(&self) -> FrameRules {
        FrameRules {
            keep_all: self.raw,
            user: self.user.iter().map(|p| Pattern::new(p)).collect(),
            system: self.system.iter().map(|p| Pattern::new(p)).collect(),
        }
    }

    fn filters(&self) -> FilterSet {
        let mut v: Vec<Filter> = self
            .include
            .iter()
            .map(|p| Filter::parse(true, p, self.all_frames))
            .collect();
        v.extend(
            self.exclude
                .iter()
                .map(|p| Filter::parse(false, p, self.all_frames)),
        );
        FilterSet::new(v)
    }
}

enum Failure {
    /// Bad input: exit 1.
    Input(String),
    /// Bad usage: exit 2.
    Usage(String),
    /// stdout closed (e.g. `| head`): exit quietly.
    Pipe,
    /// Exit with this code, everything already said (`run`).
    Exit(i32),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::Pipe
        } else {
            Failure::Input(format!("cannot write output: {}", crate::io_msg(&e)))
        }
    }
}

/// Runs the CLI with the process's arguments; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let res = run(cli, &mut out).and_then(|()| out.flush().map_err(Failure::from));
    match res {
        Ok(()) | Err(Failure::Pipe) => 0,
        Err(Failure::Input(m)) => {
            let _ = out.flush();
            eprintln!("memtrace: {m}");
            1
        }
        Err(Failure::Usage(m)) => {
            eprintln!("memtrace: {m}");
            2
        }
        Err(Failure::Exit(code)) => code,
    }
}

struct Session {
    table: FrameTable,
    sym: Symbolizer,
    rules: FrameRules,
    /// malloc_owner warnings already printed (`diff A A` says it once).
    warned: std::collections::HashSet<String>,
}

impl Session {
    /// Never dropped: the command ends the process right after, and freeing
    /// its hundreds of thousands of frames, strings and parsed DWARF units
    /// one by one would cost a few percent of the run for nothing.
    fn new(rules: FrameRules) -> std::mem::ManuallyDrop<Session> {
        std::mem::ManuallyDrop::new(Session {
            table: FrameTable::new(),
            sym: Symbolizer::new(),
            rules,
            warned: Default::default(),
        })
    }

    fn load(&mut self, path: &std::path::Path) -> Result<Snapshot, Failure> {
        let s = snapshot::load(path, &mut self.table, &mut self.sym, &self.rules)
            .map_err(|e| Failure::Input(e.to_string()));
        if let Ok(snap) = &s {
            if let Some(owner) = snap.malloc_owner() {
                let w = malloc_owner_warning(&path.display().to_string(), &owner);
                if self.warned.insert(w.clone()) {
                    eprintln!("memtrace: warning: {w}");
                }
            }
        }
        for w in self.sym.warnings.drain(..) {
            eprintln!("memtrace: warning: {w}");
        }
        s
    }
}

/// The warning for a snapshot whose program's malloc is not libtrace.so's.
fn malloc_owner_warning(file: &str, owner: &str) -> String {
    format!("{file}: the program's malloc comes from {owner}, not glibc: its allocations were not traced")
}

/// `(estimated from samples, 1 per 512 KiB)`, the note after a header.
fn rate_text(rate: u64) -> String {
    format!("1 per {}", crate::format::format_size(rate as f64, false))
}

fn sampling_note(rate: u64) -> String {
    if rate == 0 {
        String::new()
    } else {
        format!(" (estimated from samples, {})", rate_text(rate))
    }
}

fn diff_sampling_note(old: u64, new: u64) -> String {
    let r = |x: u64| {
        if x == 0 {
            "every allocation".to_string()
        } else {
            rate_text(x)
        }
    };
    match (old, new) {
        (0, 0) => String::new(),
        (a, b) if a == b => sampling_note(a),
        (a, b) => format!(" (estimated from samples: old {}, new {})", r(a), r(b)),
    }
}

impl Session {}

fn check_key(stat: &StatArgs) -> Result<(), Failure> {
    if stat.cumulative && matches!(stat.key, Key::Traceback) {
        return Err(Failure::Usage(
            "cumulative mode cannot be used with key type 'traceback'".into(),
        ));
    }
    Ok(())
}

fn frame_json(table: &FrameTable, id: FrameId) -> Value {
    let f = table.frame(id);
    json!({
        "filename": f.filename,
        "lineno": f.lineno,
        "function": f.function,
        "module": f.module,
        "module_offset": f.module_offset,
        "has_line": f.has_line,
        "system": f.system,
    })
}

fn average(size: u64, count: u64) -> Value {
    if count == 0 {
        Value::Null
    } else {
        json!(size as f64 / count as f64)
    }
}

fn write_json(out: &mut dyn Write, v: &Value) -> Result<(), Failure> {
    serde_json::to_writer_pretty(&mut *out, v)
        .map_err(|e| Failure::from(std::io::Error::from(e)))?;
    writeln!(out)?;
    Ok(())
}

fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Failure> {
    match cli.command {
        Command::Top {
            snapshot,
            stat,
            pretty,
            common,
        } => {
            check_key(&stat)?;
            let mut s = Session::new(common.rules());
            let snap = s
                .load(&snapshot)?
                .filter_traces(&s.table, &mut common.filters());
            let key = KeyType::from(stat.key);
            let stats = stats::statistics(&snap, &s.table, key, stat.cumulative)
                .map_err(|e| Failure::Usage(e.0))?;
            if common.json {
                return write_json(out, &top_json(&s.table, &snap, &stats, key, &stat, pretty));
            }
            if pretty {
                Ok(display_top(
                    out,
                    &s.table,
                    &stats,
                    stat.limit,
                    &sampling_note(snap.sample_rate()),
                )?)
            } else {
                writeln!(
                    out,
                    "[ Top {} ]{}",
                    stat.limit,
                    sampling_note(snap.sample_rate())
                )?;
                for st in stats.iter().take(stat.limit) {
                    writeln!(out, "{}", st.format(&s.table))?;
                }
                Ok(())
            }
        }
        Command::Diff {
            old,
            new,
            stat,
            common,
        } => {
            check_key(&stat)?;
            let mut s = Session::new(common.rules());
            let mut filters = common.filters();
            let old_snap = s.load(&old)?.filter_traces(&s.table, &mut filters);
            let new_snap = s.load(&new)?.filter_traces(&s.table, &mut filters);
            let key = KeyType::from(stat.key);
            let diffs = stats::compare_to(&new_snap, &old_snap, &s.table, key, stat.cumulative)
                .map_err(|e| Failure::Usage(e.0))?;
            if common.json {
                let list: Vec<Value> = diffs
                    .iter()
                    .take(stat.limit)
                    .enumerate()
                    .map(|(i, d)| {
                        json!({
                            "rank": i + 1,
                            "label": d.label(&s.table),
                            "text": d.format(&s.table),
                            "size": d.size,
                            "size_diff": d.size_diff,
                            "count": d.count,
                            "count_diff": d.count_diff,
                            "average": average(d.size, d.count),
                            "frames": d.frames.iter().map(|&f| frame_json(&s.table, f)).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                let (os, oc) = old_snap.totals();
                let (ns, nc) = new_snap.totals();
                return write_json(
                    out,
                    &json!({
                        "command": "diff",
                        "old": old.display().to_string(),
                        "new": new.display().to_string(),
                        "key": key.name(),
                        "cumulative": stat.cumulative,
                        "limit": stat.limit,
                        "groups": diffs.len(),
                        "old_total": {"size": os, "count": oc},
                        "new_total": {"size": ns, "count": nc},
                        "old_sample_rate": old_snap.sample_rate(),
                        "new_sample_rate": new_snap.sample_rate(),
                        "estimated": old_snap.sample_rate() > 0 || new_snap.sample_rate() > 0,
                        "old_malloc_owner": old_snap.malloc_owner(),
                        "new_malloc_owner": new_snap.malloc_owner(),
                        "statistics": list,
                    }),
                );
            }
            writeln!(
                out,
                "[ Top {} differences ]{}",
                stat.limit,
                diff_sampling_note(old_snap.sample_rate(), new_snap.sample_rate())
            )?;
            for d in diffs.iter().take(stat.limit) {
                writeln!(out, "{}", d.format(&s.table))?;
            }
            Ok(())
        }
        Command::Traceback {
            snapshot,
            rank,
            frames,
            oldest_first,
            common,
        } => {
            let mut s = Session::new(common.rules());
            let snap = s
                .load(&snapshot)?
                .filter_traces(&s.table, &mut common.filters());
            let stats = stats::statistics(&snap, &s.table, KeyType::Traceback, false)
                .map_err(|e| Failure::Usage(e.0))?;
            let Some(st) = stats.get(rank as usize - 1) else {
                return Err(Failure::Input(format!(
                    "{}: no traceback of rank {rank} (the snapshot has {} group{})",
                    snapshot.display(),
                    stats.len(),
                    if stats.len() == 1 { "" } else { "s" }
                )));
            };
            let mut lc = LineCache::new();
            if common.json {
                let oldest_first_frames: Vec<FrameId> = st.frames.iter().rev().copied().collect();
                let sel = traceback_slice(oldest_first_frames.len(), frames, !oldest_first);
                let fr: Vec<Value> = sel
                    .iter()
                    .map(|&i| {
                        let id = oldest_first_frames[i];
                        let f = s.table.frame(id);
                        let mut v = frame_json(&s.table, id);
                        v["source"] = json!(if f.has_line {
                            lc.getline(&f.filename, f.lineno)
                        } else {
                            None
                        });
                        v
                    })
                    .collect();
                return write_json(
                    out,
                    &json!({
                        "command": "traceback",
                        "snapshot": snapshot.display().to_string(),
                        "rank": rank,
                        "groups": stats.len(),
                        "size": st.size,
                        "count": st.count,
                        "truncated": st.truncated,
                        "sample_rate": snap.sample_rate(),
                        "estimated": snap.sample_rate() > 0,
                        "malloc_owner": snap.malloc_owner(),
                        "order": if oldest_first { "oldest_first" } else { "most_recent_first" },
                        "frames": fr,
                    }),
                );
            }
            writeln!(
                out,
                "{} memory blocks: {}{}",
                st.count,
                kib(st.size),
                sampling_note(snap.sample_rate())
            )?;
            for line in traceback_lines(&s.table, &st.frames, frames, !oldest_first, &mut lc) {
                writeln!(out, "{line}")?;
            }
            Ok(())
        }
        Command::Run {
            out: o,
            signal,
            frames,
            follow_exec,
            command,
        } => {
            let opts = crate::run::RunOptions {
                out: o,
                signal,
                frames,
                follow_exec,
                command,
            };
            match crate::run::run(opts) {
                Ok(code) => Err(Failure::Exit(code)),
                Err(crate::run::RunError(m, code)) => {
                    eprintln!("memtrace: {m}");
                    Err(Failure::Exit(code))
                }
            }
        }
        Command::Stats { snapshot, json } => {
            let dump = snapshot::read_dump(&snapshot).map_err(|e| Failure::Input(e.to_string()))?;
            if !dump.header.malloc_owner.is_empty() {
                let owner = String::from_utf8_lossy(&dump.header.malloc_owner);
                eprintln!(
                    "memtrace: warning: {}",
                    malloc_owner_warning(&snapshot.display().to_string(), &owner)
                );
            }
            print_stats(out, &snapshot.display().to_string(), &dump, json)
        }
    }
}

fn top_json(
    table: &FrameTable,
    snap: &Snapshot,
    stats: &[Statistic],
    key: KeyType,
    a: &StatArgs,
    pretty: bool,
) -> Value {
    let list: Vec<Value> = stats
        .iter()
        .take(a.limit)
        .enumerate()
        .map(|(i, st)| {
            json!({
                "rank": i + 1,
                "label": st.label(table),
                "text": st.format(table),
                "size": st.size,
                "count": st.count,
                "average": average(st.size, st.count),
                "truncated": st.truncated,
                "frames": st.frames.iter().map(|&f| frame_json(table, f)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let other = &stats[a.limit.min(stats.len())..];
    let (ts, tc) = snap.totals();
    json!({
        "command": "top",
        "snapshot": snap.path,
        "key": key.name(),
        "cumulative": a.cumulative,
        "limit": a.limit,
        "pretty": pretty,
        "groups": stats.len(),
        "total": {"size": ts, "count": tc},
        "sample_rate": snap.sample_rate(),
        "estimated": snap.sample_rate() > 0,
        "malloc_owner": snap.malloc_owner(),
        "statistics": list,
        "other": {
            "groups": other.len(),
            "size": other.iter().fold(0u64, |x, s| x.saturating_add(s.size)),
            "count": other.iter().fold(0u64, |x, s| x.saturating_add(s.count)),
        },
    })
}

/// The documentation's `display_top` recipe.
pub fn display_top(
    out: &mut dyn Write,
    table: &FrameTable,
    stats: &[Statistic],
    limit: usize,
    note: &str,
) -> std::io::Result<()> {
    let mut lc = LineCache::new();
    writeln!(out, "Top {limit} lines{note}")?;
    for (index, st) in stats.iter().take(limit).enumerate() {
        let frame = table.frame(st.frames[0]);
        let label = match st.key {
            stats::GroupKey::Func(_) => st.label(table),
            stats::GroupKey::File(_) => format!("{}:0", short_name(&frame.filename)),
            _ => format!("{}:{}", short_name(&frame.filename), frame.lineno),
        };
        writeln!(out, "#{}: {}: {}", index + 1, label, kib(st.size))?;
        if !matches!(st.key, stats::GroupKey::File(_)) {
            if let Some(line) = lc.getline(&frame.filename, frame.lineno) {
                writeln!(out, "    {line}")?;
            }
        }
    }
    let other = &stats[limit.min(stats.len())..];
    if !other.is_empty() {
        let size = other.iter().fold(0u64, |x, s| x.saturating_add(s.size));
        writeln!(out, "{} other: {}", other.len(), kib(size))?;
    }
    let total = stats.iter().fold(0u64, |x, s| x.saturating_add(s.size));
    writeln!(out, "Total allocated size: {}", kib(total))?;
    Ok(())
}

/// `os.sep.join(filename.split(os.sep)[-2:])`.
fn short_name(filename: &str) -> String {
    let parts: Vec<&str> = filename.split('/').collect();
    parts[parts.len().saturating_sub(2)..].join("/")
}

fn shell_quote(arg: &[u8]) -> String {
    let s = String::from_utf8_lossy(arg);
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Seconds since the epoch → `YYYY-MM-DD HH:MM:SS.nnnnnnnnn UTC`.
pub fn utc_time(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{frac:09} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn print_stats(
    out: &mut dyn Write,
    path: &str,
    d: &memtrace_format::Snapshot,
    as_json: bool,
) -> Result<(), Failure> {
    let h = &d.header;
    let (blocks, bytes) = d.traces.iter().fold((0u64, 0u64), |(c, s), t| {
        (
            c.saturating_add(t.count),
            s.saturating_add(t.size.saturating_mul(t.count)),
        )
    });
    let rate = h.sample_rate;
    // sampled: the estimates (see stats::estimate), the recorded blocks aside
    let (est_blocks, est_bytes) = if rate > 0 {
        let (s, c) = d.traces.iter().fold((0f64, 0f64), |(s, c), t| {
            let (es, ec) = stats::estimate(t.size, t.count, rate);
            (s + es, c + ec)
        });
        (stats::round_estimate(c), stats::round_estimate(s))
    } else {
        (blocks, bytes)
    };
    let owner =
        (!h.malloc_owner.is_empty()).then(|| String::from_utf8_lossy(&h.malloc_owner).into_owned());
    let truncated = d.stacks.iter().filter(|s| s.truncated).count();
    let cmdline: Vec<String> = h
        .cmdline
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let kind = match h.kind {
        memtrace_format::SnapshotKind::Signal => "signal",
        memtrace_format::SnapshotKind::Exit => "exit",
    };
    if as_json {
        return write_json(
            out,
            &json!({
                "command": "stats",
                "snapshot": path,
                "kind": kind,
                "index": h.index,
                "pid": h.pid,
                "cmdline": cmdline,
                "exe": String::from_utf8_lossy(&h.exe),
                "time_ns": h.time_ns,
                "time": utc_time(h.time_ns),
                "seq": h.seq,
                "traced_memory": {"current": h.traced_bytes, "peak": h.peak_bytes},
                "live": {"blocks": est_blocks, "size": est_bytes, "traces": d.traces.len(), "stacks": d.stacks.len(), "truncated_stacks": truncated,
                         "estimated": rate > 0, "sampled": {"blocks": blocks, "size": bytes}},
                "alloc_count": h.alloc_count,
                "free_count": h.free_count,
                "frame_limit": h.frame_limit,
                "sample_rate": h.sample_rate,
                "estimated": rate > 0,
                "malloc_owner": owner,
                "modules": d.modules.len(),
            }),
        );
    }
    let fs = |v: u64| crate::format::format_size(v as f64, false);
    let what = match h.kind {
        memtrace_format::SnapshotKind::Signal => format!("snapshot #{} (on signal)", h.index),
        memtrace_format::SnapshotKind::Exit => "exit snapshot (blocks never freed)".to_string(),
    };
    writeln!(out, "Snapshot:       {path}: {what}")?;
    writeln!(out, "Process:        pid {}", h.pid)?;
    writeln!(
        out,
        "Command line:   {}",
        h.cmdline
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    )?;
    writeln!(out, "Executable:     {}", String::from_utf8_lossy(&h.exe))?;
    writeln!(out, "Time:           {}", utc_time(h.time_ns))?;
    writeln!(
        out,
        "Traced memory:  current={} ({} B), peak={} ({} B)",
        fs(h.traced_bytes),
        h.traced_bytes,
        fs(h.peak_bytes),
        h.peak_bytes
    )?;
    if rate > 0 {
        writeln!(
            out,
            "Live blocks:    {est_blocks} ({}, {est_bytes} B) estimated from {blocks} sampled ({bytes} B) in {} stacks",
            fs(est_bytes),
            d.stacks.len()
        )?;
    } else {
        writeln!(
            out,
            "Live blocks:    {blocks} ({}, {} B) from {} stacks",
            fs(bytes),
            bytes,
            d.stacks.len()
        )?;
    }
    writeln!(out, "Allocations:    {} seen", h.alloc_count)?;
    writeln!(out, "Frees:          {} seen", h.free_count)?;
    writeln!(
        out,
        "Frame limit:    {} ({truncated} stacks truncated)",
        h.frame_limit
    )?;
    if h.sample_rate == 0 {
        writeln!(out, "Sampling:       every allocation recorded")?;
    } else {
        writeln!(
            out,
            "Sampling:       1 sample per {} ({} B) on average: live blocks and sizes are estimated",
            fs(rate),
            rate
        )?;
    }
    if let Some(o) = &owner {
        writeln!(
            out,
            "Allocator:      {o}, not glibc: its allocations were not traced"
        )?;
    }
    writeln!(out, "Modules:        {}", d.modules.len())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00.000000000 UTC");
        assert_eq!(
            utc_time(1_700_000_000_123_456_789),
            "2023-11-14 22:13:20.123456789 UTC"
        );
        assert_eq!(
            utc_time(951_782_400_000_000_000),
            "2000-02-29 00:00:00.000000000 UTC"
        );
    }

    #[test]
    fn short() {
        assert_eq!(short_name("/a/b/c.c"), "b/c.c");
        assert_eq!(short_name("c.c"), "c.c");
        assert_eq!(short_name("<unknown>"), "<unknown>");
    }

    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
