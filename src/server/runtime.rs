//! The runtimes `authgate serve` runs on: one current-thread tokio runtime
//! per worker, each on its own OS thread, instead of one work-stealing
//! multi-thread runtime.
//!
//! A request is short and CPU-light; what it costs is mostly the
//! scheduler's bookkeeping. A current-thread runtime skips the work-stealing
//! queues and the cross-thread wake-ups, which measured 1.7–3.3 µs less CPU
//! per proxied request on this kind of machine (bench/README.md) — the same
//! shape as nginx's one event loop per worker process. The accepting
//! runtime (worker 0, the thread that calls [`Runtimes::block_on`]) serves
//! its share of connections too and hands the others round-robin to the
//! extra workers ([`crate::server::serve`]); a connection then lives on one
//! worker for its whole life.

use std::future::Future;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};

/// Worker 0 (driven by the caller) and `workers - 1` extra threads.
pub struct Runtimes {
    main: Runtime,
    extra: Vec<Extra>,
}

struct Extra {
    handle: Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// How long [`Runtimes::shutdown`] waits for tasks still running on a
/// worker after the server has drained (stray blocking DNS lookups).
const STOP_TIMEOUT: Duration = Duration::from_millis(200);

impl Runtimes {
    /// `workers` current-thread runtimes (`server.workers`: 0 = one per
    /// core); the extra ones start now and idle until connections are
    /// handed to them.
    pub fn new(workers: usize) -> std::io::Result<Runtimes> {
        let workers = match workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let main = Builder::new_current_thread().enable_all().build()?;
        let mut extra = Vec::with_capacity(workers.saturating_sub(1));
        for n in 1..workers.max(1) {
            let rt = Builder::new_current_thread().enable_all().build()?;
            let handle = rt.handle().clone();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("authgate-worker-{n}"))
                .spawn(move || {
                    // Until the server has drained and says stop (or the
                    // sender is dropped).
                    let _ = rt.block_on(stopped);
                    rt.shutdown_timeout(STOP_TIMEOUT);
                })?;
            extra.push(Extra {
                handle,
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(Runtimes { main, extra })
    }

    /// Handles of the extra workers (empty with one worker): what
    /// [`crate::app::Bound::serve_on`] distributes connections to.
    pub fn extra_handles(&self) -> Vec<Handle> {
        self.extra.iter().map(|e| e.handle.clone()).collect()
    }

    /// How many workers run (worker 0 included).
    pub fn workers(&self) -> usize {
        self.extra.len() + 1
    }

    /// Runs `f` on worker 0, on the calling thread.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.main.block_on(f)
    }

    /// Stops every worker: tasks still running after a short grace are
    /// dropped (connections past `server.shutdown_grace` are cut here).
    pub fn shutdown(mut self) {
        for e in &mut self.extra {
            if let Some(stop) = e.stop.take() {
                let _ = stop.send(());
            }
        }
        for e in &mut self.extra {
            if let Some(t) = e.thread.take() {
                let _ = t.join();
            }
        }
        self.main.shutdown_timeout(STOP_TIMEOUT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_on_every_worker_thread_and_shutdown_returns() {
        let rts = Runtimes::new(3).expect("runtimes");
        let handles = rts.extra_handles();
        assert_eq!(handles.len(), 2);
        let names = rts.block_on(async move {
            let mut names = vec![std::thread::current().name().map(str::to_string)];
            for h in &handles {
                let name = h
                    .spawn(async { std::thread::current().name().map(str::to_string) })
                    .await
                    .expect("task");
                names.push(name);
            }
            names
        });
        assert_eq!(names[1].as_deref(), Some("authgate-worker-1"));
        assert_eq!(names[2].as_deref(), Some("authgate-worker-2"));
        assert_ne!(names[0], names[1]);
        rts.shutdown();
    }

    #[test]
    fn one_worker_means_no_extra_thread() {
        let rts = Runtimes::new(1).expect("runtimes");
        assert!(rts.extra_handles().is_empty());
        assert_eq!(rts.workers(), 1);
        assert_eq!(rts.block_on(async { 7 }), 7);
        rts.shutdown();
    }
}
