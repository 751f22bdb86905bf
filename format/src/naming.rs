//! The snapshot file names, shared by libtrace.so (which writes them) and
//! `memtrace run` (which lists them). See README.md's `MEMTRACE_OUT`.
//!
//! - The prefix (`MEMTRACE_OUT`, `memtrace run --out`) defaults to
//!   `memtrace.%p`; it must be non-empty and must not end in `/` (a
//!   directory is not a prefix).
//! - Every `%p` in it is the pid of the process that writes the file; `%`
//!   followed by anything else is a plain `%`.
//! - A forked child of a prefix without `%p` writes under `<prefix>.<its
//!   pid>`, so that it never overwrites its parent's files.
//! - Files are `<prefix>.<n>.snap` (n = 1, 2, … on each snapshot signal)
//!   and `<prefix>.exit.snap`.
//!
//! Nothing here panics, and `expand_pid`, `push_pid` and `fork_child_prefix`
//! allocate nothing but the bytes they return or append (libtrace.so calls
//! them inside the traced program).

use crate::SnapshotKind;

/// The prefix when none is given.
pub const DEFAULT_PREFIX: &[u8] = b"memtrace.%p";

/// Is `prefix` usable as a file name prefix (non-empty, not a directory)?
pub fn is_valid_prefix(prefix: &[u8]) -> bool {
    !prefix.is_empty() && !prefix.ends_with(b"/")
}

/// Does `s` contain `%p`?
pub fn has_pid(s: &[u8]) -> bool {
    s.windows(2).any(|w| w == b"%p")
}

/// Appends `pid` in decimal.
pub fn push_pid(out: &mut Vec<u8>, pid: u32) {
    push_decimal(out, pid as u64);
}

/// Appends `n` in decimal (no formatting machinery, no allocation but `out`'s).
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// `s` with every `%p` replaced by `pid`.
pub fn expand_pid(s: &[u8], pid: u32) -> Vec<u8> {
    let mut r = Vec::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && s.get(i + 1) == Some(&b'p') {
            push_pid(&mut r, pid);
            i += 2;
        } else {
            r.push(s[i]);
            i += 1;
        }
    }
    r
}

/// In a forked child: a prefix without `%p` gets `.<pid>` appended.
pub fn fork_child_prefix(prefix: &mut Vec<u8>, pid: u32) {
    if !has_pid(prefix) {
        prefix.push(b'.');
        push_pid(prefix, pid);
    }
}

/// What a traced process's beacon is named (preload/src/beacon.rs): its
/// snapshot signal (0: off) and its absolute, unexpanded prefix.
pub const BEACON: &[u8] = b"memtrace:";

pub fn beacon_name(signal: i32, prefix: &[u8]) -> Vec<u8> {
    let mut name = BEACON.to_vec();
    name.extend_from_slice(signal.to_string().as_bytes());
    name.push(b':');
    name.extend_from_slice(prefix);
    name
}

/// The (signal, prefix) a line of /proc/PID/maps names, if it is a beacon's
/// (`… /memfd:memtrace:12:/abs/prefix.%p (deleted)`).
pub fn parse_beacon(maps_line: &[u8]) -> Option<(i32, &[u8])> {
    const MEMFD: &[u8] = b"/memfd:";
    let at = maps_line.windows(MEMFD.len()).position(|w| w == MEMFD)?;
    let name = maps_line[at + MEMFD.len()..].strip_prefix(BEACON)?;
    let name = name.strip_suffix(b" (deleted)").unwrap_or(name);
    let colon = name.iter().position(|&c| c == b':')?;
    let signal = std::str::from_utf8(&name[..colon]).ok()?.parse().ok()?;
    Some((signal, &name[colon + 1..]))
}

/// The file a process `pid` writes under `prefix`: `<prefix>.<index>.snap`
/// or `<prefix>.exit.snap`, `%p` expanded.
pub fn snapshot_path(prefix: &[u8], pid: u32, kind: SnapshotKind, index: u64) -> Vec<u8> {
    let mut path = expand_pid(prefix, pid);
    match kind {
        SnapshotKind::Signal => {
            path.push(b'.');
            push_decimal(&mut path, index);
            path.extend_from_slice(b".snap");
        }
        SnapshotKind::Exit => path.extend_from_slice(b".exit.snap"),
    }
    path
}

/// Does `name` match `pattern` where each `%p` stands for a pid (digits)?
/// Returns the rest of `name` after the pattern.
fn match_prefix<'a>(pattern: &[u8], name: &'a [u8]) -> Option<&'a [u8]> {
    if pattern.is_empty() {
        return Some(name);
    }
    if pattern.starts_with(b"%p") {
        let digits = name.iter().take_while(|c| c.is_ascii_digit()).count();
        // try every split: a pid followed by literal digits is ambiguous
        for n in (1..=digits).rev() {
            if let Some(r) = match_prefix(&pattern[2..], &name[n..]) {
                return Some(r);
            }
        }
        return None;
    }
    if name.first() == pattern.first() {
        match_prefix(&pattern[1..], &name[1..])
    } else {
        None
    }
}

/// Is the file name `name` a snapshot written under the prefix's file name
/// part `base` (`%p` unexpanded: any pid)? `<base>.<n>.snap`,
/// `<base>.exit.snap`, and a forked child's `<base>.<pid>….<n>.snap` when
/// `base` has no `%p`.
pub fn is_snapshot_name(base: &[u8], name: &[u8]) -> bool {
    let Some(rest) = match_prefix(base, name) else {
        return false;
    };
    let Some(rest) = rest.strip_suffix(b".snap") else {
        return false;
    };
    let parts: Vec<&[u8]> = rest.split(|&c| c == b'.').collect();
    // rest is ".<pid>"* "." (n | "exit")
    if parts.len() < 2 || !parts[0].is_empty() {
        return false;
    }
    let last = parts[parts.len() - 1];
    let num = |p: &[u8]| !p.is_empty() && p.iter().all(|c| c.is_ascii_digit());
    (num(last) || last == b"exit") && parts[1..parts.len() - 1].iter().all(|p| num(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beacon_round_trip() {
        let name = beacon_name(12, b"/tmp/a dir/pg.%p");
        let line = [
            &b"7f44-7f45 r--s 00000000 00:01 1073      /memfd:"[..],
            &name,
            b" (deleted)",
        ]
        .concat();
        assert_eq!(parse_beacon(&line), Some((12, &b"/tmp/a dir/pg.%p"[..])));
        assert_eq!(
            parse_beacon(b"7f44-7f45 r--s 00000000 00:01 1073  /memfd:other (deleted)"),
            None
        );
        assert_eq!(
            parse_beacon(b"7f44-7f45 r-xp 00000000 08:01 12  /usr/lib/libc.so.6"),
            None
        );
    }

    #[test]
    fn pid_expansion() {
        assert_eq!(expand_pid(b"memtrace.%p", 1234), b"memtrace.1234");
        assert_eq!(expand_pid(b"/t/%p/a-%p", 7), b"/t/7/a-7");
        assert_eq!(expand_pid(b"a%%p%q%", 0), b"a%0%q%");
        assert_eq!(expand_pid(b"", 1), b"");
        assert_eq!(expand_pid(b"%p", u32::MAX), b"4294967295");
    }

    #[test]
    fn prefixes() {
        assert!(is_valid_prefix(DEFAULT_PREFIX));
        assert!(is_valid_prefix(b"out/app"));
        assert!(!is_valid_prefix(b""));
        assert!(!is_valid_prefix(b"out/"));
        assert!(has_pid(b"a.%p.b") && !has_pid(b"a.%.p"));
        let mut p = b"/t/app".to_vec();
        fork_child_prefix(&mut p, 42);
        assert_eq!(p, b"/t/app.42");
        let mut p = b"/t/app.%p".to_vec();
        fork_child_prefix(&mut p, 42);
        assert_eq!(p, b"/t/app.%p");
    }

    #[test]
    fn paths() {
        assert_eq!(
            snapshot_path(b"/t/m.%p", 9, SnapshotKind::Signal, 3),
            b"/t/m.9.3.snap"
        );
        assert_eq!(
            snapshot_path(b"/t/m.%p", 9, SnapshotKind::Exit, 0),
            b"/t/m.9.exit.snap"
        );
        assert_eq!(
            snapshot_path(b"a", 9, SnapshotKind::Signal, u64::MAX),
            b"a.18446744073709551615.snap"
        );
    }

    #[test]
    fn snapshot_names() {
        assert!(is_snapshot_name(b"memtrace.%p", b"memtrace.1234.exit.snap"));
        assert!(is_snapshot_name(b"memtrace.%p", b"memtrace.1234.12.snap"));
        assert!(!is_snapshot_name(b"memtrace.%p", b"memtrace.exit.snap"));
        assert!(!is_snapshot_name(
            b"memtrace.%p",
            b"memtrace.1234.exit.snap.tmp.1234"
        ));
        assert!(!is_snapshot_name(b"memtrace.%p", b"other.1234.exit.snap"));
        assert!(is_snapshot_name(b"app", b"app.exit.snap"));
        assert!(is_snapshot_name(b"app", b"app.3.snap"));
        assert!(is_snapshot_name(b"app", b"app.777.3.snap")); // a forked child's
        assert!(!is_snapshot_name(b"app", b"app.x.snap"));
        assert!(!is_snapshot_name(b"app", b"apple.exit.snap"));
        assert!(is_snapshot_name(b"run-%p-x", b"run-42-x.exit.snap"));
        // what the writer names, the lister finds
        let mut child = b"app".to_vec();
        fork_child_prefix(&mut child, 77);
        assert!(is_snapshot_name(
            b"app",
            &snapshot_path(&child, 77, SnapshotKind::Signal, 2)
        ));
        assert!(is_snapshot_name(
            b"m.%p",
            &snapshot_path(b"m.%p", 5, SnapshotKind::Exit, 0)
        ));
    }
}
