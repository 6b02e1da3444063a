//! Private `redis-server` processes (Debian package redis-server) on free
//! loopback ports, each with its own data dir, killed on drop; `redis-cli`.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authgate::session::Redis;

use super::ports::free_port;
use super::process::Proc;

/// `redis-server` on 127.0.0.1:`port`, data in `dir`, no snapshots, an
/// append-only file (fsync on every write) only when `appendonly`; then
/// `extra` arguments. Not waited for.
pub fn redis_server(dir: &Path, port: u16, appendonly: bool, extra: &[&str]) -> Proc {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", if appendonly { "yes" } else { "no" }]);
    if appendonly {
        cmd.args(["--appendfsync", "always"]);
    }
    cmd.arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    redis_proc(&mut cmd)
}

/// Spawns a `redis-server` command line.
pub fn redis_proc(cmd: &mut Command) -> Proc {
    Proc::spawn(
        cmd,
        "redis-server (Debian package redis-server) must be installed",
    )
}

/// `redis-cli` with `args`; its stdout (`None` when it fails).
pub fn cli(args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["--no-auth-warning"])
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.starts_with("ERR") && !text.contains("Could not connect"))
        .then_some(text)
}

/// Until the server on `addr` answers PING (bounded: 10 s).
pub fn wait_for_ping(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 16];
            if s.write_all(b"PING\r\n").is_ok() {
                if let Ok(n) = s.read(&mut buf) {
                    if buf[..n].starts_with(b"+PONG") {
                        return;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("redis-server on {addr} did not answer PING within 10 s");
}

/// One plain `redis-server` on 127.0.0.1, answering PING when returned.
pub struct RedisServer {
    proc: Option<Proc>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    appendonly: bool,
}

impl RedisServer {
    /// Without persistence.
    pub fn start() -> RedisServer {
        RedisServer::start_with(false)
    }

    /// `appendonly`: keep data across a restart (AOF in the private dir).
    pub fn start_with(appendonly: bool) -> RedisServer {
        let mut s = RedisServer {
            proc: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            appendonly,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        self.proc = Some(redis_server(
            self.dir.path(),
            self.port,
            self.appendonly,
            &[],
        ));
        wait_for_ping(self.addr());
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops it (SIGTERM: an append-only file is flushed) and waits.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.terminate(Duration::from_secs(10));
        }
    }

    /// Stops it and starts it again on the same port with the same dir.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A connection handle as authgate makes it, with its own key prefix.
    pub fn handle(&self, prefix: &str) -> Arc<Redis> {
        let info = self.url().parse().expect("url");
        Arc::new(Redis::new(info, Duration::from_millis(500), prefix).expect("redis"))
    }
}
