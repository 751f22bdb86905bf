//! Headless Chromium (Debian's `chromium`) on our SVG charts and HTML
//! pages: screenshots, to check that a chart really draws something, and
//! the DOM after the page's scripts ran with what they logged. Used by
//! these end-to-end tests and by analyzer/tests/report.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Chromium, installed by `scripts/install-deps --test` when missing (as
/// `make test` does first); `None` only when that fails.
pub fn chromium() -> Option<PathBuf> {
    let find = || {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    };
    if let Some(p) = find() {
        return Some(p);
    }
    let script = crate::workspace().join("scripts/install-deps");
    let st = Command::new(&script).arg("--test").status();
    eprintln!("chromium missing, ran {}: {st:?}", script.display());
    find()
}

/// What one headless Chromium run gave.
pub struct Browser {
    pub stdout: String,
    pub stderr: String,
}

/// Runs headless Chromium on `file` + `fragment` (`""` or `#…`) with
/// `extra` arguments, in a fresh profile next to the file, console messages
/// logged to stderr; killed after 90 s.
pub fn browse(chrome: &Path, file: &Path, fragment: &str, extra: &[String]) -> Browser {
    let profile = file.with_extension(format!(
        "{}.chromium-profile",
        file.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut child = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}{fragment}", file.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Both pipes drained while it runs: a full pipe would stall it.
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let ro = std::thread::spawn(move || std::io::read_to_string(out).unwrap_or_default());
    let re = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish on {} in 90 s", file.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&profile);
    Browser {
        stdout: ro.join().unwrap(),
        stderr: re.join().unwrap(),
    }
}

/// The console messages and script errors Chromium logged.
pub fn console_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect()
}

/// A screenshot of `file` at `w`×`h`; returns the PNG's path, next to
/// `file` (`chart.svg` → `chart.svg.png`).
pub fn screenshot(chrome: &Path, file: &Path, w: u32, h: u32) -> PathBuf {
    let png = file.with_extension(format!(
        "{}.png",
        file.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let _ = std::fs::remove_file(&png);
    let b = browse(
        chrome,
        file,
        "",
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={w},{h}"),
        ],
    );
    assert!(
        png.exists(),
        "no screenshot of {}: {}",
        file.display(),
        b.stderr
    );
    png
}

/// Bytes of the screenshot of `svg` and of a blank page of the same size:
/// a PNG of one colour compresses to almost nothing, a drawn chart does not.
pub fn drawn_and_blank(chrome: &Path, svg: &Path, w: u32, h: u32) -> (u64, u64) {
    let blank = svg.with_file_name("blank.svg");
    std::fs::write(
        &blank,
        format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}"><rect width="{w}" height="{h}" fill="#fff"/></svg>"##
        ),
    )
    .unwrap();
    let size = |p: PathBuf| std::fs::metadata(p).unwrap().len();
    (
        size(screenshot(chrome, svg, w, h)),
        size(screenshot(chrome, &blank, w, h)),
    )
}

/// The arguments that let a page's scripts run to the end (5 s of virtual
/// time) and print the DOM they left.
pub fn dom_args() -> Vec<String> {
    vec![
        "--dump-dom".to_string(),
        "--virtual-time-budget=5000".to_string(),
        "--window-size=1280,1000".to_string(),
    ]
}

/// The DOM of `html` after its scripts ran, and the console messages and
/// script errors Chromium logged, for pages with a script (the report).
pub fn rendered_dom(chrome: &Path, html: &Path) -> (String, Vec<String>) {
    let b = browse(chrome, html, "", &dom_args());
    let console = console_lines(&b.stderr);
    (b.stdout, console)
}
