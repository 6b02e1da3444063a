//! Puts the SSO page's saved settings (`crate::settings`) in force, and
//! shares them between replicas.
//!
//! At start (and on every reload) [`apply`] reads `state_dir/sso.json` and
//! lays it over the configuration as loaded; a save rebuilds the whole
//! state through [`crate::app::Live::reload`], so new sign-ins use the new
//! metadata and mappings while sessions (kept by the reload) go on.
//!
//! **Several replicas** (`session.store = "redis"`): a save also stores the
//! document in Redis (`{prefix}sso:settings`) after taking a new version
//! number from `{prefix}sso:version` (INCR). Every replica reads that
//! version every [`SYNC_EVERY`] and when the SSO page is opened; a
//! different version makes it copy the document into its own `state_dir`
//! and reload. Redis is the shared copy, each replica's `state_dir` its
//! local one (restarts work while Redis is down): replicas need no shared
//! volume.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use super::{Live, State};
use crate::config::{raw, Config, Origins};
use crate::settings::store::{self, Error};
use crate::settings::{overlay, Locks, Saved};

/// How often a replica checks Redis for a newer save.
pub const SYNC_EVERY: Duration = Duration::from_secs(5);

/// The page's view of the settings in force, kept in [`State`].
pub struct Handle {
    /// The configuration as loaded from the file and the environment,
    /// before the page's settings (what a save is laid over).
    pub base_raw: raw::Raw,
    pub base_origins: Origins,
    pub state_dir: Option<PathBuf>,
    /// The saved document in force (`None`: nothing saved, or it could not
    /// be applied: see `problem`).
    pub applied: Option<Saved>,
    /// The version read from `state_dir` (applied or not).
    pub version: u64,
    /// Why the saved settings are not in force.
    pub problem: Option<String>,
    /// Settings the file or the environment decide: key → source.
    pub locks: Locks,
    live: OnceLock<Weak<Live>>,
}

impl Handle {
    /// `config` as loaded, with nothing saved applied.
    pub fn unsaved(config: &Config) -> Handle {
        Handle {
            base_raw: config.raw.clone(),
            base_origins: config.origins.clone(),
            state_dir: config.server.state_dir.clone(),
            applied: None,
            version: 0,
            problem: None,
            locks: Locks::of(&config.origins),
            live: OnceLock::new(),
        }
    }

    /// The generation switch this state belongs to (set when it is put in
    /// force).
    pub fn attach(&self, live: &Arc<Live>) {
        let _ = self.live.set(Arc::downgrade(live));
    }

    pub fn live(&self) -> Option<Arc<Live>> {
        self.live.get().and_then(Weak::upgrade)
    }

    /// The configuration as loaded, without the page's settings.
    pub fn base_config(&self) -> Result<Config, crate::config::Errors> {
        crate::config::validate::validate(self.base_raw.clone(), self.base_origins.clone())
    }

    pub fn current(&self) -> Saved {
        self.applied.clone().unwrap_or_default()
    }
}

/// The configuration with the saved settings laid over it (`None` when
/// nothing is saved or it does not load: the loaded one stays, and the
/// handle says why).
pub fn apply(config: &Config) -> (Option<Config>, Handle) {
    let mut handle = Handle::unsaved(config);
    let Some(dir) = handle.state_dir.clone() else {
        return (None, handle);
    };
    let saved = match store::load(&dir) {
        Ok(Some(s)) => s,
        Ok(None) => return (None, handle),
        Err(e) => {
            tracing::error!(error = %e, "saved SSO settings not applied");
            handle.problem = Some(e.to_string());
            return (None, handle);
        }
    };
    handle.version = saved.version;
    if let Err(e) = store::write_metadata(&dir, &saved) {
        tracing::error!(error = %e, "saved SSO settings not applied");
        handle.problem = Some(e.to_string());
        return (None, handle);
    }
    let mut raw = config.raw.clone();
    let mut origins = config.origins.clone();
    overlay(&mut raw, &mut origins, &saved, &store::metadata_path(&dir));
    match crate::config::validate::validate(raw, origins) {
        Ok(c) => {
            handle.applied = Some(saved);
            (Some(c), handle)
        }
        Err(e) => {
            let msg = e.to_string().replace('\n', "; ");
            tracing::error!(error = %msg, version = saved.version, "saved SSO settings not applied; the configuration file's stay in force");
            handle.problem = Some(msg);
            (None, handle)
        }
    }
}

/// Saves `saved` (a version is assigned here), shares it with the other
/// replicas and puts it in force. On failure to apply, the previous
/// document is restored and nothing changes.
pub async fn save(state: &State, mut saved: Saved) -> Result<Saved, Error> {
    let dir = state.sso.state_dir.clone().ok_or(Error::NoStateDir)?;
    let live = state
        .sso
        .live()
        .ok_or_else(|| Error::Apply("not serving".into()))?;
    saved.version = match &state.redis {
        Some(r) => r
            .query::<u64>(redis::cmd("INCR").arg(r.key("sso:", "version")))
            .await
            .map_err(Error::Shared)?,
        None => state.sso.version.max(state.sso.current().version) + 1,
    };
    let base = state
        .sso
        .base_config()
        .map_err(|e| Error::Apply(e.to_string().replace('\n', "; ")))?;
    {
        let (dir, saved) = (dir.clone(), saved.clone());
        tokio::task::spawn_blocking(move || store::save(&dir, &saved))
            .await
            .map_err(|e| Error::Apply(e.to_string()))??;
    }
    let applied = live.reload(base).await;
    let in_force = live.current().sso.applied.as_ref().map(|s| s.version) == Some(saved.version);
    if applied.is_err() || !in_force {
        let why = match applied {
            Err(e) => e.to_string(),
            Ok(()) => live
                .current()
                .sso
                .problem
                .clone()
                .unwrap_or_else(|| "not applied".into()),
        };
        let d = dir.clone();
        let _ = tokio::task::spawn_blocking(move || store::restore_previous(&d)).await;
        if let Ok(base) = state.sso.base_config() {
            let _ = live.reload(base).await;
        }
        return Err(Error::Apply(why));
    }
    if let Some(r) = &state.redis {
        let json = store::to_json(&saved);
        r.query::<()>(redis::cmd("SET").arg(r.key("sso:", "settings")).arg(json))
            .await
            .map_err(Error::Shared)?;
    }
    Ok(saved)
}

/// With Redis: when another replica saved a newer version, copies it here
/// and reloads. Returns the state in force afterwards. Errors are logged
/// (a replica that cannot reach Redis keeps its settings).
pub async fn sync(state: &Arc<State>) -> Arc<State> {
    match try_sync(state).await {
        Ok(Some(s)) => s,
        Ok(None) => Arc::clone(state),
        Err(e) => {
            tracing::warn!(error = %e, "SSO settings: cannot check for a newer save");
            Arc::clone(state)
        }
    }
}

async fn try_sync(state: &Arc<State>) -> Result<Option<Arc<State>>, Error> {
    let (Some(r), Some(dir), Some(live)) = (&state.redis, &state.sso.state_dir, state.sso.live())
    else {
        return Ok(None);
    };
    let version: Option<u64> = r
        .query(redis::cmd("GET").arg(r.key("sso:", "version")))
        .await
        .map_err(Error::Shared)?;
    if version.is_none() || version == Some(state.sso.version) {
        return Ok(None);
    }
    let json: Option<String> = r
        .query(redis::cmd("GET").arg(r.key("sso:", "settings")))
        .await
        .map_err(Error::Shared)?;
    let Some(json) = json else {
        return Ok(None);
    };
    let saved = store::parse(&json).map_err(|message| Error::Parse {
        path: r.key("sso:", "settings"),
        message,
    })?;
    if saved.version == state.sso.version {
        return Ok(None);
    }
    let (d, s) = (dir.clone(), saved.clone());
    tokio::task::spawn_blocking(move || store::save(&d, &s))
        .await
        .map_err(|e| Error::Apply(e.to_string()))??;
    let base = state
        .sso
        .base_config()
        .map_err(|e| Error::Apply(e.to_string().replace('\n', "; ")))?;
    live.reload(base)
        .await
        .map_err(|e| Error::Apply(e.to_string()))?;
    tracing::info!(version = saved.version, saved_by = %saved.saved_by, "SSO settings saved on another replica are now in force");
    Ok(Some(live.current()))
}

/// Checks for newer saves every [`SYNC_EVERY`] until `stop` changes.
pub async fn poll(live: Arc<Live>, mut stop: tokio::sync::watch::Receiver<bool>) {
    if live.current().redis.is_none() {
        return;
    }
    let mut tick = tokio::time::interval(SYNC_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => { sync(&live.current()).await; }
            _ = stop.changed() => return,
        }
    }
}
