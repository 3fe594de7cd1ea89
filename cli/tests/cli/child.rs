//! Running the built `lpips` as a child process with a guard against hangs: its exit
//! status (or signal), its output, and its peak resident memory (from wait4, this child's
//! own, not other tests' children).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The built binary.
pub fn lpips_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lpips"))
}

/// `lpips` with the tests' environment (offline, no hub cache).
pub fn lpips() -> Command {
    let mut cmd = Command::new(lpips_bin());
    cmd.env("TORCH_HOME", "/nonexistent/torch-home-for-tests")
        .env("LPIPS_OFFLINE", "1");
    cmd
}

/// What a finished child did.
#[derive(Debug)]
pub struct Outcome {
    /// The exit status, if it exited.
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// Peak resident set size in bytes of the program itself: the largest `VmHWM` read
    /// from /proc while it ran (every few milliseconds, once it is no longer this test
    /// binary). wait4's `ru_maxrss` cannot serve: a child spawned with a shared address
    /// space reports the test process's own peak, which parallel tests drive up.
    pub max_rss: u64,
}

impl Outcome {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// Runs `cmd` (stdout and stderr captured unless set already) and waits at most
/// `limit`: a child still running then is killed and the test fails, naming `what`.
pub fn run(cmd: &mut Command, limit: Duration, what: &str) -> Outcome {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn lpips");
    wait(child, limit, what)
}

/// Waits for a spawned child as [`run`] does.
pub fn wait(mut child: Child, limit: Duration, what: &str) -> Outcome {
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let mut max_rss = 0;
    let (status, _usage) = loop {
        max_rss = max_rss.max(program_peak_rss(pid).unwrap_or(0));
        let mut status = 0;
        // SAFETY: wait4 on our own child; rusage is plain data.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
        if r == pid {
            break (status, usage);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?} (hung?); killed");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stdout = out.join().unwrap();
    let stderr = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    Outcome {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        stdout,
        stderr,
        max_rss,
    }
}

/// `VmHWM` of `pid` once it runs another program than this test binary.
fn program_peak_rss(pid: libc::pid_t) -> Option<u64> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    if exe == std::fs::read_link("/proc/self/exe").ok()? {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// A generous guard for runs that must end (a hang is the failure, not slowness).
pub const GUARD: Duration = Duration::from_secs(300);
