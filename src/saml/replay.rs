//! The replay cache: each assertion ID is accepted once, and remembered
//! until the assertion could no longer be accepted anyway.
//!
//! Behind a small trait so a shared store (Redis, for several replicas)
//! can replace the in-memory one.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use super::Error;
use crate::session::{BoxFuture, Redis};

/// Entries the in-memory cache holds at most (each ~100 bytes). Entries
/// live at most a few minutes (`response::MAX_RESPONSE_AGE` + skew).
pub const DEFAULT_CAPACITY: usize = 500_000;

pub trait ReplayCache: Send + Sync + 'static {
    /// Records `key` until `expires` (unix seconds). `Ok(true)` the first
    /// time a live key is seen, `Ok(false)` on a replay.
    fn first_use<'a>(
        &'a self,
        key: &'a str,
        expires: u64,
        now: u64,
    ) -> BoxFuture<'a, Result<bool, Error>>;
}

/// In-memory, bounded: expired entries are dropped as new ones arrive; a
/// full cache refuses new sign-ins rather than forget a live entry.
#[derive(Debug)]
pub struct MemoryReplayCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_key: HashMap<String, u64>,
    by_expiry: BTreeSet<(u64, String)>,
}

impl MemoryReplayCache {
    pub fn new(capacity: usize) -> Self {
        MemoryReplayCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn check(&self, key: &str, expires: u64, now: u64) -> Result<bool, Error> {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // Drop what has expired.
        while let Some((exp, k)) = g.by_expiry.first().cloned() {
            if exp > now {
                break;
            }
            g.by_expiry.pop_first();
            g.by_key.remove(&k);
        }
        if g.by_key.contains_key(key) {
            return Ok(false);
        }
        if g.by_key.len() >= self.capacity {
            return Err(Error::ReplayCacheFull);
        }
        g.by_key.insert(key.to_string(), expires);
        g.by_expiry.insert((expires, key.to_string()));
        Ok(true)
    }

    pub fn len(&self) -> usize {
        match self.inner.lock() {
            Ok(g) => g.by_key.len(),
            Err(p) => p.into_inner().by_key.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReplayCache for MemoryReplayCache {
    fn first_use<'a>(
        &'a self,
        key: &'a str,
        expires: u64,
        now: u64,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(std::future::ready(self.check(key, expires, now)))
    }
}

/// In Redis (`SET NX PX` until the assertion's NotOnOrAfter): an
/// assertion consumed on one replica is a replay on every other.
pub struct RedisReplayCache {
    redis: Arc<Redis>,
}

impl RedisReplayCache {
    pub fn new(redis: Arc<Redis>) -> Self {
        RedisReplayCache { redis }
    }
}

impl ReplayCache for RedisReplayCache {
    fn first_use<'a>(
        &'a self,
        key: &'a str,
        expires: u64,
        now: u64,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            self.redis
                .first_use(key, expires, now)
                .await
                .map_err(Error::ReplayStore)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_accepted_once_until_it_expires() {
        let c = MemoryReplayCache::new(10);
        assert!(c.first_use("a", 100, 50).await.expect("ok"));
        assert!(!c.first_use("a", 100, 60).await.expect("ok"));
        assert!(!c.first_use("a", 100, 99).await.expect("ok"));
        // Past its expiry the entry is gone (the assertion itself would be
        // refused as expired by then).
        assert!(c.first_use("a", 200, 100).await.expect("ok"));
    }

    #[tokio::test]
    async fn a_full_cache_refuses_instead_of_forgetting() {
        let c = MemoryReplayCache::new(2);
        assert!(c.first_use("a", 100, 0).await.expect("ok"));
        assert!(c.first_use("b", 100, 0).await.expect("ok"));
        assert!(matches!(
            c.first_use("c", 100, 0).await,
            Err(Error::ReplayCacheFull)
        ));
        // Once entries expire there is room again.
        assert!(c.first_use("c", 300, 100).await.expect("ok"));
        assert_eq!(c.len(), 1);
    }
}
