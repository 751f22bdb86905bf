//! Screenshots with headless Chromium (Debian's `chromium`), to check that
//! a chart really draws something; as analyzer/tests/report.rs does for
//! the HTML report (that crate's tests cannot use this one's harness).

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

/// A screenshot of `file` at `w`×`h` in a fresh profile (killed after
/// 90 s); returns the PNG's path, next to `file`.
pub fn screenshot(chrome: &Path, file: &Path, w: u32, h: u32) -> PathBuf {
    let png = file.with_extension("png");
    let _ = std::fs::remove_file(&png);
    let profile = file.with_extension("chromium-profile");
    let mut child = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={w},{h}"))
        .arg(format!("file://{}", file.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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
    assert!(png.exists(), "no screenshot of {}", file.display());
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

/// The DOM of `html` after its scripts ran (`--dump-dom`, 5 s of virtual
/// time) and the console messages and script errors Chromium logged, for
/// pages with a script (the report); killed after 90 s.
pub fn rendered_dom(chrome: &Path, html: &Path) -> (String, Vec<String>) {
    let profile = html.with_extension("dom-profile");
    let mut child = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            "--virtual-time-budget=5000",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", html.display()))
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
            panic!("chromium did not finish on {} in 90 s", html.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&profile);
    let stderr = re.join().unwrap();
    let console = stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect();
    (ro.join().unwrap(), console)
}
