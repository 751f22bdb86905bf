//! A progress bar on stderr for work that can take more than a second or
//! two (symbolizing a big snapshot): drawn by `indicatif`, only when stderr
//! is a terminal, and only once the work has run for a second, so quick
//! commands and pipes never see it.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How long work runs before its bar appears.
const SHOW_AFTER: Duration = Duration::from_secs(1);

pub struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    /// None until shown (or never, when stderr is not a terminal).
    bar: Option<ProgressBar>,
    wanted: bool,
}

impl Progress {
    /// `total` steps of `what` ("symbolizing stacks").
    pub fn new(what: &'static str, total: u64) -> Progress {
        Progress {
            what,
            total,
            done: 0,
            started: Instant::now(),
            bar: None,
            wanted: std::io::stderr().is_terminal(),
        }
    }

    /// One step done. Cheap: looks at the clock every 256 steps.
    #[inline]
    pub fn step(&mut self) {
        self.done += 1;
        if self.wanted && self.done.is_multiple_of(256) {
            self.update();
        }
    }

    fn update(&mut self) {
        if self.bar.is_none() && self.started.elapsed() >= SHOW_AFTER {
            let bar = ProgressBar::with_draw_target(Some(self.total), ProgressDrawTarget::stderr());
            let style =
                ProgressStyle::with_template("memtrace: {msg} [{bar:30}] {pos}/{len} ({eta} left)")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar.set_message(self.what);
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(self.done);
        }
    }
}

impl Drop for Progress {
    /// The bar goes away when the work is done: the output stays clean.
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
