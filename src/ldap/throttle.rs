//! Failed-login throttle: a sliding window of failure times per key (a
//! username, a client address), in memory and bounded in size.
//!
//! A key with `max` failures inside the last `window` is refused until the
//! oldest of them leaves the window; the caller answers 429 with that wait
//! as `Retry-After`. Only failures count, so a user who types the right
//! password is never slowed down by their own successful logins.
//!
//! [`Limiter`] is what the login handler uses: [`Throttle`] (this
//! process) or [`RedisLimiter`] (counts shared by every replica, in the
//! Redis store; each key expires one window after its last failure).
//!
//! Must not: grow without bound (at most `capacity` keys; the stalest go
//! first), hold its lock across an await, or store passwords.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::session::{BoxFuture, Redis, StoreError};

/// A failed-login limit, in memory or shared. `check` answers `Ok(Err(wait))`
/// while the key is over the limit; `Err` means the store is unavailable
/// (the caller refuses the login with 503 rather than skip the check).
pub trait Limiter: Send + Sync + 'static {
    fn check<'a>(&'a self, key: &'a str)
        -> BoxFuture<'a, Result<Result<(), Duration>, StoreError>>;
    /// Records one failure of `key`.
    fn fail<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Forgets `key`'s failures (after a successful login).
    fn clear<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}

impl Limiter for Throttle {
    fn check<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Result<(), Duration>, StoreError>> {
        Box::pin(std::future::ready(Ok(Throttle::check(
            self,
            key,
            Instant::now(),
        ))))
    }

    fn fail<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Throttle::fail(self, key, Instant::now());
        Box::pin(std::future::ready(Ok(())))
    }

    fn clear<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Throttle::clear(self, key);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The same sliding window in Redis (a sorted set of failure times per
/// key), so every replica counts the same failures.
pub struct RedisLimiter {
    redis: Arc<Redis>,
    max: u32,
    window: Duration,
}

impl RedisLimiter {
    pub fn new(redis: Arc<Redis>, max: u32, window: Duration) -> RedisLimiter {
        RedisLimiter {
            redis,
            max: max.max(1),
            window,
        }
    }
}

impl Limiter for RedisLimiter {
    fn check<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Result<(), Duration>, StoreError>> {
        Box::pin(self.redis.throttle_check(key, self.max, self.window))
    }

    fn fail<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.redis.throttle_fail(key, self.max, self.window))
    }

    fn clear<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.redis.throttle_clear(key))
    }
}

/// One limit: `max` failures per `window`, per key.
pub struct Throttle {
    max: u32,
    window: Duration,
    capacity: usize,
    keys: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Throttle {
    pub fn new(max: u32, window: Duration, capacity: usize) -> Throttle {
        Throttle {
            max: max.max(1),
            window,
            capacity: capacity.max(16),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` while `key` has `max` failures inside the window.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Ok(mut keys) = self.keys.lock() else {
            return Ok(());
        };
        let Some(times) = keys.get_mut(key) else {
            return Ok(());
        };
        prune(times, now, self.window);
        if times.len() >= self.max as usize {
            let oldest = times.front().copied().unwrap_or(now);
            let wait = (oldest + self.window).saturating_duration_since(now);
            return Err(wait.max(Duration::from_secs(1)));
        }
        if times.is_empty() {
            keys.remove(key);
        }
        Ok(())
    }

    /// Records one failure of `key`.
    pub fn fail(&self, key: &str, now: Instant) {
        let Ok(mut keys) = self.keys.lock() else {
            return;
        };
        if !keys.contains_key(key) && keys.len() >= self.capacity {
            evict(&mut keys, now, self.window, self.capacity);
        }
        let times = keys.entry(key.to_string()).or_default();
        prune(times, now, self.window);
        times.push_back(now);
        while times.len() > self.max as usize {
            times.pop_front();
        }
    }

    /// Forgets `key`'s failures (after a successful login).
    pub fn clear(&self, key: &str) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.remove(key);
        }
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.keys.lock().map(|k| k.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        times.pop_front();
    }
}

/// Drops expired keys; if still full, the keys whose last failure is
/// oldest go first (an eighth of the capacity at once, so a flood of new
/// keys does not sort the map on every failure).
fn evict(
    keys: &mut HashMap<String, VecDeque<Instant>>,
    now: Instant,
    window: Duration,
    capacity: usize,
) {
    keys.retain(|_, times| {
        prune(times, now, window);
        !times.is_empty()
    });
    if keys.len() < capacity {
        return;
    }
    let mut by_age: Vec<(Instant, String)> = keys
        .iter()
        .map(|(k, t)| (t.back().copied().unwrap_or(now), k.clone()))
        .collect();
    by_age.sort();
    let excess = keys.len() + 1 - capacity + capacity / 8;
    for (_, k) in by_age.into_iter().take(excess) {
        keys.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_max_failures_until_the_window_slides() {
        let t = Throttle::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(t.check("alice", t0 + Duration::from_secs(i)).is_ok());
            t.fail("alice", t0 + Duration::from_secs(i));
        }
        let wait = t.check("alice", t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(t.check("bob", t0 + Duration::from_secs(10)).is_ok());
        // The first failure leaves the window: one more attempt is allowed.
        assert!(t.check("alice", t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn clear_forgets_failures() {
        let t = Throttle::new(1, Duration::from_secs(60), 100);
        let now = Instant::now();
        t.fail("k", now);
        assert!(t.check("k", now).is_err());
        t.clear("k");
        assert!(t.check("k", now).is_ok());
    }

    #[test]
    fn size_is_bounded() {
        let t = Throttle::new(2, Duration::from_secs(60), 100);
        let now = Instant::now();
        t.fail("victim", now);
        t.fail("victim", now);
        for i in 0..10_000 {
            t.fail(&format!("spray{i}"), now + Duration::from_millis(1 + i));
        }
        assert!(t.len() <= 100);
    }

    #[test]
    fn retry_after_is_at_least_a_second() {
        let t = Throttle::new(1, Duration::from_millis(10), 100);
        let now = Instant::now();
        t.fail("k", now);
        assert_eq!(
            t.check("k", now + Duration::from_millis(5)),
            Err(Duration::from_secs(1))
        );
    }
}
