//! `memtrace run [options] -- CMD ARGS...`: runs CMD under libtrace.so and
//! lists the snapshots it wrote.
//!
//! - libtrace.so is the file next to the `memtrace` binary
//!   (`current_exe()`'s directory), or `$MEMTRACE_PRELOAD`;
//! - `--out`, `--signal`, `--frames`, `--follow-exec` become `MEMTRACE_OUT`,
//!   `MEMTRACE_SIGNAL`, `MEMTRACE_FRAMES`, `MEMTRACE_FOLLOW_EXEC=1`; an existing
//!   `LD_PRELOAD` is kept after ours;
//! - a statically linked or set-user-ID CMD is refused before it runs (the
//!   loader would ignore LD_PRELOAD: nothing could be traced);
//! - memtrace waits for CMD and exits with its status (its exit code, or
//!   128 + the signal that killed it). While it waits, SIGTERM, SIGHUP,
//!   SIGINT, SIGQUIT, SIGUSR1, SIGUSR2 and the snapshot signal sent to
//!   memtrace are passed on to CMD, as a shell passes them to its job (so
//!   `kill -USR2 <memtrace's pid>` takes a snapshot and `kill -INT` stops
//!   CMD); a SIGINT or SIGQUIT typed at the terminal is not passed on, since
//!   the terminal sends it to CMD itself;
//! - then every snapshot file that appeared under the output prefix is listed
//!   on stderr, `memtrace: wrote PATH`, or, if there is none, one line says so
//!   with the likely reasons.

use super::Failure;
use memtrace_format::{naming, signals};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};

/// Exit codes of memtrace's own failures (as `env` and shells use them).
pub const EXIT_NOT_FOUND: i32 = 127;
pub const EXIT_CANNOT_EXEC: i32 = 126;

pub struct RunOptions {
    pub out: Option<OsString>,
    pub signal: Option<String>,
    pub frames: Option<u32>,
    pub follow_exec: bool,
    pub command: Vec<OsString>,
    /// `--leak-check`: print the exit snapshot's leak check on stderr.
    pub leak_check: Option<LeakCheckOptions>,
}

pub struct LeakCheckOptions {
    /// Exit with this when anything is definitely or indirectly lost.
    pub error_exitcode: Option<i32>,
    pub suppressions: Option<PathBuf>,
}

/// An error before CMD ran: the message (without `memtrace: `) and the exit code.
pub struct RunError(pub String, pub i32);

/// `memtrace run`: memtrace exits with CMD's status, or after one line
/// saying why CMD did not run.
pub(super) fn command(opts: RunOptions) -> Result<(), Failure> {
    if let Some(why) = opts
        .signal
        .as_deref()
        .and_then(|s| signals::snapshot_signal_refusal(s.as_bytes()))
    {
        return Err(Failure::Usage(format!(
            "--signal {}: {why}",
            opts.signal.as_deref().unwrap_or_default()
        )));
    }
    match run(opts) {
        Ok(code) => Err(Failure::Exit(code)),
        Err(RunError(m, code)) => {
            eprintln!("memtrace: {m}");
            Err(Failure::Exit(code))
        }
    }
}

fn err(msg: impl Into<String>) -> RunError {
    RunError(msg.into(), 1)
}

/// The libtrace.so to preload: `$MEMTRACE_PRELOAD`, else next to this binary.
pub(super) fn find_preload() -> Result<PathBuf, RunError> {
    let p = match std::env::var_os("MEMTRACE_PRELOAD").filter(|v| !v.is_empty()) {
        Some(v) => {
            let p = PathBuf::from(v);
            if !p.is_file() {
                return Err(err(format!(
                    "MEMTRACE_PRELOAD={}: no such file",
                    p.display()
                )));
            }
            p
        }
        None => {
            let exe = std::env::current_exe().map_err(|e| {
                err(format!(
                    "cannot find my own path: {}",
                    crate::util::io_msg(&e)
                ))
            })?;
            let p = exe.parent().unwrap_or(Path::new("/")).join("libtrace.so");
            if !p.is_file() {
                return Err(err(format!(
                    "{}: not found (libtrace.so must sit next to the memtrace binary; or set MEMTRACE_PRELOAD)",
                    p.display()
                )));
            }
            p
        }
    };
    let p = std::fs::canonicalize(&p).unwrap_or(p);
    let b = p.as_os_str().as_bytes();
    if b.contains(&b':') || b.contains(&b' ') {
        return Err(err(format!(
            "{}: LD_PRELOAD cannot name a path with ':' or ' ' in it",
            p.display()
        )));
    }
    Ok(p)
}

/// CMD resolved as execvp would: a name with a '/' as is, else the first
/// executable regular file of that name on PATH.
fn resolve(cmd: &OsStr) -> Result<PathBuf, RunError> {
    let shown = cmd.to_string_lossy();
    if cmd.as_bytes().contains(&b'/') {
        let p = PathBuf::from(cmd);
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => Err(RunError(
                format!("{shown}: is a directory"),
                EXIT_CANNOT_EXEC,
            )),
            Ok(_) => Ok(p),
            Err(e) => Err(RunError(
                format!("{shown}: {}", crate::util::io_msg(&e)),
                EXIT_NOT_FOUND,
            )),
        };
    }
    if cmd.is_empty() {
        return Err(RunError("empty command name".into(), EXIT_NOT_FOUND));
    }
    let path =
        std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    for dir in path.as_bytes().split(|&c| c == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let cand = dir.join(cmd);
        if let Ok(m) = std::fs::metadata(&cand) {
            if m.is_file() && m.mode() & 0o111 != 0 {
                return Ok(cand);
            }
        }
    }
    Err(RunError(
        format!("{shown}: command not found"),
        EXIT_NOT_FOUND,
    ))
}

/// What the loader would make of an executable, as far as LD_PRELOAD goes.
#[derive(Debug, PartialEq, Eq)]
pub enum ExeKind {
    /// A dynamically linked ELF (has PT_INTERP).
    Dynamic,
    /// An ELF without PT_INTERP: no dynamic loader, LD_PRELOAD ignored.
    Static,
    /// A `#!` script: its interpreter is what runs.
    Script(PathBuf),
    /// Not an ELF we can read (let exec decide).
    Other,
}

/// Classifies a file by its first bytes.
pub fn exe_kind(path: &Path) -> ExeKind {
    use object::read::elf::{FileHeader, ProgramHeader};
    let Ok(data) = std::fs::read(path) else {
        return ExeKind::Other;
    };
    if let Some(rest) = data.strip_prefix(b"#!") {
        let line = rest.split(|&c| c == b'\n').next().unwrap_or(&[]);
        let interp = line
            .split(|c| c.is_ascii_whitespace())
            .find(|t| !t.is_empty())
            .unwrap_or(&[]);
        return if interp.is_empty() {
            ExeKind::Other
        } else {
            ExeKind::Script(PathBuf::from(OsStr::from_bytes(interp)))
        };
    }
    fn interp<H: FileHeader<Endian = object::Endianness>>(data: &[u8]) -> Option<bool> {
        let h = H::parse(data).ok()?;
        let endian = h.endian().ok()?;
        let phdrs = h.program_headers(endian, data).ok()?;
        Some(
            phdrs
                .iter()
                .any(|p| p.p_type(endian) == object::elf::PT_INTERP),
        )
    }
    if !data.starts_with(b"\x7fELF") || data.len() < 5 {
        return ExeKind::Other;
    }
    let r = if data[4] == 2 {
        interp::<object::elf::FileHeader64<object::Endianness>>(&data)
    } else {
        interp::<object::elf::FileHeader32<object::Endianness>>(&data)
    };
    match r {
        Some(true) => ExeKind::Dynamic,
        Some(false) => ExeKind::Static,
        None => ExeKind::Other,
    }
}

/// Why the loader would run `path` in secure-execution mode (and so ignore
/// LD_PRELOAD for our libtrace.so), if it would.
fn secure_exec(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    // SAFETY: plain getters.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if m.mode() & libc::S_ISUID != 0 && m.uid() != uid {
        return Some(format!("is set-user-ID (owner uid {})", m.uid()));
    }
    if m.mode() & libc::S_ISGID != 0 && m.gid() != gid {
        return Some(format!("is set-group-ID (group gid {})", m.gid()));
    }
    // File capabilities also make the exec secure.
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a null buffer of size 0 only asks for the attribute's size.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    if n > 0 && uid != 0 {
        return Some("has file capabilities".into());
    }
    None
}

/// Refuses a CMD that LD_PRELOAD cannot trace; follows one `#!` interpreter.
fn check_traceable(shown: &str, path: &Path) -> Result<(), RunError> {
    let mut p = path.to_path_buf();
    for _ in 0..4 {
        if let Some(why) = secure_exec(&p) {
            let what = if p == path {
                String::new()
            } else {
                format!(" (its interpreter {})", p.display())
            };
            return Err(err(format!(
                "{shown}{what} {why}: the loader ignores LD_PRELOAD for it, so it cannot be traced"
            )));
        }
        match exe_kind(&p) {
            ExeKind::Static => {
                let what = if p == path {
                    String::new()
                } else {
                    format!(" (its interpreter {})", p.display())
                };
                return Err(err(format!(
                    "{shown}{what} is statically linked: LD_PRELOAD cannot trace it"
                )));
            }
            ExeKind::Script(i) if i.is_absolute() => p = i,
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// The output prefix split into (directory to scan, directory as shown,
/// file name pattern with `%p`).
fn prefix_parts(prefix: &[u8], pid: u32) -> (PathBuf, String, Vec<u8>) {
    let (dir, base) = match prefix.iter().rposition(|&c| c == b'/') {
        Some(i) => (&prefix[..=i], &prefix[i + 1..]),
        None => (&b""[..], prefix),
    };
    // a %p in the directory part is the main process's pid
    let dir = naming::expand_pid(dir, pid);
    let shown = String::from_utf8_lossy(&dir).into_owned();
    let scan = if dir.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(OsStr::from_bytes(&dir))
    };
    (scan, shown, base.to_vec())
}

fn snapshot_names(dir: &Path, base: &[u8]) -> Vec<OsString> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| naming::is_snapshot_name(base, n.as_bytes()))
        .collect()
}

/// Sort key: numbers compare as numbers, `exit` after every number.
fn natural_key(name: &[u8]) -> Vec<(u8, u64, Vec<u8>)> {
    name.split(|&c| c == b'.')
        .map(|p| {
            if !p.is_empty() && p.len() < 20 && p.iter().all(|c| c.is_ascii_digit()) {
                (
                    0,
                    std::str::from_utf8(p).unwrap().parse().unwrap_or(0),
                    Vec::new(),
                )
            } else if p == b"exit" {
                (1, 0, Vec::new())
            } else {
                (2, 0, p.to_vec())
            }
        })
        .collect()
}

/// `SIGKILL`, or `signal N` for a signal without a name.
fn signal_name(sig: i32) -> String {
    signals::name(sig)
        .map(str::to_string)
        .unwrap_or_else(|| format!("signal {sig}"))
}

/// The snapshot signal `--signal` names, read as libtrace.so reads it; None
/// for `off` and for what libtrace.so refuses.
fn parse_signal(s: &str) -> Option<i32> {
    signals::parse_snapshot_signal(s.as_bytes()).filter(|&sig| sig != 0)
}

/// Runs the command; returns memtrace's exit code. Messages go to stderr.
pub fn run(opts: RunOptions) -> Result<i32, RunError> {
    let cmd = opts
        .command
        .first()
        .ok_or_else(|| RunError("run: no command given".into(), 2))?;
    let shown = cmd.to_string_lossy().into_owned();
    let preload = find_preload()?;
    let path = resolve(cmd)?;
    check_traceable(&shown, &path)?;

    let prefix: Vec<u8> = match (&opts.out, std::env::var_os("MEMTRACE_OUT")) {
        (Some(o), _) => o.as_bytes().to_vec(),
        (None, Some(e)) if naming::is_valid_prefix(e.as_bytes()) => e.into_vec(),
        _ => naming::DEFAULT_PREFIX.to_vec(),
    };
    if !naming::is_valid_prefix(&prefix) {
        return Err(RunError(
            "--out: expected a file name prefix (e.g. out/app or memtrace.%p)".into(),
            2,
        ));
    }

    let mut ld = preload.into_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| {
        !v.as_bytes()
            .iter()
            .all(|c| c.is_ascii_whitespace() || *c == b':')
    }) {
        ld.push(":");
        ld.push(old);
    }
    let mut c = std::process::Command::new(&path);
    c.arg0(cmd).args(&opts.command[1..]).env("LD_PRELOAD", &ld);
    if let Some(o) = &opts.out {
        c.env("MEMTRACE_OUT", o);
    }
    if let Some(s) = &opts.signal {
        c.env("MEMTRACE_SIGNAL", s);
    }
    if let Some(f) = opts.frames {
        c.env("MEMTRACE_FRAMES", f.to_string());
    }
    if opts.follow_exec {
        c.env("MEMTRACE_FOLLOW_EXEC", "1");
    }
    // A history on disk from the start (issue 13): what is left after a
    // SIGKILL. The user's MEMTRACE_HISTORY (`off` too) wins.
    if std::env::var_os("MEMTRACE_HISTORY").is_none() {
        c.env("MEMTRACE_HISTORY", "1s");
    }

    // Names present before the run are not the run's (libtrace.so never
    // replaces a file). The pid is not known yet: scan with %p as a wildcard.
    let (scan0, _, base) = prefix_parts(&prefix, 0);
    let before: std::collections::HashSet<OsString> = if prefix_has_pid_in_dir(&prefix) {
        Default::default()
    } else {
        snapshot_names(&scan0, &base)
            .into_iter()
            .chain(crate::history::history_names(&scan0, &base))
            .collect()
    };

    // Block the forwarded signals before CMD exists, so that one sent as
    // soon as CMD runs is not lost; CMD itself starts with memtrace's
    // original mask (the mask survives exec).
    let forward = forward_signals(opts.signal.as_deref().and_then(parse_signal));
    let old_mask = forward.old;
    // SAFETY: pthread_sigmask is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(move || {
            libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                EXIT_NOT_FOUND
            } else {
                EXIT_CANNOT_EXEC
            };
            return Err(RunError(
                format!("{shown}: {}", crate::util::io_msg(&e)),
                code,
            ));
        }
    };
    let pid = child.id();
    forward.start(pid);
    let status = loop {
        match child.wait() {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(err(format!(
                    "waiting for {shown}: {}",
                    crate::util::io_msg(&e)
                )))
            }
        }
    };
    drop(forward);
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    };

    let (scan, shown_dir, base) = prefix_parts(&prefix, pid);
    let mut new: Vec<OsString> = snapshot_names(&scan, &base)
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    new.sort_by_key(|n| natural_key(n.as_bytes()));
    if new.is_empty() {
        let killed = status.signal().map(|s| {
            format!(
                "it was killed by {}{}",
                signal_name(s),
                if s == libc::SIGKILL {
                    ", which leaves no time for the exit snapshot"
                } else {
                    " before its exit snapshot was written"
                }
            )
        });
        let reasons = killed.or_else(|| {
            (!scan.is_dir())
                .then(|| format!("its output directory {} does not exist", scan.display()))
        });
        let reasons = reasons.unwrap_or_else(|| {
            format!(
                "it ended without running exit handlers (_exit, exec{}), removed LD_PRELOAD from its environment, \
                 or could not write under {} (see its messages above)",
                if opts.follow_exec { "" } else { " of another program: try --follow-exec" },
                if shown_dir.is_empty() { "the current directory".to_string() } else { shown_dir.clone() }
            )
        });
        eprintln!("memtrace: {shown} wrote no snapshot: {reasons}");
    } else {
        for n in &new {
            eprintln!("memtrace: wrote {}{}", shown_dir, n.to_string_lossy());
        }
    }
    for n in crate::history::history_names(&scan, &base) {
        if !before.contains(&n) {
            eprintln!(
                "memtrace: wrote {}{} (history)",
                shown_dir,
                n.to_string_lossy()
            );
        }
    }
    if let Some(lc) = &opts.leak_check {
        let pid_s = pid.to_string();
        let exit_snap = new
            .iter()
            .filter(|n| n.as_bytes().ends_with(b".exit.snap"))
            .max_by_key(|n| n.to_string_lossy().contains(&pid_s));
        let lost = match exit_snap {
            Some(n) => leak_report(&scan.join(n), lc),
            None => {
                eprintln!("memtrace: --leak-check: {shown} wrote no exit snapshot: no leak check");
                None
            }
        };
        if let Some(n) = lc.error_exitcode {
            // No result at all fails too: a CI job must not pass unchecked.
            if lost != Some(false) {
                return Ok(n);
            }
        }
    }
    Ok(code)
}

/// Prints the leak check of `path` on stderr; whether anything is
/// definitely or indirectly lost (None: no result).
fn leak_report(path: &Path, lc: &LeakCheckOptions) -> Option<bool> {
    let sup = match &lc.suppressions {
        Some(p) => match super::leaks::Suppressions::read(p) {
            Ok(s) => s,
            Err(m) => {
                eprintln!("memtrace: --suppressions {m}");
                return None;
            }
        },
        None => super::leaks::Suppressions::none(),
    };
    // No filter, the system frames dropped: memcheck's report of everything.
    let common = super::CommonArgs::default();
    let opts = super::leaks::Options {
        show: super::leaks::parse_show(super::leaks::DEFAULT_SHOW).unwrap_or_default(),
        suppressions: &sup,
    };
    let mut err = std::io::stderr().lock();
    match super::leaks::report(&mut err, path, &opts, &common) {
        Ok(summary) => Some(summary.lost()),
        Err(Failure::Input(m)) | Err(Failure::Usage(m)) => {
            eprintln!("memtrace: {m}");
            None
        }
        Err(_) => None,
    }
}

fn prefix_has_pid_in_dir(prefix: &[u8]) -> bool {
    match prefix.iter().rposition(|&c| c == b'/') {
        Some(i) => naming::has_pid(&prefix[..i]),
        None => false,
    }
}

/// Blocks the forwarded signals in this process; `start` passes them on to
/// CMD from a helper thread until the guard is dropped (then they are
/// dropped: memtrace is about to exit).
struct Forwarder {
    set: libc::sigset_t,
    /// The mask before: CMD's.
    old: libc::sigset_t,
    forwarded: Vec<i32>,
}

static CHILD_DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Drop for Forwarder {
    fn drop(&mut self) {
        // the pid may be reused from now on
        CHILD_DONE.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The signals a terminal sends to its whole foreground process group (CMD
/// included): forwarded only when another process sent them to memtrace.
const TERMINAL_SIGNALS: [i32; 2] = [libc::SIGINT, libc::SIGQUIT];

fn forward_signals(snapshot_signal: Option<i32>) -> Forwarder {
    let mut forwarded = vec![
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ];
    // memtrace's own SIGCHLD is not CMD's business.
    if let Some(s) = snapshot_signal {
        if s != libc::SIGCHLD && !forwarded.contains(&s) {
            forwarded.push(s);
        }
    }
    // SAFETY: signal mask manipulation with a properly initialised set.
    let (set, old) = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in forwarded.iter() {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        (set, old)
    };
    Forwarder {
        set,
        old,
        forwarded,
    }
}

impl Forwarder {
    fn start(&self, pid: u32) {
        let (set, fw) = (self.set, self.forwarded.clone());
        let pid = pid as libc::pid_t;
        // The thread inherits the blocked mask and only calls sigwait and kill.
        std::thread::spawn(move || loop {
            // SAFETY: sigwaitinfo on an initialised set into a zeroed
            // siginfo; kill of our child's pid.
            unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                let sig = libc::sigwaitinfo(&set, &mut info);
                if sig < 0 {
                    if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                        continue;
                    }
                    return;
                }
                // A terminal's ^C or ^\ reached CMD already (SI_KERNEL).
                let from_terminal =
                    TERMINAL_SIGNALS.contains(&sig) && info.si_code == libc::SI_KERNEL;
                if fw.contains(&sig)
                    && !from_terminal
                    && !CHILD_DONE.load(std::sync::atomic::Ordering::SeqCst)
                {
                    libc::kill(pid, sig);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order() {
        let mut v = vec!["a.10.snap", "a.exit.snap", "a.2.snap", "a.5.1.snap"];
        v.sort_by_key(|n| natural_key(n.as_bytes()));
        assert_eq!(v, ["a.2.snap", "a.5.1.snap", "a.10.snap", "a.exit.snap"]);
    }

    #[test]
    fn kinds() {
        assert_eq!(exe_kind(Path::new("/bin/sh")), ExeKind::Dynamic);
        assert_eq!(exe_kind(Path::new("/nonexistent")), ExeKind::Other);
    }
}
