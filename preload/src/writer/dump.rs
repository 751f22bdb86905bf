//! A snapshot file: the live table grouped by (stack, size), the whole run
//! so far (peak, totals, timeline, memory now), the stacks all of those
//! name, the module map, the header; encoded (format crate) and written
//! under a temporary name, then linked to its final name.

use super::domains::Domains;
use super::live::LiveTable;
use super::requests::beat;
use crate::sys::{self, BuildMix};
use crate::whole_run::{self as run_tracking, WholeRun};
use crate::{config, intern, modules};
use memtrace_format::{Header, Snapshot, SnapshotKind, Stack, TraceGroup};
use std::collections::HashMap;
use std::ffi::CString;

/// What the header says about the moment, besides the table's totals.
pub struct Moment {
    pub kind: SnapshotKind,
    /// The signal snapshot's number in its file name; 0 for the exit one.
    pub index: u64,
    /// The point's number (seq.rs).
    pub seq: u64,
    /// CLOCK_REALTIME of the point; 0: now.
    pub time_ns: u64,
}

/// Builds and writes the snapshot of `live` at `moment`. A failure is
/// reported on stderr once (`error_reported`), never fatal.
pub fn write_snapshot(
    live: &LiveTable,
    domains: &Domains,
    run: &WholeRun,
    moment: &Moment,
    error_reported: &mut bool,
) {
    let pid = std::process::id();
    let snap = build(live, domains, run, moment, pid);
    beat();
    let leaks = match moment.kind {
        SnapshotKind::Exit => crate::leaks::check(
            live.live_with_addr().map(|(a, b)| (a, b.size, b.stack)),
            domains
                .live()
                .map(|(d, a, b)| (a, b.size, b.stack, d))
                .collect(),
            &live
                .storage_addr()
                .into_iter()
                .chain(domains.storage_addrs())
                .collect::<Vec<_>>(),
            beat,
        ),
        SnapshotKind::Signal => None,
    };
    beat();
    let start = crate::attach::tracing_start();
    let bytes = memtrace_format::encode_full(&snap, leaks.as_ref(), start.as_ref());
    beat();
    let path = file_name(moment, pid);
    match write_file(&path, &bytes, pid) {
        Ok(()) => crate::verbose(&format!(
            "wrote {} ({} live blocks, {} bytes; whole run: {} groups held for the peak, {} threads' latest blocks)",
            String::from_utf8_lossy(&path),
            live.live_count(),
            live.traced_bytes(),
            run.peak.groups_held(),
            run.totals.threads()
        )),
        Err(why) => {
            if !*error_reported {
                *error_reported = true;
                sys::log(&format!("cannot write {}: {why}", String::from_utf8_lossy(&path)));
            }
        }
    }
}

fn build(
    live: &LiveTable,
    domains: &Domains,
    run: &WholeRun,
    moment: &Moment,
    pid: u32,
) -> Snapshot {
    let (traces, trace_domains) = trace_groups(live, domains);
    let time_ns = if moment.time_ns != 0 {
        moment.time_ns
    } else {
        sys::now_ns(libc::CLOCK_REALTIME)
    };
    let memory = run_tracking::memory_use();
    let whole = memtrace_format::WholeRun {
        peak: run.peak.peak(),
        totals: run.totals.totals(),
        timeline: Some(
            run.timeline
                .timeline_at(time_ns, live.traced_bytes(), memory.rss_bytes),
        ),
        memory: Some(memory),
    };
    let stacks = stacks_of(&traces, &whole);
    Snapshot {
        header: Header {
            kind: moment.kind,
            index: moment.index,
            pid,
            time_ns,
            seq: moment.seq,
            frame_limit: config::frames() as u32,
            traced_bytes: live.traced_bytes(),
            peak_bytes: live.peak_bytes(),
            alloc_count: live.allocs(),
            free_count: live.frees(),
            sample_rate: config::sample_rate(),
            cmdline: modules::cmdline(),
            exe: modules::exe(),
            malloc_owner: modules::malloc_owner(),
        },
        modules: modules::for_snapshot(&stacks),
        stacks,
        traces,
        domains: trace_domains,
        run: whole,
    }
}

/// The live blocks and tracked objects counted by (domain, stack, size),
/// sorted, and each group's domain (empty when all are the heap's, 0).
fn trace_groups(live: &LiveTable, domains: &Domains) -> (Vec<TraceGroup>, Vec<u32>) {
    let mut groups: HashMap<(u32, u32, u64), u64, BuildMix> = HashMap::default();
    for b in live.live_blocks() {
        *groups.entry((0, b.stack, b.size)).or_insert(0) += 1;
    }
    for (d, _, b) in domains.live() {
        *groups.entry((d, b.stack, b.size)).or_insert(0) += 1;
    }
    let mut keys: Vec<((u32, u32, u64), u64)> = groups.into_iter().collect();
    keys.sort_unstable();
    let tagged = keys.iter().any(|&((d, _, _), _)| d != 0);
    let trace_domains = if tagged {
        keys.iter().map(|&((d, _, _), _)| d).collect()
    } else {
        Vec::new()
    };
    let traces = keys
        .into_iter()
        .map(|((_, stack, size), count)| TraceGroup {
            stack: stack as u64,
            size,
            count,
        })
        .collect();
    (traces, trace_domains)
}

/// The frames of every stack the groups, the peak's groups and the totals
/// name, once each, by id.
fn stacks_of(traces: &[TraceGroup], run: &memtrace_format::WholeRun) -> Vec<Stack> {
    let peak = run.peak.iter().flat_map(|p| p.groups.iter());
    let mut ids: Vec<u32> = traces
        .iter()
        .chain(peak)
        .map(|t| t.stack as u32)
        .chain(run.totals.iter().map(|t| t.stack as u32))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.iter()
        .map(|&id| match intern::get(id) {
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
        })
        .collect()
}

/// `<prefix>.<index>.snap` or `<prefix>.exit.snap`, `%p` expanded.
fn file_name(moment: &Moment, pid: u32) -> Vec<u8> {
    memtrace_format::naming::snapshot_path(&config::out_prefix(), pid, moment.kind, moment.index)
}

fn os_err() -> String {
    std::io::Error::last_os_error().to_string()
}

/// Writes under a temporary name created with O_EXCL|O_NOFOLLOW (never
/// clobbers, never follows a symlink, mode 0640), then renames to the final
/// name only if that does not exist.
fn write_file(path: &[u8], bytes: &[u8], pid: u32) -> Result<(), String> {
    let mut tmp = path.to_vec();
    tmp.extend_from_slice(format!(".tmp.{pid}").as_bytes());
    let cpath =
        CString::new(path.to_vec()).map_err(|_| "file name contains a NUL byte".to_string())?;
    let ctmp = CString::new(tmp).map_err(|_| "file name contains a NUL byte".to_string())?;
    // SAFETY: plain syscalls on valid NUL-terminated paths and buffers.
    unsafe {
        let fd = libc::open(
            ctmp.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o640 as libc::c_uint,
        );
        if fd < 0 {
            return Err(os_err());
        }
        let mut off = 0;
        while off < bytes.len() {
            let n = libc::write(fd, bytes[off..].as_ptr().cast(), bytes.len() - off);
            if n < 0 {
                if crate::guard::errno() == libc::EINTR {
                    continue;
                }
                let e = os_err();
                libc::close(fd);
                libc::unlink(ctmp.as_ptr());
                return Err(e);
            }
            off += n as usize;
        }
        if libc::close(fd) != 0 {
            let e = os_err();
            libc::unlink(ctmp.as_ptr());
            return Err(e);
        }
        let r = libc::renameat2(
            libc::AT_FDCWD,
            ctmp.as_ptr(),
            libc::AT_FDCWD,
            cpath.as_ptr(),
            libc::RENAME_NOREPLACE,
        );
        if r == 0 {
            return Ok(());
        }
        let e = crate::guard::errno();
        if e == libc::EINVAL || e == libc::ENOSYS {
            // File system without RENAME_NOREPLACE: link() fails if the name exists.
            let r = libc::link(ctmp.as_ptr(), cpath.as_ptr());
            let err = os_err();
            libc::unlink(ctmp.as_ptr());
            return if r == 0 { Ok(()) } else { Err(err) };
        }
        let err = os_err();
        libc::unlink(ctmp.as_ptr());
        Err(err)
    }
}
