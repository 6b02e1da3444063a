//! The background re-read of signed-in LDAP users: a session whose identity
//! is older than `ldap.refresh_interval` gets its entry and groups read
//! again in a background task, and its identity replaced (or the session
//! revoked: user deleted or now deactivated). The request itself is served
//! with the current identity.

use std::sync::Arc;

use super::State;
use crate::clock::now_unix;
use crate::identity::Method;
use crate::ldap;
use crate::role::Role;
use crate::session::Session;
use crate::telemetry::Audit;

/// Called with every loaded session: LDAP sessions whose identity is older
/// than `ldap.refresh_interval` get re-read in the background. The cost on
/// the request path is one comparison (plus a set insert when due).
pub fn maybe_refresh(state: &Arc<State>, s: &Arc<Session>) {
    if s.identity.method != Method::Ldap {
        return;
    }
    let Some(l) = state.ldap.as_ref() else {
        return;
    };
    let interval = state.config.ldap.refresh_interval;
    if !l.begin_refresh(&s.id, s.identity_at, interval, now_unix()) {
        return;
    }
    let state = Arc::clone(state);
    let s = Arc::clone(s);
    tokio::spawn(async move {
        refresh(&state, &s).await;
        if let Some(l) = state.ldap.as_ref() {
            l.refreshed(&s.id);
        }
    });
}

async fn refresh(state: &State, s: &Session) {
    let Some(l) = state.ldap.as_ref() else {
        return;
    };
    let subject = s.identity.subject.as_str();
    let revoke = |reason: &'static str| async move {
        let _ = state.sessions.revoke(&s.id).await;
        Audit::new("session_revoked")
            .subject(subject)
            .method("ldap")
            .reason(reason)
            .emit();
    };
    let identity = match l.directory.refresh(subject).await {
        Ok(None) => return revoke("deleted_from_directory").await,
        Ok(Some(p)) => {
            let id = p.into_identity(&state.config.mapping, state.config.identity.all_groups);
            if id.role == Some(Role::Deactivated) {
                state.sync_state(&id, &s.id).await;
                return revoke("deactivated").await;
            }
            if id.role == Some(Role::NotActivated) && id.role != s.identity.role {
                state.sync_state(&id, &s.id).await;
            }
            id
        }
        Err(e) => {
            // Directory down: keep the identity, try again after the interval.
            tracing::warn!(subject = %subject, error = %ldap::chain(&e), "ldap refresh failed; identity kept");
            (*s.identity).clone()
        }
    };
    let next = s.with_identity(Arc::new(identity), &state.header_names, now_unix());
    // Revoked meanwhile (logout): stays revoked.
    let _ = state.sessions.insert(Arc::new(next)).await;
}
