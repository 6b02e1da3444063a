//! The embedded in-memory [`Store`]: sessions in a sharded map, lost on
//! restart (users sign in again), not shared between replicas (use the
//! Redis store for that).
//!
//! Reads take only a shard's read lock: the last-seen time used for the
//! idle timeout is an atomic, so `get` never waits for a writer on another
//! shard and never blocks other readers. Revoked sessions leave a small
//! tombstone until their absolute expiry, so an identity refresh racing a
//! logout cannot bring a session back. Expired entries are removed by
//! [`Store::purge`], which the app calls from a periodic task.
//!
//! Must not: hold a lock across an `.await` (there is none inside), or log
//! session ids.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use super::control::{is_user, Summary};
use super::{BoxFuture, LogoutTarget, Session, Store, StoreError};

const SHARDS: usize = 16;

enum Entry {
    Live {
        session: Arc<Session>,
        last_seen: AtomicU64,
    },
    Revoked {
        expires: u64,
    },
}

type Shard = RwLock<HashMap<String, Entry>>;

/// In-memory session registry with an optional idle timeout.
pub struct MemoryStore {
    shards: Box<[Shard]>,
    hasher: RandomState,
    idle_secs: Option<u64>,
}

impl MemoryStore {
    /// `idle_timeout`: a session unused for this long is gone;
    /// `Duration::ZERO` disables it (only the absolute expiry applies).
    pub fn new(idle_timeout: Duration) -> Self {
        MemoryStore {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
            idle_secs: Some(idle_timeout.as_secs()).filter(|&s| s > 0),
        }
    }

    /// Removes expired and idle sessions and tombstones past their expiry;
    /// returns how many entries went. Takes each shard's write lock in turn.
    fn purge_now(&self, now: u64) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut map = write(shard);
            let before = map.len();
            map.retain(|_, e| match e {
                Entry::Live { session, last_seen } => {
                    !self.expired(session, last_seen.load(Ordering::Relaxed), now)
                }
                Entry::Revoked { expires } => now < *expires,
            });
            removed += before - map.len();
        }
        removed
    }

    fn shard(&self, id: &str) -> &Shard {
        let i = (self.hasher.hash_one(id) as usize) % self.shards.len();
        &self.shards[i]
    }

    fn expired(&self, s: &Session, last_seen: u64, now: u64) -> bool {
        now >= s.expires
            || self
                .idle_secs
                .is_some_and(|idle| now.saturating_sub(last_seen) >= idle)
    }

    fn insert_now(&self, s: Arc<Session>) -> Result<(), StoreError> {
        let mut map = write(self.shard(&s.id));
        let seen = s.identity_at.max(s.created);
        match map.get(&s.id) {
            Some(Entry::Revoked { .. }) => return Err(StoreError::Revoked),
            Some(Entry::Live { last_seen, .. }) => {
                let seen = seen.max(last_seen.load(Ordering::Relaxed));
                map.insert(s.id.clone(), live(s, seen));
            }
            None => {
                map.insert(s.id.clone(), live(s, seen));
            }
        }
        Ok(())
    }

    fn get_now(&self, id: &str, now: u64) -> Option<Arc<Session>> {
        let shard = self.shard(id);
        {
            let map = read(shard);
            match map.get(id) {
                None | Some(Entry::Revoked { .. }) => return None,
                Some(Entry::Live { session, last_seen }) => {
                    if !self.expired(session, last_seen.load(Ordering::Relaxed), now) {
                        last_seen.fetch_max(now, Ordering::Relaxed);
                        return Some(Arc::clone(session));
                    }
                }
            }
        }
        // Expired: drop it now rather than wait for purge (rare path).
        let mut map = write(shard);
        if let Some(Entry::Live { session, last_seen }) = map.get(id) {
            if self.expired(session, last_seen.load(Ordering::Relaxed), now) {
                map.remove(id);
            }
        }
        None
    }

    fn revoke_now(&self, id: &str) -> bool {
        let mut map = write(self.shard(id));
        let Some(e) = map.get_mut(id) else {
            return false;
        };
        let Entry::Live { session, .. } = e else {
            return false;
        };
        let expires = session.expires;
        *e = Entry::Revoked { expires };
        true
    }

    fn revoke_subject_now(&self, target: LogoutTarget<'_>) -> usize {
        let mut count = 0;
        for shard in self.shards.iter() {
            let mut map = write(shard);
            for e in map.values_mut() {
                let Entry::Live { session, .. } = e else {
                    continue;
                };
                if target.matches(&session.identity) {
                    *e = Entry::Revoked {
                        expires: session.expires,
                    };
                    count += 1;
                }
            }
        }
        count
    }

    fn list_now(&self, user: Option<&str>, now: u64) -> Vec<Summary> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            for e in read(shard).values() {
                let Entry::Live { session, last_seen } = e else {
                    continue;
                };
                let seen = last_seen.load(Ordering::Relaxed);
                if self.expired(session, seen, now)
                    || user.is_some_and(|u| !is_user(&session.identity, u))
                {
                    continue;
                }
                out.push(Summary::new(session, seen, self.idle_secs));
            }
        }
        out
    }

    fn len_now(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                read(s)
                    .values()
                    .filter(|e| matches!(e, Entry::Live { .. }))
                    .count()
            })
            .sum()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(Duration::ZERO)
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &self.len_now())
            .field("idle_secs", &self.idle_secs)
            .finish()
    }
}

fn live(session: Arc<Session>, seen: u64) -> Entry {
    Entry::Live {
        session,
        last_seen: AtomicU64::new(seen),
    }
}

/// A panic while holding a shard lock leaves the map consistent (every
/// mutation is a single insert/remove/assign), so poisoning is ignored.
fn read(shard: &Shard) -> RwLockReadGuard<'_, HashMap<String, Entry>> {
    shard.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(shard: &Shard) -> RwLockWriteGuard<'_, HashMap<String, Entry>> {
    shard.write().unwrap_or_else(PoisonError::into_inner)
}

impl Store for MemoryStore {
    fn insert(&self, s: Arc<Session>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(self.insert_now(s)))
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
        now: u64,
    ) -> BoxFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
        Box::pin(std::future::ready(Ok(self.get_now(id, now))))
    }

    fn revoke<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(std::future::ready(Ok(self.revoke_now(id))))
    }

    fn revoke_subject<'a>(
        &'a self,
        target: LogoutTarget<'a>,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(std::future::ready(Ok(self.revoke_subject_now(target))))
    }

    fn list<'a>(
        &'a self,
        user: Option<&'a str>,
        now: u64,
    ) -> BoxFuture<'a, Result<Vec<Summary>, StoreError>> {
        Box::pin(std::future::ready(Ok(self.list_now(user, now))))
    }

    fn purge(&self, now: u64) -> BoxFuture<'_, usize> {
        Box::pin(std::future::ready(self.purge_now(now)))
    }

    fn len(&self) -> BoxFuture<'_, usize> {
        Box::pin(std::future::ready(self.len_now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::tests::identity;
    use crate::session::{new_session_id, HeaderNames};

    const T: u64 = 1_700_000_000;

    fn session(subject: &str, index: Option<&str>, now: u64, ttl: u64) -> Arc<Session> {
        let mut id = identity(subject);
        id.session_index = index.map(str::to_string);
        Arc::new(Session::new(
            new_session_id(),
            Arc::new(id),
            &HeaderNames::default(),
            now,
            Duration::from_secs(ttl),
        ))
    }

    #[tokio::test]
    async fn absolute_ttl_expires_even_when_active() {
        let store = MemoryStore::new(Duration::from_secs(600));
        let s = session("jane", None, T, 1000);
        store.insert(Arc::clone(&s)).await.expect("insert");
        for t in (T..T + 1000).step_by(100) {
            assert!(store.get(&s.id, t).await.expect("get").is_some(), "t={t}");
        }
        assert!(store.get(&s.id, T + 1000).await.expect("get").is_none());
        assert_eq!(store.len().await, 0, "expired entry removed on get");
    }

    #[tokio::test]
    async fn idle_timeout_counts_from_last_use() {
        let store = MemoryStore::new(Duration::from_secs(300));
        let s = session("jane", None, T, 3600);
        store.insert(Arc::clone(&s)).await.expect("insert");
        assert!(store.get(&s.id, T + 299).await.expect("get").is_some());
        // Used at T+299: alive until T+599.
        assert!(store.get(&s.id, T + 598).await.expect("get").is_some());
        assert!(store.get(&s.id, T + 898).await.expect("get").is_none());
        assert!(
            store.get(&s.id, T + 899).await.expect("get").is_none(),
            "stays gone"
        );
    }

    #[tokio::test]
    async fn no_idle_timeout_means_only_absolute_expiry() {
        let store = MemoryStore::new(Duration::ZERO);
        let s = session("jane", None, T, 3600);
        store.insert(Arc::clone(&s)).await.expect("insert");
        assert!(store.get(&s.id, T + 3599).await.expect("get").is_some());
        assert!(store.get(&s.id, T + 3600).await.expect("get").is_none());
    }

    #[tokio::test]
    async fn revoke_ends_one_session_and_blocks_reinsertion() {
        let store = MemoryStore::default();
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
            Err(StoreError::Revoked)
        ));
        assert_eq!(store.len().await, 1);
    }

    fn slo<'a>(subject: &'a str, index: Option<&'a str>) -> LogoutTarget<'a> {
        LogoutTarget {
            subject,
            session_index: index,
            idp: "default",
            first_idp: true,
        }
    }

    #[tokio::test]
    async fn revoke_subject_honours_session_index() {
        let store = MemoryStore::default();
        let j1 = session("jane", Some("idx-1"), T, 3600);
        let j2 = session("jane", Some("idx-2"), T, 3600);
        let j3 = session("jane", None, T, 3600);
        let bob = session("bob", Some("idx-1"), T, 3600);
        for s in [&j1, &j2, &j3, &bob] {
            store.insert(Arc::clone(s)).await.expect("insert");
        }
        assert_eq!(
            store
                .revoke_subject(slo("jane", Some("idx-1")))
                .await
                .expect("slo"),
            1
        );
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
    }

    #[tokio::test]
    async fn revoke_subject_spares_other_idps_and_ldap_sessions() {
        let store = MemoryStore::default();
        let with = |idp: Option<&str>, method: crate::identity::Method| {
            let mut id = identity("jane");
            id.saml_idp = idp.map(str::to_string);
            id.method = method;
            Arc::new(Session::new(
                new_session_id(),
                Arc::new(id),
                &HeaderNames::default(),
                T,
                Duration::from_secs(3600),
            ))
        };
        use crate::identity::Method::{Ldap, Saml};
        let at_beta = with(Some("beta"), Saml);
        let at_default = with(Some("default"), Saml);
        let unmarked = with(None, Saml);
        let ldap = with(None, Ldap);
        for s in [&at_beta, &at_default, &unmarked, &ldap] {
            store.insert(Arc::clone(s)).await.expect("insert");
        }
        let from_beta = LogoutTarget {
            subject: "jane",
            session_index: None,
            idp: "beta",
            first_idp: false,
        };
        assert_eq!(store.revoke_subject(from_beta).await.expect("slo"), 1);
        assert!(store.get(&at_beta.id, T).await.expect("get").is_none());
        assert!(store.get(&at_default.id, T).await.expect("get").is_some());
        assert!(store.get(&unmarked.id, T).await.expect("get").is_some());
        assert_eq!(
            store.revoke_subject(slo("jane", None)).await.expect("slo"),
            2,
            "the first IdP owns sessions that recorded no IdP"
        );
        assert!(store.get(&ldap.id, T).await.expect("get").is_some());
    }

    #[tokio::test]
    async fn purge_removes_expired_idle_and_old_tombstones() {
        let store = MemoryStore::new(Duration::from_secs(100));
        let short = session("a", None, T, 50);
        let long = session("b", None, T, 10_000);
        let revoked = session("c", None, T, 500);
        for s in [&short, &long, &revoked] {
            store.insert(Arc::clone(s)).await.expect("insert");
        }
        store.revoke(&revoked.id).await.expect("revoke");
        assert!(store.get(&long.id, T + 90).await.expect("get").is_some());
        assert_eq!(store.purge(T + 60).await, 1, "only the 50 s session");
        assert_eq!(store.purge(T + 189).await, 0, "long was used at T+90");
        assert_eq!(store.purge(T + 190).await, 1, "long idle for 100 s");
        assert_eq!(store.purge(T + 499).await, 0, "tombstone kept until expiry");
        assert_eq!(store.purge(T + 500).await, 1);
        assert_eq!(store.len().await, 0);
    }

    #[tokio::test]
    async fn replacing_a_session_keeps_its_last_use() {
        let store = MemoryStore::new(Duration::from_secs(100));
        let s = session("jane", None, T, 3600);
        store.insert(Arc::clone(&s)).await.expect("insert");
        assert!(store.get(&s.id, T + 90).await.expect("get").is_some());
        // A refresh evaluated at T+50 (before the last use) does not make
        // the session look older than it is.
        let next =
            Arc::new(s.with_identity(Arc::new(identity("jane")), &HeaderNames::default(), T + 50));
        store.insert(next).await.expect("replace");
        assert!(store.get(&s.id, T + 189).await.expect("get").is_some());
        assert_eq!(store.len().await, 1);
    }

    #[tokio::test]
    async fn list_shows_live_sessions_with_their_last_use_and_filters_by_user() {
        let store = MemoryStore::new(Duration::from_secs(300));
        let jane = session("jane", None, T, 3600);
        let old = session("jane", None, T - 3600, 3600);
        let mut bob = identity("uid=bob");
        bob.email = Some("Bob@Example.com".into());
        let bob = Arc::new(Session::new(
            new_session_id(),
            Arc::new(bob),
            &HeaderNames::default(),
            T,
            Duration::from_secs(3600),
        ));
        let gone = session("jane", None, T, 3600);
        for s in [&jane, &old, &bob, &gone] {
            store.insert(Arc::clone(s)).await.expect("insert");
        }
        store.revoke(&gone.id).await.expect("revoke");
        assert!(store.get(&jane.id, T + 100).await.expect("get").is_some());
        let all = store.list(None, T + 100).await.expect("list");
        assert_eq!(all.len(), 2, "expired and revoked ones are not listed");
        let j = all.iter().find(|s| s.id() == jane.id).expect("jane");
        assert_eq!((j.created, j.last_seen, j.expires), (T, T + 100, T + 400));
        let b = store
            .list(Some("bob@example.com"), T + 100)
            .await
            .expect("list");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].id(), bob.id);
        assert_eq!(store.list(Some("nobody"), T).await.expect("list").len(), 0);
    }

    #[tokio::test]
    async fn usable_as_a_shared_trait_object_across_tasks() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let s = session("jane", None, T, 3600);
        store.insert(Arc::clone(&s)).await.expect("insert");
        let id = s.id.clone();
        let st = Arc::clone(&store);
        let found = tokio::spawn(async move { st.get(&id, T).await.map(|o| o.is_some()) })
            .await
            .expect("join")
            .expect("get");
        assert!(found);
    }
}
