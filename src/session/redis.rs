//! The shared state of several replicas in Redis: the session registry
//! ([`RedisStore`]), and the primitives the SAML replay cache
//! ([`Redis::first_use`]) and the failed-login throttle
//! ([`Redis::throttle_check`], [`Redis::throttle_fail`]) are built on.
//!
//! Layout (every key under the configured prefix, default `authgate:`;
//! `{id}` hash tags keep a session and its tombstone in one slot):
//!
//! | key | type | lives |
//! |---|---|---|
//! | `s:{ID}` | hash: `d` (session JSON), `exp`, `seen` | until the absolute expiry, or the idle timeout from the last use, whichever is first |
//! | `r:{ID}` | string (tombstone of a revoked session) | until the session's absolute expiry |
//! | `u:SUBJECT` | set of session ids (for Single Logout) | until the last of its sessions expires |
//! | `a:KEY` | string (SAML assertion id, `SET NX PX`) | until the assertion's NotOnOrAfter |
//! | `t:KEY` | sorted set of failure times (ms) | one throttle window after the last failure |
//!
//! Every call has the configured timeout (`session.redis_timeout`); a
//! failure or timeout is [`StoreError::Unavailable`], which callers turn
//! into 503 (fail closed: a request is never served without its revocation
//! check). The [`ConnectionManager`] reconnects by itself; the first
//! connection is made lazily, so authgate starts (and reports not ready)
//! while Redis is down.
//!
//! Sessions are read from Redis on every request (that read *is* the
//! revocation check); the decoded session is cached locally and reused while
//! Redis returns the same bytes, so the identity JWT cache survives.
//!
//! Must not: log session ids, the URL (it may hold a password) or session
//! contents; hold a lock across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::{BoxFuture, HeaderNames, Session, Store, StoreError};
use crate::identity::jwt::TokenCache;
use crate::identity::Identity;

/// Decoded sessions kept locally at most (then the cache starts over).
const LOCAL_CACHE: usize = 50_000;

/// A Redis call that did not finish within `session.redis_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("redis did not answer within {0:?}")]
pub struct TimedOut(pub Duration);

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// One Redis deployment (URL, password, timeout, key prefix), shared by the
/// session store, the replay cache and the throttle.
pub struct Redis {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    timeout: Duration,
    prefix: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("timeout", &self.timeout)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Connects nothing yet (see the module docs). Fails only on a
    /// connection description the client refuses (e.g. rediss:// without TLS
    /// support).
    pub fn new(
        info: redis::ConnectionInfo,
        timeout: Duration,
        prefix: &str,
    ) -> Result<Redis, StoreError> {
        let client = redis::Client::open(info).map_err(unavailable)?;
        Ok(Redis {
            client,
            conn: OnceCell::new(),
            timeout,
            prefix: prefix.to_string(),
        })
    }

    pub fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}{kind}{rest}", self.prefix)
    }

    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let timeout = self.timeout;
        let c = tokio::time::timeout(
            timeout,
            self.conn.get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout)
                    .set_number_of_retries(1)
                    .set_max_delay(1000);
                ConnectionManager::new_with_config(self.client.clone(), config).await
            }),
        )
        .await
        .map_err(|_| unavailable(TimedOut(timeout)))?
        .map_err(unavailable)?;
        Ok(c.clone())
    }

    /// Runs a script (EVALSHA, loading it again after a Redis restart) with
    /// the timeout.
    async fn invoke<T: FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut c = self.conn().await?;
        tokio::time::timeout(self.timeout, inv.invoke_async(&mut c))
            .await
            .map_err(|_| unavailable(TimedOut(self.timeout)))?
            .map_err(unavailable)
    }

    /// Runs one command with the timeout.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut c = self.conn().await?;
        tokio::time::timeout(self.timeout, cmd.query_async(&mut c))
            .await
            .map_err(|_| unavailable(TimedOut(self.timeout)))?
            .map_err(unavailable)
    }

    /// `PING`: readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.query(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(unavailable(std::io::Error::other("unexpected PING answer")))
        }
    }

    /// Records `key` until `expires` (Unix seconds) with `SET NX PX`;
    /// `true` the first time. The SAML replay cache.
    pub async fn first_use(&self, key: &str, expires: u64, now: u64) -> Result<bool, StoreError> {
        let ttl_ms = expires.saturating_sub(now).max(1) * 1000;
        let set: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(self.key("a:", key))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms),
            )
            .await?;
        Ok(set.is_some())
    }

    /// `Err(wait)` while `key` has `max` failures in the last `window`.
    pub async fn throttle_check(
        &self,
        key: &str,
        max: u32,
        window: Duration,
    ) -> Result<Result<(), Duration>, StoreError> {
        let wait_ms: i64 = self
            .invoke(
                THROTTLE_CHECK
                    .key(self.key("t:", key))
                    .arg(now_ms())
                    .arg(window.as_millis() as u64)
                    .arg(max.max(1)),
            )
            .await?;
        Ok(if wait_ms < 0 {
            Ok(())
        } else {
            let wait = Duration::from_millis(wait_ms as u64);
            Err(Duration::from_secs(wait.as_secs_f64().ceil() as u64).max(Duration::from_secs(1)))
        })
    }

    /// Records one failure of `key`; the key expires one window later.
    pub async fn throttle_fail(
        &self,
        key: &str,
        max: u32,
        window: Duration,
    ) -> Result<(), StoreError> {
        let member = hex(&crate::identity::random_bytes::<8>());
        let _: i64 = self
            .invoke(
                THROTTLE_FAIL
                    .key(self.key("t:", key))
                    .arg(now_ms())
                    .arg(window.as_millis().max(1) as u64)
                    .arg(max.max(1))
                    .arg(member),
            )
            .await?;
        Ok(())
    }

    /// Forgets `key`'s failures.
    pub async fn throttle_clear(&self, key: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .query(redis::cmd("DEL").arg(self.key("t:", key)))
            .await?;
        Ok(())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Sliding window check: drop failures older than the window; with `max`
/// left, the milliseconds until the oldest leaves it, else -1.
static THROTTLE_CHECK: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[1]); local window = tonumber(ARGV[2]); local max = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= max then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window - now
end
return -1
",
    )
});

/// One failure: add it, keep the newest `max`, expire a window later.
static THROTTLE_FAIL: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[1]); local window = tonumber(ARGV[2]); local max = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[4])
local n = redis.call('ZCARD', KEYS[1])
if n > max then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - max - 1) end
redis.call('PEXPIRE', KEYS[1], window)
return n
",
    )
});

/// Insert or replace: refused (-1) when a tombstone exists; the last use
/// only moves forward. KEYS: session, tombstone. ARGV: data, exp, seen,
/// ttl_ms.
static INSERT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local seen = tonumber(ARGV[3])
local prev = tonumber(redis.call('HGET', KEYS[1], 'seen') or '0')
if prev > seen then seen = prev end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'exp', ARGV[2], 'seen', seen)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
",
    )
});

/// Subject index: add the id; the set lives as long as its longest
/// session. KEYS: index. ARGV: id, ttl seconds.
static INDEX: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r"
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
",
    )
});

/// Get: the data of a live session, recording the use and sliding the idle
/// TTL (at most one write a second per session: times are whole
/// seconds); an expired or idle one is deleted. KEYS: session. ARGV: now, idle
/// seconds (0 = none).
static GET: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('HMGET', KEYS[1], 'd', 'exp', 'seen')
if not v[1] then return false end
local now = tonumber(ARGV[1]); local idle = tonumber(ARGV[2])
local exp = tonumber(v[2]); local seen = tonumber(v[3])
if now >= exp or (idle > 0 and now - seen >= idle) then
  redis.call('DEL', KEYS[1])
  return false
end
if now > seen then
  redis.call('HSET', KEYS[1], 'seen', now)
  local ttl = exp - now
  if idle > 0 and idle < ttl then ttl = idle end
  redis.call('PEXPIRE', KEYS[1], ttl * 1000)
end
return v[1]
",
    )
});

/// Revoke: replace the session by a tombstone living until its absolute
/// expiry. KEYS: session, tombstone. ARGV: now (wall clock). 1 if it was
/// stored.
static REVOKE: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r"
local exp = redis.call('HGET', KEYS[1], 'exp')
if not exp then return 0 end
redis.call('DEL', KEYS[1])
local ttl = tonumber(exp) - tonumber(ARGV[1])
if ttl < 60 then ttl = 60 end
redis.call('SET', KEYS[2], 1, 'EX', ttl)
return 1
",
    )
});

/// The JSON Redis returned for a session, and the session decoded from it.
type Decoded = (Arc<str>, Arc<Session>);

/// What Redis holds of a session (the id is the key; the token cache and
/// plain headers are rebuilt).
#[derive(Serialize, Deserialize)]
struct Stored {
    identity: Identity,
    created: u64,
    expires: u64,
    identity_at: u64,
}

/// The session registry in Redis: shared by every replica, kept across
/// authgate restarts.
pub struct RedisStore {
    redis: Arc<Redis>,
    names: HeaderNames,
    idle_secs: u64,
    /// id -> (the JSON Redis returned, the session decoded from it).
    local: Mutex<HashMap<String, Decoded>>,
}

impl RedisStore {
    /// `names`: the plain header names sessions are rebuilt with;
    /// `idle_timeout` zero disables the idle timeout.
    pub fn new(redis: Arc<Redis>, names: HeaderNames, idle_timeout: Duration) -> RedisStore {
        RedisStore {
            redis,
            names,
            idle_secs: idle_timeout.as_secs(),
            local: Mutex::new(HashMap::new()),
        }
    }

    fn session_key(&self, id: &str) -> String {
        self.redis.key("s:", &format!("{{{id}}}"))
    }

    fn tombstone_key(&self, id: &str) -> String {
        self.redis.key("r:", &format!("{{{id}}}"))
    }

    fn subject_key(&self, subject: &str) -> String {
        self.redis.key("u:", subject)
    }

    fn forget(&self, id: &str) {
        self.local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    async fn insert_now(&self, s: Arc<Session>) -> Result<(), StoreError> {
        let stored = Stored {
            identity: (*s.identity).clone(),
            created: s.created,
            expires: s.expires,
            identity_at: s.identity_at,
        };
        let data = serde_json::to_string(&stored).map_err(unavailable)?;
        let now = s.identity_at.max(s.created);
        let mut ttl = s.expires.saturating_sub(now).max(1);
        if self.idle_secs > 0 {
            ttl = ttl.min(self.idle_secs);
        }
        let r: i64 = self
            .redis
            .invoke(
                INSERT
                    .key(self.session_key(&s.id))
                    .key(self.tombstone_key(&s.id))
                    .arg(data)
                    .arg(s.expires)
                    .arg(now)
                    .arg(ttl * 1000),
            )
            .await?;
        if r < 0 {
            return Err(StoreError::Revoked);
        }
        // The subject index lives as long as its longest session.
        let index_ttl = s.expires.saturating_sub(crate::app::now_unix()).max(60);
        let _: i64 = self
            .redis
            .invoke(
                INDEX
                    .key(self.subject_key(&s.identity.subject))
                    .arg(&s.id)
                    .arg(index_ttl),
            )
            .await?;
        Ok(())
    }

    async fn get_now(&self, id: &str, now: u64) -> Result<Option<Arc<Session>>, StoreError> {
        let data: Option<String> = self
            .redis
            .invoke(GET.key(self.session_key(id)).arg(now).arg(self.idle_secs))
            .await?;
        let Some(data) = data else {
            self.forget(id);
            return Ok(None);
        };
        {
            let local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((d, s)) = local.get(id) {
                if **d == *data {
                    return Ok(Some(Arc::clone(s)));
                }
            }
        }
        let stored: Stored = match serde_json::from_str(&data) {
            Ok(s) => s,
            Err(e) => {
                // Written by an incompatible version: treat as signed out.
                tracing::warn!(error = %e, "undecodable session in redis; ignored");
                return Ok(None);
            }
        };
        let identity = Arc::new(stored.identity);
        let session = Arc::new(Session {
            id: id.to_string(),
            plain: super::PlainHeaders::new(&identity, &self.names),
            identity,
            created: stored.created,
            expires: stored.expires,
            identity_at: stored.identity_at,
            tokens: TokenCache::new(),
        });
        let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        if local.len() >= LOCAL_CACHE {
            local.clear();
        }
        local.insert(id.to_string(), (Arc::from(data), Arc::clone(&session)));
        Ok(Some(session))
    }

    async fn revoke_now(&self, id: &str) -> Result<bool, StoreError> {
        self.forget(id);
        let r: i64 = self
            .redis
            .invoke(
                REVOKE
                    .key(self.session_key(id))
                    .key(self.tombstone_key(id))
                    .arg(crate::app::now_unix()),
            )
            .await?;
        Ok(r == 1)
    }

    async fn revoke_subject_now(
        &self,
        subject: &str,
        session_index: Option<&str>,
    ) -> Result<usize, StoreError> {
        let key = self.subject_key(subject);
        let ids: Vec<String> = self.redis.query(redis::cmd("SMEMBERS").arg(&key)).await?;
        let mut count = 0;
        for id in ids {
            let data: Option<String> = self
                .redis
                .query(redis::cmd("HGET").arg(self.session_key(&id)).arg("d"))
                .await?;
            let Some(data) = data else {
                let _: i64 = self
                    .redis
                    .query(redis::cmd("SREM").arg(&key).arg(&id))
                    .await?;
                continue;
            };
            let Ok(stored) = serde_json::from_str::<Stored>(&data) else {
                continue;
            };
            let matches = stored.identity.subject == subject
                && session_index
                    .is_none_or(|want| stored.identity.session_index.as_deref() == Some(want));
            if matches && self.revoke_now(&id).await? {
                let _: i64 = self
                    .redis
                    .query(redis::cmd("SREM").arg(&key).arg(&id))
                    .await?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// Counts `s:` keys with SCAN (for the sessions gauge; O(keys)).
    async fn len_now(&self) -> Result<usize, StoreError> {
        let pattern = self.redis.key("s:", "*");
        let mut cursor: u64 = 0;
        let mut n = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .redis
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            n += keys.len();
            cursor = next;
            if cursor == 0 {
                return Ok(n);
            }
        }
    }
}

impl Store for RedisStore {
    fn insert(&self, s: Arc<Session>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.insert_now(s))
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
        now: u64,
    ) -> BoxFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
        Box::pin(self.get_now(id, now))
    }

    fn revoke<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.revoke_now(id))
    }

    fn revoke_subject<'a>(
        &'a self,
        subject: &'a str,
        session_index: Option<&'a str>,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(self.revoke_subject_now(subject, session_index))
    }

    fn len(&self) -> BoxFuture<'_, usize> {
        Box::pin(async move { self.len_now().await.unwrap_or(0) })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.redis.ping())
    }
}
