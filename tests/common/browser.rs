//! Headless Chromium for the browser tests: one run loads a page and prints its DOM.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

// ---- Chromium ---------------------------------------------------------------------------------

/// Virtual milliseconds each page gets (the dashboard: its first load and two refreshes,
/// every 5 s).
const BUDGET_MS: u32 = 12_000;
/// Wall-clock bound on one chromium run; past it chromium is killed and the test fails.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(60);

const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--hide-scrollbars",
];

/// One chromium at a time: the tests run in parallel, and browsers racing each other for two
/// cores would only make every run slower.
static CHROMIUM: Mutex<()> = Mutex::new(());

/// Runs chromium on `url` with `args` and a fresh profile; returns what it wrote to stdout.
/// Fails the test if chromium is missing, fails, or outlives `CHROMIUM_LIMIT`.
pub fn chromium(args: &[String], url: &str) -> Vec<u8> {
    let _one_at_a_time = CHROMIUM.lock().unwrap_or_else(|e| e.into_inner());
    let profile = TempDir::new("profile");
    let mut child = Command::new("chromium")
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .arg(format!("--virtual-time-budget={BUDGET_MS}"))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that the renderer and helper processes chromium forks
        // can be killed with it.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run chromium ({e}): the browser tests drive pages in a real headless \
                 browser; install it with `apt-get install chromium` or run scripts/test, which does"
            )
        });
    let group = child.id() as i32;
    let stdout = read_in_background(child.stdout.take().unwrap());
    let stderr = read_in_background(child.stderr.take().unwrap());
    let deadline = Instant::now() + CHROMIUM_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    // SAFETY: kill(2) on the process group of a child we started; helpers that outlive the
    // browser process go with it.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = child.wait();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    let stderr: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.contains("dbus") && !line.contains("unexpected operator"))
        .collect();
    match status {
        None => panic!(
            "chromium did not finish {url} within {CHROMIUM_LIMIT:?} and was killed (its virtual \
             clock waits for every request, so one request never answered stops it); its \
             stderr:\n{}",
            stderr.join("\n")
        ),
        Some(status) if !status.success() => {
            panic!(
                "chromium failed ({status}) on {url}; its stderr:\n{}",
                stderr.join("\n")
            )
        }
        Some(_) => stdout.join().unwrap(),
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// A directory of its own under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("hitme-browser-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
