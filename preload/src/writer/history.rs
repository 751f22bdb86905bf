//! The history file `<prefix>.history` (docs/FORMAT.md, "The history
//! file"): every MEMTRACE_HISTORY period, at a completed cut (the live
//! table is then exactly the state at that point of the global order), one
//! record with what changed since the previous point: the live groups'
//! counts, the totals of the stacks touched, the stacks named for the first
//! time, the module list when it changed; time, traced bytes, RSS, the peak
//! so far. Written with write(2) as soon as it is made, so a SIGKILL loses
//! at most one period. Bounded by what changed, not by the events.
//!
//! A failure (disk full, unwritable directory, the program closed or reused
//! our descriptor) is one line on stderr; the history stops, the program
//! and the snapshots go on. A fork child writes its own file: its first
//! point holds every group it inherited.

use super::live::LiveTable;
use crate::sys::{self, BuildMix};
use crate::whole_run::{self, WholeRun};
use crate::{config, intern, modules};
use memtrace_format::history::{self as fmt, Point, Start};
use memtrace_format::{SnapshotMark, Stack, StackTotals};
use std::collections::{HashMap, HashSet};
use std::ffi::CString;

pub struct HistoryWriter {
    /// The period; 0: off.
    period_ns: u64,
    /// -1 until the first point opens the file.
    fd: i32,
    /// (st_dev, st_ino) of our file: a descriptor the program closed and
    /// reused is never written to.
    id: (u64, u64),
    /// Stopped after a failure (reported once).
    failed: bool,
    /// CLOCK_MONOTONIC of the last point.
    last_ns: u64,
    /// Stacks already in the file.
    written: HashSet<u32, BuildMix>,
    /// Hash of the module list last written.
    modules_hash: u64,
    /// A fork child's file: its first point carries the whole state.
    parent_pid: u32,
    whole_state: bool,
    /// The last completed cut: (seq, CLOCK_REALTIME ns).
    last_cut: (u64, u64),
    /// Snapshots written since the last point, for the next one.
    marks: Vec<SnapshotMark>,
}

/// The trackers stop following events for the history.
fn stop(run: &mut WholeRun) {
    run.history.on = false;
    run.history.clear();
    run.peak.set_history(false);
}

impl HistoryWriter {
    pub fn new() -> Self {
        HistoryWriter {
            period_ns: config::history_ns(),
            fd: -1,
            id: (0, 0),
            failed: false,
            last_ns: 0,
            written: HashSet::default(),
            modules_hash: 0,
            parent_pid: 0,
            whole_state: false,
            last_cut: (0, 0),
            marks: Vec::new(),
        }
    }

    /// A snapshot was written: its moment goes in the next point (the
    /// point at its cut was made before it).
    pub fn snapshot_written(&mut self, index: u64, time_ns: u64) {
        if self.on() {
            self.marks.push(SnapshotMark { index, time_ns });
        }
    }

    /// Whether the trackers should follow events for us.
    pub fn on(&self) -> bool {
        self.period_ns != 0 && !self.failed
    }

    /// A point is due (`now`: CLOCK_MONOTONIC).
    pub fn due(&self, now: u64) -> bool {
        self.on() && now.saturating_sub(self.last_ns) >= self.period_ns
    }

    /// A cut was completed and every event below it applied: a point when
    /// one is due (or `force`d: the exit).
    pub fn at_cut(
        &mut self,
        live: &LiveTable,
        run: &mut WholeRun,
        seq: u64,
        time_ns: u64,
        force: bool,
    ) {
        self.last_cut = (seq, time_ns);
        if force || self.due(sys::now_ns(libc::CLOCK_MONOTONIC)) {
            self.point(live, run, seq, time_ns);
        }
    }

    /// Nothing is pending or waiting: the live table is the state at the
    /// last completed cut. A point for it when one is due and something
    /// changed since the last (a program that stopped allocating still
    /// gets its last changes on disk within a period).
    pub fn idle(&mut self, live: &LiveTable, run: &mut WholeRun) {
        if (run.history.is_dirty() || self.whole_state || !self.marks.is_empty())
            && self.last_cut.1 != 0
            && self.due(sys::now_ns(libc::CLOCK_MONOTONIC))
        {
            let (seq, time_ns) = self.last_cut;
            self.point(live, run, seq, time_ns);
        }
    }

    /// Fork child: the parent's file and descriptor are not ours.
    pub fn fork_child(&mut self, run: &mut WholeRun, parent_pid: u32) {
        if self.fd >= 0 {
            // SAFETY: our own descriptor (the child's copy of it).
            unsafe { libc::close(self.fd) };
        }
        self.fd = -1;
        self.failed = false;
        self.last_ns = 0;
        self.written.clear();
        self.modules_hash = 0;
        self.parent_pid = parent_pid;
        self.whole_state = true;
        self.last_cut = (0, 0);
        self.marks.clear();
        run.history.clear();
        run.history.on = self.on();
        run.peak.set_history(self.on());
    }

    fn fail(&mut self, what: &str) {
        if !self.failed {
            self.failed = true;
            sys::log(&format!("{what}; no more history (the snapshots go on)"));
        }
    }

    /// Writes a point at a completed cut (`seq`, `time_ns` CLOCK_REALTIME):
    /// `live` is the state there.
    pub fn point(&mut self, live: &LiveTable, run: &mut WholeRun, seq: u64, time_ns: u64) {
        self.last_ns = sys::now_ns(libc::CLOCK_MONOTONIC);
        if !self.on() {
            return;
        }
        if run.history.lost {
            self.fail("out of memory in the writer thread for the history");
            stop(run);
            return;
        }
        let pid = std::process::id();
        if self.fd < 0 && !self.open(pid, run) {
            stop(run);
            return;
        }
        let changes = run.history.take();
        // The peak's groups as changes since the last point (docs/FORMAT.md,
        // history 1.1): a fork child's file starts with the whole peak.
        let peak = if self.whole_state {
            run.peak.whole_history()
        } else {
            run.peak.take_history()
        };
        let (groups, stacks): (Vec<(u64, u64, i64)>, Vec<u32>) = if self.whole_state {
            self.whole_state = false;
            let mut g: HashMap<(u32, u64), i64, BuildMix> = HashMap::default();
            for b in live.live_blocks() {
                *g.entry((b.stack, b.size)).or_insert(0) += 1;
            }
            let mut g: Vec<_> = g.into_iter().map(|((s, z), n)| (s as u64, z, n)).collect();
            g.sort_unstable();
            let stacks = run.totals.totals().iter().map(|t| t.stack as u32).collect();
            (g, stacks)
        } else {
            let mut stacks: Vec<u32> = changes.iter().map(|&((s, _), _)| s).collect();
            stacks.dedup();
            let g = changes
                .into_iter()
                .filter(|&(_, d)| d != 0)
                .map(|((s, z), d)| (s as u64, z, d))
                .collect();
            (g, stacks)
        };
        let totals: Vec<StackTotals> = stacks.iter().map(|&s| run.totals.of(s)).collect();
        let mut new_stacks = Vec::new();
        let peak_stacks = peak
            .iter()
            .flat_map(|p| p.groups.iter().map(|g| g.0 as u32));
        for &id in groups
            .iter()
            .map(|g| g.0 as u32)
            .chain(peak_stacks)
            .collect::<Vec<_>>()
            .iter()
            .chain(stacks.iter())
        {
            if self.written.insert(id) {
                new_stacks.push(match intern::get(id) {
                    Some((frames, truncated)) => Stack {
                        id: id as u64,
                        frames: frames.to_vec(),
                        truncated,
                    },
                    None => Stack {
                        id: id as u64,
                        frames: Vec::new(),
                        truncated: true,
                    },
                });
            }
        }
        let mods = modules::for_snapshot(&new_stacks);
        let h = {
            use std::hash::{BuildHasher, Hash, Hasher};
            let mut h = BuildMix::default().build_hasher();
            for m in &mods {
                m.path.hash(&mut h);
                m.base.hash(&mut h);
                m.unloaded.hash(&mut h);
            }
            h.finish() | 1
        };
        let modules = if h != self.modules_hash {
            self.modules_hash = h;
            Some(mods)
        } else {
            None
        };
        let pt = Point {
            time_ns,
            seq,
            traced_bytes: live.traced_bytes(),
            peak_bytes: live.peak_bytes(),
            alloc_count: live.allocs(),
            free_count: live.frees(),
            rss_bytes: whole_run::rss_now(),
            modules,
            new_stacks,
            group_changes: groups,
            totals,
            peak,
            snapshots: std::mem::take(&mut self.marks),
        };
        let rec = fmt::encode_point(&pt);
        self.append(&rec);
        if self.failed {
            stop(run);
        }
    }

    /// Opens `<prefix>.history` (never an existing file, never through a
    /// symlink) and writes its header and start record.
    fn open(&mut self, pid: u32, run: &WholeRun) -> bool {
        let base = config::expand(&config::out_prefix(), pid);
        // With MEMTRACE_FOLLOW_EXEC an exec'd image goes on under the same
        // pid: its history is `<prefix>.exec<k>.history`, the first free k.
        let tries = if config::follow_exec() { 16 } else { 1 };
        let mut k = 0;
        let (fd, st, shown) = loop {
            let mut path = base.clone();
            if k > 0 {
                path.extend_from_slice(format!(".exec{k}").as_bytes());
            }
            path.extend_from_slice(b".history");
            let shown = String::from_utf8_lossy(&path).into_owned();
            let Ok(cpath) = CString::new(path) else {
                self.fail("cannot write the history: file name contains a NUL byte");
                return false;
            };
            // SAFETY: open and fstat on a valid path and a local struct.
            let (fd, st) = unsafe {
                let fd = libc::open(
                    cpath.as_ptr(),
                    libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_WRONLY
                        | libc::O_APPEND
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    0o640 as libc::c_uint,
                );
                let mut st: libc::stat = std::mem::zeroed();
                if fd >= 0 && libc::fstat(fd, &mut st) != 0 {
                    st.st_ino = 0;
                }
                (fd, st)
            };
            k += 1;
            if fd >= 0 || crate::guard::errno() != libc::EEXIST || k >= tries {
                break (fd, st, shown);
            }
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            self.fail(&format!("cannot write {shown}: {e}"));
            return false;
        }
        self.fd = fd;
        self.id = (st.st_dev, st.st_ino);
        let start = Start {
            pid,
            start_ns: run.timeline.timeline_at(0, 0, 0).start_ns,
            period_ns: self.period_ns,
            frame_limit: config::frames() as u32,
            sample_rate: config::sample_rate(),
            cmdline: modules::cmdline(),
            exe: modules::exe(),
            malloc_owner: modules::malloc_owner(),
            parent_pid: self.parent_pid,
            tracing_start: crate::attach::tracing_start(),
        };
        let mut bytes = fmt::file_header().to_vec();
        bytes.extend_from_slice(&fmt::encode_start(&start));
        self.append(&bytes);
        !self.failed
    }

    /// One write(2) of a whole record (a short write is retried for the
    /// rest; a record left torn by a failure is the file's end).
    fn append(&mut self, bytes: &[u8]) {
        if self.failed || self.fd < 0 {
            return;
        }
        // SAFETY: fstat on our descriptor into a local struct.
        let same = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(self.fd, &mut st) == 0 && (st.st_dev, st.st_ino) == self.id
        };
        if !same {
            self.fd = -1;
            self.fail("the history file's descriptor was closed by the program");
            return;
        }
        let mut off = 0;
        while off < bytes.len() {
            // SAFETY: write from a live buffer to our descriptor.
            let n =
                unsafe { libc::write(self.fd, bytes[off..].as_ptr().cast(), bytes.len() - off) };
            if n < 0 {
                if crate::guard::errno() == libc::EINTR {
                    continue;
                }
                let e = std::io::Error::last_os_error();
                self.fail(&format!("cannot write the history: {e}"));
                return;
            }
            if n == 0 {
                self.fail("cannot write the history: no space");
                return;
            }
            off += n as usize;
        }
    }
}
