//! The `memtrace` command line (see `docs/CLI.md`): the clap definitions and
//! the dispatch; each command lives in its own file, the snapshot loading they
//! share in `session`, the JSON they print in `json`.
//!
//! Exit codes: 0 ok, 1 bad input (a snapshot that cannot be read, a rank
//! that does not exist), 2 bad usage.

mod attach;
mod began;
mod diff;
mod export;
mod flamegraph;
mod json;
mod leaks;
mod plot;
mod report;
mod run;
mod session;
mod snapshot;
mod stats;
mod summary;
mod top;
mod traceback;

use crate::filter::{DomainFilter, Filter, FilterSet, Pattern};
use crate::frame::FrameRules;
use crate::snapshot::View;
use crate::stats::KeyType;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

/// The help's account of which frames are dropped, made from the one list
/// (`frame::SYSTEM_FRAMES`) the analyzer applies.
fn system_help() -> String {
    format!(
        "\
THE USER'S LINE, NOT THE ALLOCATOR'S:
  Before grouping, filtering or printing, memtrace drops the frames that belong to the
  toolchain and the system rather than the program, by where they are (a frame without line
  information stays when it is the program's own: it is named by its function):
{}  If that would leave a traceback empty, its innermost frame is kept.
  --raw keeps every frame; --user PATTERN exempts matching frames from the rule and
  --system PATTERN adds them to it (fnmatch on the file name, the module path or file
  name, or the function name).

FRAMES WITHOUT LINE INFORMATION:
  are named <function in module> (or <module+0xoffset>) with line 0 in statistics, and
  printed as `File \"/path/libfoo.so\", function foo+0x12` in tracebacks.

EXIT STATUS: 0 ok, 1 bad input, 2 bad usage.",
        crate::frame::describe_system_frames("    ", 94)
    )
}

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

const ATTACH_HELP: &str = "\
EXAMPLE:
  memtrace attach 1234 && memtrace snapshot 1234   # then memtrace top memtrace.1234.1.snap

  Refused with one line (exit 1), the process untouched: no such process, not permitted
  (ptrace), statically linked, already traced, a malloc other than glibc's (jemalloc...).
  Not seen: blocks allocated before the attach (their frees and reallocs are handled: a
  realloc of one counts as a new allocation), what ld.so allocates for itself, and what a
  library dlopen()ed later allocates in its constructors. _exit and exec write no exit
  snapshot.

EXIT STATUS: 0 attached, 1 cannot attach, 2 bad usage.";

#[derive(Parser, Debug)]
#[command(
    name = "memtrace",
    version,
    about = "Python's tracemalloc for native programs: statistics over libtrace.so snapshots",
    after_help = system_help()
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The biggest allocation sites: `[ Top N ]` then one str(Statistic) line each.
    #[command(after_help = system_help())]
    Top {
        /// Snapshot file (`<prefix>.<n>.snap` or `<prefix>.exit.snap`).
        snapshot: PathBuf,
        #[command(flatten)]
        stat: StatArgs,
        /// Print the "pretty top" of the tracemalloc documentation (display_top).
        #[arg(long)]
        pretty: bool,
        #[command(flatten)]
        view: ViewArgs,
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        moment: AtArgs,
    },
    /// What grew between two snapshots: `[ Top N differences ]` then str(StatisticDiff) lines.
    #[command(after_help = system_help())]
    Diff {
        /// The older snapshot.
        old: PathBuf,
        /// The newer snapshot (for `--from T1 --to T2` on one history file: omitted).
        new: Option<PathBuf>,
        #[command(flatten)]
        stat: StatArgs,
        #[command(flatten)]
        common: CommonArgs,
        /// With one history file: the older moment, seconds from the program's start.
        #[arg(long, value_name = "SECONDS")]
        from: Option<f64>,
        /// With one history file: the newer moment (default: the last point).
        #[arg(long, value_name = "SECONDS")]
        to: Option<f64>,
    },
    /// The traceback of the R-th biggest group by traceback.
    #[command(after_help = system_help())]
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
        view: ViewArgs,
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        moment: AtArgs,
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
        /// When CMD ends, print the exit snapshot's leak check on stderr as memcheck does (loss
        /// records definitely and possibly lost, then LEAK SUMMARY).
        #[arg(long)]
        leak_check: bool,
        /// With --leak-check: exit N when anything is definitely or indirectly lost after
        /// suppressions, or when there is no leak check to read (else CMD's status).
        #[arg(long, value_name = "N", requires = "leak_check")]
        error_exitcode: Option<i32>,
        /// With --leak-check: LeakSanitizer suppressions (`leak:PATTERN` lines).
        #[arg(long, value_name = "FILE", requires = "leak_check")]
        suppressions: Option<PathBuf>,
        /// The command and its arguments (after `--`).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD",
              value_parser = clap::value_parser!(std::ffi::OsString))]
        command: Vec<std::ffi::OsString>,
    },
    /// The exit snapshot's leak check as valgrind's memcheck prints it: loss records (definitely,
    /// indirectly, possibly lost, still reachable), each with its traceback, then LEAK SUMMARY.
    #[command(after_help = system_help())]
    Leaks {
        /// An exit snapshot (format 1.3, leak check on: MEMTRACE_LEAK_CHECK not off).
        snapshot: PathBuf,
        /// Which loss records to print (memcheck's --show-leak-kinds): definite, indirect,
        /// possible, reachable, all or none, comma-separated.
        #[arg(long, default_value = leaks::DEFAULT_SHOW, value_name = "KINDS")]
        show: String,
        /// LeakSanitizer suppressions (`leak:PATTERN` lines): matching records count as suppressed.
        #[arg(long, value_name = "FILE")]
        suppressions: Option<PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Start tracing a running process: load libtrace.so into it (ptrace), redirect its
    /// malloc-family calls to it. Blocks allocated before are unknown; snapshots (memtrace
    /// snapshot PID) hold what was allocated since and say when tracing began.
    #[command(after_help = ATTACH_HELP)]
    Attach {
        /// The process id.
        pid: u32,
        /// Snapshot file prefix (MEMTRACE_OUT), relative to this directory; `%p` is the pid.
        /// Default memtrace.%p.
        #[arg(long, value_name = "PREFIX", value_parser = clap::value_parser!(std::ffi::OsString))]
        out: Option<std::ffi::OsString>,
        /// Stack depth kept (MEMTRACE_FRAMES), 1-256. Default 32.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
        frames: Option<u32>,
        /// Sample one allocation per B bytes on average (MEMTRACE_SAMPLE): 512K, 1M, 4096.
        #[arg(long, value_name = "B")]
        sample: Option<String>,
        /// Snapshot signal (MEMTRACE_SIGNAL): USR1, USR2, a number, or off. Default USR2.
        #[arg(long, value_name = "SIG")]
        signal: Option<String>,
    },
    /// Ask a traced process (memtrace run or LD_PRELOAD) for a snapshot now, whatever signal it
    /// uses; waits until the file is complete and prints its path.
    Snapshot {
        /// The process id.
        pid: u32,
        /// Seconds to wait for the file.
        #[arg(long, default_value_t = 60, value_name = "SECONDS")]
        timeout: u64,
    },
    /// The whole run on one screen: run time, allocation calls, temporaries, the peak, RSS
    /// explained, and the top lines at the peak, by allocations, by temporaries and now.
    #[command(after_help = system_help())]
    Summary {
        /// Snapshot file (format 1.2 holds the whole run; an older one gives what it can).
        snapshot: PathBuf,
        /// How many lines each top list has (filter and frame options shape the lists only).
        #[arg(long, default_value_t = 3)]
        limit: usize,
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        moment: AtArgs,
    },
    /// Memory over time as an SVG chart: traced bytes and RSS from the snapshot's timeline
    /// (format 1.2) or a history's points, the snapshots and the peak marked; for a history
    /// the top lines stacked by their live bytes over time.
    Plot {
        /// Snapshot file (format 1.2, with its timeline) or history file (<prefix>.history).
        snapshot: PathBuf,
        /// The SVG file to write (`-`: standard output).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        /// How many lines to stack over time: those with the most live bytes at the peak (then
        /// at the last point). Needs a history file: a snapshot has the live blocks only now and
        /// at the peak, so its chart draws the totals.
        #[arg(long, default_value_t = 5, value_name = "N")]
        top: usize,
        #[command(flatten)]
        moment: AtArgs,
    },
    /// One self-contained HTML page: the summary, memory over time, an interactive flame graph
    /// of the live blocks and the peak's, and the top lines live, at the peak, allocated and
    /// temporary with their source lines; for a history file the top lines over time.
    #[command(after_help = system_help())]
    Report {
        /// Snapshot file (format 1.2 holds the whole run; an older one gives what it can) or
        /// history file (<prefix>.history).
        snapshot: PathBuf,
        /// The HTML file to write (`-`: standard output).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        /// How many lines each table shows.
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
        /// How many lines the chart of a history file stacks over time (as `plot --top`).
        #[arg(long, default_value_t = 5, value_name = "N")]
        top: usize,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        moment: AtArgs,
    },
    /// Header facts: traced memory now and at peak, blocks, allocations, frees, process.
    Stats {
        snapshot: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        moment: AtArgs,
    },
    /// Write the snapshot for another tool: a gzip'd pprof heap profile (go tool pprof) or the
    /// pickle tracemalloc's Snapshot.load() reads.
    #[command(after_help = system_help())]
    Export {
        snapshot: PathBuf,
        /// pprof (profile.proto, gzip'd) or tracemalloc (a pickled tracemalloc.Snapshot).
        #[arg(long, value_enum)]
        format: export::ExportFormat,
        /// The file to write (`-`: stdout).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// The live blocks at the peak (format 1.2) instead of at the snapshot moment.
        #[arg(long)]
        peak: bool,
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        moment: AtArgs,
    },
    /// Draw the live blocks as a flame graph (SVG), or write its folded text (--collapsed).
    #[command(after_help = system_help())]
    Flamegraph {
        snapshot: PathBuf,
        /// The file to write (`-`: stdout).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Widths are blocks, not bytes.
        #[arg(long)]
        count: bool,
        /// Write the folded stacks (`root;caller;site BYTES`) instead of the SVG.
        #[arg(long)]
        collapsed: bool,
        /// The live blocks at the peak (format 1.2) instead of at the snapshot moment.
        #[arg(long, conflicts_with_all = ["allocated", "temporary"])]
        peak: bool,
        /// Every allocation since the start, freed or not (format 1.2).
        #[arg(long, conflicts_with = "temporary")]
        allocated: bool,
        /// The temporary allocations since the start (freed before the thread allocated again).
        #[arg(long)]
        temporary: bool,
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        moment: AtArgs,
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

/// Which groups of the snapshot are the traces (the whole-run views need
/// format 1.2).
#[derive(Args, Debug)]
struct ViewArgs {
    /// The blocks live at the moment traced memory peaked, instead of now (format 1.2 snapshots).
    #[arg(long, conflicts_with_all = ["allocated", "temporary"])]
    peak: bool,
    /// Every allocation since the start, freed or not: size = bytes allocated, count = allocations.
    #[arg(long, conflicts_with = "temporary")]
    allocated: bool,
    /// The temporary allocations since the start (freed before their thread allocated anything
    /// else): count = how many, size = their bytes.
    #[arg(long)]
    temporary: bool,
}

impl ViewArgs {
    fn view(&self) -> View {
        if self.peak {
            View::Peak
        } else if self.allocated {
            View::Allocated
        } else if self.temporary {
            View::Temporary
        } else {
            View::Live
        }
    }
}

/// Which moment of a history file the command reads.
#[derive(Args, Debug)]
struct AtArgs {
    /// For a history file (`<prefix>.history`): the point at or before SECONDS from the
    /// program's start, instead of the last point on disk.
    #[arg(long, value_name = "SECONDS")]
    at: Option<f64>,
}

/// The filter and frame options of every command that lists groups.
#[derive(Args, Debug, Default)]
struct CommonArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Print JSON instead of text (schema in docs/CLI.md).
    #[arg(long)]
    json: bool,
}

/// `CommonArgs` without `--json`: what `report` (an HTML page) takes.
#[derive(Args, Debug, Default)]
struct FilterArgs {
    /// Keep only traces matching PATTERN (tracemalloc Filter(True, ...)): fnmatch on the file
    /// name, module or function of the most recent kept frame; `PATTERN:LINENO` also requires
    /// that line. Several --include are or-ed.
    #[arg(long, value_name = "PATTERN")]
    include: Vec<String>,
    /// Drop traces matching PATTERN (Filter(False, ...)); every --exclude must let a trace through.
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Keep the traces of domain N (tracemalloc DomainFilter(True, N)): 0 is the malloc heap,
    /// other numbers custom allocators' objects (memtrace.h). Or-ed with --include.
    #[arg(long, value_name = "N")]
    domain: Vec<u32>,
    /// Drop the traces of domain N (DomainFilter(False, N)).
    #[arg(long, value_name = "N")]
    exclude_domain: Vec<u32>,
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
}

impl StatArgs {
    /// The key type, refused early (before any file is read) with cumulative
    /// for the `traceback` key, as `Snapshot.statistics` refuses it.
    fn key_type(&self) -> Result<KeyType, Failure> {
        let key = KeyType::from(self.key);
        crate::stats::check_key(key, self.cumulative).map_err(|e| Failure::Usage(e.0))?;
        Ok(key)
    }
}

impl CommonArgs {
    fn rules(&self) -> FrameRules {
        self.filter.rules()
    }

    fn filters(&self) -> FilterSet {
        self.filter.filters()
    }
}

impl FilterArgs {
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
        let domains = self
            .domain
            .iter()
            .map(|&domain| DomainFilter {
                inclusive: true,
                domain,
            })
            .chain(self.exclude_domain.iter().map(|&domain| DomainFilter {
                inclusive: false,
                domain,
            }))
            .collect();
        FilterSet::with_domains(v, domains)
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
            Failure::Input(format!("cannot write output: {}", crate::util::io_msg(&e)))
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
    let res = dispatch(cli, &mut out).and_then(|()| out.flush().map_err(Failure::from));
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

fn dispatch(cli: Cli, out: &mut dyn Write) -> Result<(), Failure> {
    select_moments(&cli.command)?;
    match cli.command {
        Command::Top {
            snapshot,
            stat,
            pretty,
            view,
            common,
            ..
        } => top::top(out, &snapshot, &stat, pretty, view.view(), &common),
        Command::Diff {
            old,
            new,
            stat,
            common,
            ..
        } => {
            let new = new.unwrap_or_else(|| old.clone());
            diff::diff(out, &old, &new, &stat, &common)
        }
        Command::Traceback {
            snapshot,
            rank,
            frames,
            oldest_first,
            view,
            common,
            ..
        } => traceback::traceback(
            out,
            &snapshot,
            rank,
            frames,
            oldest_first,
            view.view(),
            &common,
        ),
        Command::Run {
            out: o,
            signal,
            frames,
            follow_exec,
            leak_check,
            error_exitcode,
            suppressions,
            command,
        } => run::command(run::RunOptions {
            out: o,
            signal,
            frames,
            follow_exec,
            command,
            leak_check: leak_check.then_some(run::LeakCheckOptions {
                error_exitcode,
                suppressions,
            }),
        }),
        Command::Leaks {
            snapshot,
            show,
            suppressions,
            common,
        } => leaks::leaks(out, &snapshot, &show, suppressions.as_deref(), &common),
        Command::Attach {
            pid,
            out: o,
            frames,
            sample,
            signal,
        } => attach::attach(
            out,
            attach::AttachOptions {
                pid,
                out: o,
                frames,
                sample,
                signal,
            },
        ),
        Command::Snapshot { pid, timeout } => snapshot::snapshot(out, pid, timeout),
        Command::Summary {
            snapshot,
            limit,
            common,
            ..
        } => summary::summary(out, &snapshot, limit, &common),
        Command::Stats { snapshot, json, .. } => stats::stats(out, &snapshot, json),
        Command::Export {
            snapshot,
            format,
            output,
            peak,
            common,
            ..
        } => export::export(out, &snapshot, format, &output, peak, &common),
        Command::Flamegraph {
            snapshot,
            output,
            count,
            collapsed,
            peak,
            allocated,
            temporary,
            common,
            ..
        } => flamegraph::flamegraph(
            out,
            &flamegraph::FlameArgs {
                path: &snapshot,
                output: &output,
                count,
                collapsed,
                view: match (peak, allocated, temporary) {
                    (true, _, _) => crate::export::View::Peak,
                    (_, true, _) => crate::export::View::Allocated,
                    (_, _, true) => crate::export::View::Temporary,
                    _ => crate::export::View::Live,
                },
            },
            &common,
        ),
        Command::Plot {
            snapshot,
            output,
            top,
            ..
        } => plot::plot(&snapshot, &output, top),
        Command::Report {
            snapshot,
            output,
            limit,
            top,
            filter,
            ..
        } => report::report(
            &snapshot,
            &output,
            report::Sizes { limit, top },
            &CommonArgs {
                filter,
                json: false,
            },
        ),
    }
}

/// Tells the history reader which moments the command reads (`--at` for
/// one file, `--from`/`--to` for `diff` of one history file).
fn select_moments(command: &Command) -> Result<(), Failure> {
    let at = match command {
        Command::Diff {
            new: None,
            from: None,
            to: None,
            ..
        } => {
            return Err(Failure::Usage(
                "diff needs two snapshots, or one history file with --from and --to".into(),
            ))
        }
        Command::Diff {
            new: None,
            from,
            to,
            ..
        } => {
            crate::history::select(&[*from, *to]);
            return Ok(());
        }
        Command::Diff { new: Some(_), .. } => None,
        Command::Top { moment, .. }
        | Command::Traceback { moment, .. }
        | Command::Summary { moment, .. }
        | Command::Plot { moment, .. }
        | Command::Report { moment, .. }
        | Command::Stats { moment, .. }
        | Command::Export { moment, .. }
        | Command::Flamegraph { moment, .. } => moment.at,
        Command::Run { .. }
        | Command::Leaks { .. }
        | Command::Attach { .. }
        | Command::Snapshot { .. } => None,
    };
    if let Command::Diff {
        new: Some(_),
        from,
        to,
        ..
    } = command
    {
        if from.is_some() || to.is_some() {
            return Err(Failure::Usage(
                "--from and --to are for `memtrace diff HISTORY --from T1 --to T2`".into(),
            ));
        }
    }
    crate::history::select(&[at, at]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
