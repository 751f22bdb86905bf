//! Signal names and numbers, shared by libtrace.so (`MEMTRACE_SIGNAL`) and
//! `memtrace run` (`--signal`, and the signal that ended CMD).
//!
//! A signal is written as its name with or without `SIG`, in any case
//! (`USR2`, `SIGUSR2`, `usr2`), as `RTMIN+n`, or as its number; surrounding
//! whitespace is ignored. Nothing here panics or allocates (libtrace.so
//! parses `MEMTRACE_SIGNAL` while the traced program starts).

/// The standard signals by name (Linux numbering, from libc).
pub const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", libc::SIGHUP),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGILL", libc::SIGILL),
    ("SIGTRAP", libc::SIGTRAP),
    ("SIGABRT", libc::SIGABRT),
    ("SIGBUS", libc::SIGBUS),
    ("SIGFPE", libc::SIGFPE),
    ("SIGKILL", libc::SIGKILL),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGSEGV", libc::SIGSEGV),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGPIPE", libc::SIGPIPE),
    ("SIGALRM", libc::SIGALRM),
    ("SIGTERM", libc::SIGTERM),
    ("SIGSTKFLT", libc::SIGSTKFLT),
    ("SIGCHLD", libc::SIGCHLD),
    ("SIGCONT", libc::SIGCONT),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGTSTP", libc::SIGTSTP),
    ("SIGTTIN", libc::SIGTTIN),
    ("SIGTTOU", libc::SIGTTOU),
    ("SIGURG", libc::SIGURG),
    ("SIGXCPU", libc::SIGXCPU),
    ("SIGXFSZ", libc::SIGXFSZ),
    ("SIGVTALRM", libc::SIGVTALRM),
    ("SIGPROF", libc::SIGPROF),
    ("SIGWINCH", libc::SIGWINCH),
    ("SIGIO", libc::SIGIO),
    ("SIGPWR", libc::SIGPWR),
    ("SIGSYS", libc::SIGSYS),
];

/// The name of signal `sig` (`SIGUSR2`), if it is a standard one.
pub fn name(sig: i32) -> Option<&'static str> {
    SIGNALS.iter().find(|&&(_, n)| n == sig).map(|&(s, _)| s)
}

/// `s` without a leading `SIG` in any case.
fn strip_sig(s: &str) -> &str {
    match s.get(..3) {
        Some(p) if p.eq_ignore_ascii_case("SIG") => &s[3..],
        _ => s,
    }
}

/// The number of a signal written as a name (`USR2`, `SIGUSR2`, `usr2`,
/// `RTMIN+3`) or a number; None if it is neither. Numbers are not checked.
pub fn number(s: &str) -> Option<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return Some(n);
    }
    let bare = strip_sig(s);
    if let Some(&(_, n)) = SIGNALS
        .iter()
        .find(|(full, _)| full[3..].eq_ignore_ascii_case(bare))
    {
        return Some(n);
    }
    let rt = bare
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("RTMIN+"))
        .map(|_| &bare[6..])?;
    let n = rt.parse::<u8>().ok()?;
    libc::SIGRTMIN()
        .checked_add(n as i32)
        .filter(|&sig| sig <= libc::SIGRTMAX())
}

/// Signals a snapshot signal cannot be: KILL and STOP (they cannot be
/// caught) and the synchronous fault signals.
pub const NOT_SNAPSHOT_SIGNALS: &[i32] = &[
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
];

/// Why `v` cannot be a snapshot signal (for the one-line message), or None
/// when [`parse_snapshot_signal`] accepts it.
pub fn snapshot_signal_refusal(v: &[u8]) -> Option<&'static str> {
    if parse_snapshot_signal(v).is_some() {
        return None;
    }
    let sig = std::str::from_utf8(v).ok().and_then(number);
    Some(match sig {
        Some(s) if s == libc::SIGKILL || s == libc::SIGSTOP => {
            "SIGKILL and SIGSTOP cannot be caught, so they cannot ask for a snapshot"
        }
        Some(s) if NOT_SNAPSHOT_SIGNALS.contains(&s) => {
            "SIGSEGV, SIGBUS, SIGILL and SIGFPE report the program's own faults and must reach it"
        }
        Some(_) => "not a signal number (1 to SIGRTMAX)",
        None => {
            "expected USR1, USR2, another signal name (SIGUSR1, RTMIN+3) or number, or off (or 0)"
        }
    })
}

/// The `sival_ptr` a snapshot request from memtrace itself carries
/// (`memtrace snapshot PID` sends it with sigqueue): "memtrace" read as a
/// little-endian word. libtrace.so snapshots on it even when the program
/// handles the snapshot signal itself, and never passes it to that handler.
pub const SNAPSHOT_REQUEST_VALUE: u64 = u64::from_le_bytes(*b"memtrace");

/// Parses a snapshot signal (`MEMTRACE_SIGNAL`, `memtrace run --signal`): a
/// signal as [`number`] reads it, or `off`, `none` or `0` for no snapshot
/// signal (Some(0)). None for garbage, a number out of range, or a signal in
/// [`NOT_SNAPSHOT_SIGNALS`].
pub fn parse_snapshot_signal(v: &[u8]) -> Option<i32> {
    let s = std::str::from_utf8(v).ok()?.trim();
    if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") || s == "0" {
        return Some(0);
    }
    let sig = number(s)?;
    if sig <= 0 || sig > libc::SIGRTMAX() || NOT_SNAPSHOT_SIGNALS.contains(&sig) {
        return None;
    }
    Some(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_why() {
        assert_eq!(snapshot_signal_refusal(b"USR1"), None);
        assert_eq!(snapshot_signal_refusal(b"0"), None);
        assert!(snapshot_signal_refusal(b"9")
            .unwrap()
            .starts_with("SIGKILL and SIGSTOP cannot be caught"));
        assert!(snapshot_signal_refusal(b"STOP")
            .unwrap()
            .starts_with("SIGKILL and SIGSTOP"));
        assert!(snapshot_signal_refusal(b"SEGV")
            .unwrap()
            .starts_with("SIGSEGV, SIGBUS"));
        assert_eq!(
            snapshot_signal_refusal(b"99"),
            Some("not a signal number (1 to SIGRTMAX)")
        );
        assert!(snapshot_signal_refusal(b"blah")
            .unwrap()
            .starts_with("expected USR1"));
    }

    #[test]
    fn spellings() {
        for s in [
            "USR2", "SIGUSR2", "usr2", "sigusr2", "SigUsr2", " USR2\n", "12",
        ] {
            assert_eq!(
                parse_snapshot_signal(s.as_bytes()),
                Some(libc::SIGUSR2),
                "{s:?}"
            );
        }
        assert_eq!(parse_snapshot_signal(b"USR1"), Some(libc::SIGUSR1));
        assert_eq!(parse_snapshot_signal(b"sigterm"), Some(libc::SIGTERM));
        assert_eq!(parse_snapshot_signal(b"PIPE"), Some(libc::SIGPIPE));
        assert_eq!(
            parse_snapshot_signal(b"RTMIN+2"),
            Some(libc::SIGRTMIN() + 2)
        );
        assert_eq!(parse_snapshot_signal(b"sigrtmin+0"), Some(libc::SIGRTMIN()));
    }

    #[test]
    fn off_and_garbage() {
        for s in ["off", "OFF", "none", "0", " off "] {
            assert_eq!(parse_snapshot_signal(s.as_bytes()), Some(0), "{s:?}");
        }
        for s in [
            "", "SIG", "USR3", "KILL", "9", "SIGSTOP", "SEGV", "bus", "ILL", "FPE", "-1", "65",
            "RTMIN+", "RTMIN+-1",
        ] {
            assert_eq!(parse_snapshot_signal(s.as_bytes()), None, "{s:?}");
        }
        assert_eq!(parse_snapshot_signal(b"RTMIN+99"), None);
        assert_eq!(parse_snapshot_signal(b"RTMIN+2147483647"), None);
        assert_eq!(parse_snapshot_signal(b"\xff"), None);
        assert_eq!(parse_snapshot_signal("é".as_bytes()), None);
    }

    #[test]
    fn names() {
        assert_eq!(name(libc::SIGKILL), Some("SIGKILL"));
        assert_eq!(name(libc::SIGUSR2), Some("SIGUSR2"));
        assert_eq!(name(0), None);
        for &(n, sig) in SIGNALS {
            assert_eq!(number(n), Some(sig));
            assert_eq!(number(&n[3..].to_ascii_lowercase()), Some(sig));
        }
    }
}
