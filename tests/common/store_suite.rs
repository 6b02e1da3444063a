//! The store suite: every behaviour the proxy relies on, run against the
//! in-memory store and each Redis topology (`redis_store.rs`,
//! `redis_topologies.rs`).

use std::sync::Arc;
use std::time::Duration;

use authgate::role::Role;
use authgate::session::control::{self, Selector};
use authgate::session::{new_session_id, HeaderNames, LogoutTarget, Session, Store};

use super::gate::identity;

pub const T: u64 = 1_700_000_000;

pub fn session(subject: &str, index: Option<&str>, now: u64, ttl: u64) -> Arc<Session> {
    let mut id = identity(
        subject,
        "jane@example.com",
        Some("annotator"),
        &["ls-annotators"],
    );
    id.session_index = index.map(str::to_string);
    id.method = authgate::identity::Method::Saml;
    id.saml_idp = Some("default".into());
    Arc::new(Session::new(
        new_session_id(),
        Arc::new(id),
        &HeaderNames::default(),
        now,
        Duration::from_secs(ttl),
    ))
}

/// A LogoutRequest from the first IdP (`default`).
pub fn slo<'a>(subject: &'a str, index: Option<&'a str>) -> LogoutTarget<'a> {
    LogoutTarget {
        subject,
        session_index: index,
        idp: "default",
        first_idp: true,
    }
}

/// Every behaviour the proxy relies on; `make(idle_timeout)` gives an
/// empty store.
pub async fn store_suite(make: &dyn Fn(Duration) -> Arc<dyn Store>) {
    // Absolute expiry applies even to an active session.
    let store = make(Duration::from_secs(600));
    let s = session("jane", None, T, 1000);
    store.insert(Arc::clone(&s)).await.expect("insert");
    for t in (T..T + 1000).step_by(100) {
        assert!(store.get(&s.id, t).await.expect("get").is_some(), "t={t}");
    }
    assert!(store.get(&s.id, T + 1000).await.expect("get").is_none());
    assert_eq!(store.len().await, 0, "expired entry removed on get");

    // The idle timeout counts from the last use.
    let store = make(Duration::from_secs(300));
    let s = session("jane", None, T, 3600);
    store.insert(Arc::clone(&s)).await.expect("insert");
    assert!(store.get(&s.id, T + 299).await.expect("get").is_some());
    assert!(store.get(&s.id, T + 598).await.expect("get").is_some());
    assert!(store.get(&s.id, T + 898).await.expect("get").is_none());
    assert!(store.get(&s.id, T + 899).await.expect("get").is_none());

    // No idle timeout: only the absolute expiry.
    let store = make(Duration::ZERO);
    let s = session("jane", None, T, 3600);
    store.insert(Arc::clone(&s)).await.expect("insert");
    assert!(store.get(&s.id, T + 3599).await.expect("get").is_some());
    assert!(store.get(&s.id, T + 3600).await.expect("get").is_none());

    // Revoke ends one session, and a revoked session cannot come back.
    let store = make(Duration::ZERO);
    let a = session("jane", None, T, 3600);
    let b = session("jane", None, T, 3600);
    store.insert(Arc::clone(&a)).await.expect("insert");
    store.insert(Arc::clone(&b)).await.expect("insert");
    assert!(store.revoke(&a.id).await.expect("revoke"));
    assert!(!store.revoke(&a.id).await.expect("revoke again"));
    assert!(!store.revoke("unknown").await.expect("revoke unknown"));
    assert!(store.get(&a.id, T + 1).await.expect("get").is_none());
    assert!(store.get(&b.id, T + 1).await.expect("get").is_some());
    assert!(matches!(
        store.insert(Arc::clone(&a)).await,
        Err(authgate::session::StoreError::Revoked)
    ));
    assert_eq!(store.len().await, 1);

    // Single Logout: per subject, narrowed by SessionIndex.
    let store = make(Duration::ZERO);
    let j1 = session("jane", Some("idx-1"), T, 3600);
    let j2 = session("jane", Some("idx-2"), T, 3600);
    let j3 = session("jane", None, T, 3600);
    let bob = session("bob", Some("idx-1"), T, 3600);
    for s in [&j1, &j2, &j3, &bob] {
        store.insert(Arc::clone(s)).await.expect("insert");
    }
    let n = store.revoke_subject(slo("jane", Some("idx-1"))).await;
    assert_eq!(n.expect("slo"), 1);
    assert!(store.get(&j1.id, T).await.expect("get").is_none());
    assert!(store.get(&j2.id, T).await.expect("get").is_some());
    assert!(store.get(&bob.id, T).await.expect("get").is_some());
    assert_eq!(
        store.revoke_subject(slo("jane", None)).await.expect("all"),
        2
    );
    assert!(store.get(&j2.id, T).await.expect("get").is_none());
    assert!(store.get(&j3.id, T).await.expect("get").is_none());
    assert!(store.get(&bob.id, T).await.expect("get").is_some());
    assert_eq!(
        store
            .revoke_subject(slo("nobody", None))
            .await
            .expect("none"),
        0
    );

    // Replacing a session (identity refresh) keeps its last use.
    let store = make(Duration::from_secs(100));
    let s = session("jane", None, T, 3600);
    store.insert(Arc::clone(&s)).await.expect("insert");
    assert!(store.get(&s.id, T + 90).await.expect("get").is_some());
    let mut id = (*s.identity).clone();
    id.role = Some(Role::Reviewer);
    let next = Arc::new(s.with_identity(Arc::new(id), &HeaderNames::default(), T + 50));
    store.insert(next).await.expect("replace");
    let got = store.get(&s.id, T + 189).await.expect("get").expect("live");
    assert_eq!(got.identity.role, Some(Role::Reviewer));
    assert_eq!(got.expires, s.expires);
    assert_eq!(store.len().await, 1);

    // What comes back is what went in, and repeated reads share one
    // session (so its identity JWT cache is reused).
    let store = make(Duration::ZERO);
    let s = session("uid=jane,ou=people,dc=example,dc=com", Some("i"), T, 3600);
    store.insert(Arc::clone(&s)).await.expect("insert");
    let a = store.get(&s.id, T + 1).await.expect("get").expect("live");
    let b = store.get(&s.id, T + 2).await.expect("get").expect("live");
    assert_eq!(*a.identity, *s.identity);
    assert_eq!(a.plain, s.plain);
    assert_eq!(
        (a.created, a.expires, a.identity_at),
        (s.created, s.expires, s.identity_at)
    );
    assert!(Arc::ptr_eq(&a, &b));
    assert!(store.health().await.is_ok());

    // The administrator's list: live sessions with their last use, by
    // email (case-insensitively) or subject; revocation through it.
    let store = make(Duration::from_secs(300));
    let j = session("uid=jane", None, T, 3600);
    let gone = session("uid=jane", None, T, 3600);
    let bob = Arc::new(Session::new(
        new_session_id(),
        Arc::new(identity(
            "uid=bob",
            "Bob@Example.com",
            Some("reviewer"),
            &[],
        )),
        &HeaderNames::default(),
        T,
        Duration::from_secs(3600),
    ));
    for s in [&j, &gone, &bob] {
        store.insert(Arc::clone(s)).await.expect("insert");
    }
    assert!(store.revoke(&gone.id).await.expect("revoke"));
    assert!(store.get(&j.id, T + 100).await.expect("get").is_some());
    let all = store.list(None, T + 100).await.expect("list");
    assert_eq!(all.len(), 2, "revoked sessions are not listed");
    let listed = all.iter().find(|s| s.id() == j.id).expect("jane listed");
    assert_eq!(
        (listed.created, listed.last_seen, listed.expires),
        (T, T + 100, T + 400)
    );
    assert_eq!(listed.idp.as_deref(), Some("default"));
    assert_eq!(
        (listed.method, listed.role, listed.sid.len()),
        ("saml", Some(Role::Annotator), 12)
    );
    for (user, want) in [
        ("bob@example.com", 1),
        ("uid=bob", 1),
        ("JANE@example.com", 1),
        ("uid=jane", 1),
        ("nobody@example.com", 0),
    ] {
        let got = store.list(Some(user), T + 100).await.expect("list");
        assert_eq!(got.len(), want, "{user}");
    }
    assert!(
        store.list(None, T + 400).await.expect("list").is_empty(),
        "idle ones are not listed"
    );
    let done = control::revoke(
        store.as_ref(),
        &Selector::User("BOB@example.com".into()),
        T + 100,
    )
    .await
    .expect("revoke");
    assert_eq!(done.len(), 1);
    assert!(store.get(&bob.id, T + 101).await.expect("get").is_none());
    assert!(store.get(&j.id, T + 101).await.expect("get").is_some());
    let done = control::revoke(
        store.as_ref(),
        &Selector::Sid(j.id[..10].to_string()),
        T + 102,
    )
    .await
    .expect("revoke");
    assert_eq!(done.len(), 1);
    assert!(store.get(&j.id, T + 103).await.expect("get").is_none());
    assert!(control::list(store.as_ref(), None, T + 103)
        .await
        .expect("list")
        .is_empty());
}
