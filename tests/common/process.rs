//! Child processes that never outlive their test (`Proc`: killed and reaped
//! on drop), commands run to completion, and bounded waits: every loop
//! here ends by a deadline, and a setup that does not come up fails the
//! test instead of hanging it.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use super::ports::free_addr;

/// A child process, killed (SIGKILL) and reaped on drop, or with
/// [`Proc::terminate_on_drop`] sent SIGTERM first.
pub struct Proc {
    child: Option<Child>,
    log: Option<PathBuf>,
    term_on_drop: bool,
}

impl Proc {
    /// Spawns `cmd`; panics naming `what` (and where to get it) when it
    /// cannot.
    pub fn spawn(cmd: &mut Command, what: &str) -> Proc {
        Proc::new(cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}")))
    }

    pub fn new(child: Child) -> Proc {
        Proc {
            child: Some(child),
            log: None,
            term_on_drop: false,
        }
    }

    /// The file the process logs to, read by [`Proc::log`].
    pub fn with_log(mut self, path: impl Into<PathBuf>) -> Proc {
        self.log = Some(path.into());
        self
    }

    /// On drop: SIGTERM, up to 10 s to exit, then SIGKILL (for a process
    /// that must clean up after itself, such as a watchdog shell).
    pub fn terminate_on_drop(mut self) -> Proc {
        self.term_on_drop = true;
        self
    }

    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the process was stopped")
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("the process was stopped").id()
    }

    /// The log file's text ("" without one).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Its exit status once it has exited; never blocks.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child_mut().try_wait().expect("try_wait")
    }

    /// `kill -NAME PID`; whether the signal was delivered.
    pub fn signal(&self, name: &str) -> bool {
        Command::new("kill")
            .args([format!("-{name}"), self.id().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Waits up to `limit` for the process to end.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL; reaped either way.
    pub fn terminate(&mut self, grace: Duration) {
        if self.child.is_none() {
            return;
        }
        if self.exited().is_none() {
            self.signal("TERM");
            if self.wait_timeout(grace).is_none() {
                self.kill();
            }
        }
        self.child = None;
    }

    /// SIGKILL, and reaped.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the process; what it wrote to its piped stdout and stderr.
    pub fn output(mut self) -> Output {
        let mut c = self.child.take().expect("the process was stopped");
        let _ = c.kill();
        c.wait_with_output().expect("output")
    }

    /// Waits (bounded) until `addr` accepts connections; `Err` with the log
    /// when the process exits first or `limit` passes.
    pub async fn wait_listening(
        &mut self,
        addr: SocketAddr,
        limit: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Err(format!("exited with {status}: {}", self.log()));
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "not listening after {} s: {}",
            limit.as_secs(),
            self.log()
        ))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.term_on_drop {
            self.terminate(Duration::from_secs(10));
        } else {
            self.kill();
        }
    }
}

/// A server process listening on `addr`, with a private temp dir for its
/// configuration and log; killed on drop, then the dir removed.
pub struct Server {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Its log ([`Proc::with_log`]).
    pub fn log(&self) -> String {
        self.proc.log()
    }
}

/// A server on a free loopback port: `spawn(addr)` starts it, and it must
/// listen within `limit`. The port was free a moment before; when the
/// server's log says `clash` (someone took it meanwhile) another port is
/// tried, five at the most. Panics naming `what` otherwise.
pub async fn start_on_free_port(
    what: &str,
    clash: &str,
    limit: Duration,
    mut spawn: impl FnMut(SocketAddr) -> Server,
) -> Server {
    let mut last = String::new();
    for _ in 0..5 {
        let mut server = spawn(free_addr());
        match server.proc.wait_listening(server.addr, limit).await {
            Ok(()) => return server,
            Err(e) if e.contains(clash) => last = e,
            Err(e) => panic!("{what} did not start: {e}"),
        }
    }
    panic!("{what} did not start: {last}");
}

/// Runs `cmd` to completion; panics with its output unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Polls `check` every 50 ms until it holds; panics after `limit`.
pub fn until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not within {} s", limit.as_secs());
}

/// [`until`] for async tests: polls every 20 ms without blocking the
/// runtime.
pub async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not within {} s", limit.as_secs());
}

/// Waits until `addr` accepts TCP connections (`up`) or refuses them;
/// whether it did within `limit`.
pub fn wait_port(addr: SocketAddr, up: bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let accepting = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
        if accepting == up {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
