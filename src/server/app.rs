//! The process as it runs: [`App::build`] (everything configuration can
//! break, no socket), [`App::bind`] (listeners, state directory) and
//! [`Bound::serve`] (the accept loops and the background tasks: session
//! purge, IdP metadata refresh, SSO settings sync, the metrics listener).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::app::{BuildError, Live, State};
use crate::clock::now_unix;
use crate::config::Config;

pub struct App {
    pub state: Arc<State>,
    tls: Option<TlsAcceptor>,
}

pub struct Bound {
    app: App,
    live: Arc<Live>,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
}

impl App {
    pub fn build(config: Config) -> Result<App, BuildError> {
        let tls = match &config.server.tls {
            Some(files) => {
                Some(crate::tls::acceptor(&files.cert, &files.key).map_err(BuildError::Tls)?)
            }
            None => None,
        };
        Ok(App {
            state: Arc::new(State::new(config)?),
            tls,
        })
    }

    /// Opens the listeners, and prepares `server.state_dir` (created, its
    /// writability probed): the first writes authgate makes.
    pub fn bind(self) -> std::io::Result<Bound> {
        if let Some(dir) = &self.state.config.server.state_dir {
            crate::settings::store::prepare_dir(dir).map_err(|e| {
                std::io::Error::other(format!(
                    "server.state_dir ({}, from {}): {e}",
                    dir.display(),
                    self.state.config.source_of("server.state_dir")
                ))
            })?;
        }
        let listener = super::bind(self.state.config.server.listen)?;
        let addr = listener.local_addr()?;
        let metrics = match self.state.config.server.metrics_listen {
            Some(a) => Some(super::bind(a)?),
            None => None,
        };
        let metrics_addr = match &metrics {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        Ok(Bound {
            live: Live::shared(Arc::clone(&self.state)),
            app: self,
            listener,
            metrics,
            addr,
            metrics_addr,
        })
    }
}

impl Bound {
    /// The state in force now.
    pub fn state(&self) -> Arc<State> {
        self.live.current()
    }

    /// The handle a reload (SIGHUP) goes through.
    pub fn live(&self) -> Arc<Live> {
        Arc::clone(&self.live)
    }

    /// Runs until `shutdown` resolves, then drains; every connection on the
    /// calling runtime.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
        self.serve_on(Vec::new(), shutdown).await
    }

    /// As [`Bound::serve`], with connections spread round-robin over the
    /// calling runtime and `workers` (see [`super::runtime`]).
    pub async fn serve_on(
        self,
        workers: Vec<tokio::runtime::Handle>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let live = self.live.clone();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let housekeeping = {
            let live = live.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(30));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            let state = live.current();
                            state.sessions.purge(now_unix()).await;
                            state.metrics.sessions.set(state.sessions.len().await as i64);
                        }
                        _ = stop.changed() => return,
                    }
                }
            })
        };
        // The IdP metadata of the configuration in force, refreshed at its
        // own interval.
        let saml_refresh = {
            let live = live.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                loop {
                    // saml.metadata_refresh, or a shorter cacheDuration.
                    let every = live
                        .current()
                        .saml
                        .as_ref()
                        .map(|s| s.refresh_interval())
                        .unwrap_or(Duration::from_secs(60));
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {
                            let state = live.current();
                            let Some(sso) = state.saml.clone() else { continue };
                            // Each IdP logs its own failure (ERROR when its
                            // metadata was refused).
                            let _ = sso.refresh().await;
                            for p in sso.providers() {
                                state.metrics.set_saml_metadata_stale(&p.id, p.stale(std::time::SystemTime::now()));
                            }
                        }
                        _ = stop.changed() => return,
                    }
                }
            })
        };
        let settings_sync = tokio::spawn(crate::app::sso::poll(live.clone(), stop_rx.clone()));
        let metrics_task = self.metrics.map(|l| {
            let mut stop = stop_rx.clone();
            tokio::spawn(super::serve_metrics(live.clone(), l, async move {
                let _ = stop.changed().await;
            }))
        });
        super::serve(live, self.listener, self.app.tls, workers, shutdown).await;
        let _ = stop_tx.send(true);
        let _ = housekeeping.await;
        let _ = saml_refresh.await;
        let _ = settings_sync.await;
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
    }
}
