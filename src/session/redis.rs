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
//! | `e:EMAIL` | set of session ids of a (lowercased) email (the administrator's list by user) | until the last of its sessions expires |
//! | `i:all` | sorted set: session id → absolute expiry (the administrator's list) | until the last session expires; past ones are dropped at each sign-in and list |
//! | `i:indexed` | string: sessions written before the list indexes have been indexed | one hour |
//! | `a:KEY` | string (SAML assertion id, `SET NX PX`) | until the assertion's NotOnOrAfter |
//! | `t:KEY` | sorted set of failure times (ms) | one throttle window after the last failure |
//!
//! Topologies ([`Topology`]): one endpoint (`redis://`, `rediss://`),
//! Redis Sentinel (the master is looked up again after every failure, so a
//! failover is followed), and Redis Cluster (every script touches one slot:
//! a session and its tombstone share the `{ID}` hash tag). `rediss://`
//! endpoints are verified against `session.redis_ca_file` or the system
//! roots, host name included.
//!
//! Every call has the configured timeout (`session.redis_timeout`); a
//! failure or timeout is [`StoreError::Unavailable`], which callers turn
//! into 503 (fail closed: a request is never served without its revocation
//! check). Connections are re-made by themselves (a [`ConnectionManager`]
//! for one endpoint, the cluster client's own, or a new sentinel lookup);
//! the first connection is made lazily, so authgate starts (and reports not ready)
//! while Redis is down.
//!
//! Sessions are read from Redis on every request (that read *is* the
//! revocation check): a plain `HMGET`, and the `GET` script only when the
//! last use is to be recorded (once a second) or the session has ended. The
//! decoded session is cached locally and reused while Redis returns the same
//! bytes, so the identity JWT cache survives.
//!
//! Listing (`authgate sessions list`) reads an index, never SCANs the
//! keyspace: `e:EMAIL` and `u:SUBJECT` for one user, `i:all` for every
//! session; an id whose session has gone (idle, revoked) is dropped from
//! the index when a list meets it. Sessions an older authgate wrote without
//! these indexes are indexed by one SCAN, at most hourly, when someone
//! lists ([`RedisStore::backfill`]).
//!
//! Must not: log session ids, the URL (it may hold a password) or session
//! contents; hold a lock across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::atomic::{AtomicU64, Ordering};

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, Script, Value};
use serde::{Deserialize, Serialize};

use super::control::{is_user, Summary};
use super::{BoxFuture, HeaderNames, LogoutTarget, Session, Store, StoreError};
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

/// Where the Redis deployment is, as configured.
#[derive(Clone)]
pub enum Topology {
    /// One endpoint (`session.redis_url`): a standalone Redis, or a managed
    /// endpoint that hides its own failover.
    Single(redis::ConnectionInfo),
    /// Redis Sentinel: the sentinels are asked which server is the master
    /// named `master`, at the first call and again after every failure (a
    /// failover moves the master).
    Sentinel {
        master: String,
        /// The sentinels, each with its own credentials.
        sentinels: Vec<redis::ConnectionInfo>,
        /// Credentials of the master (`session.redis_password`).
        password: Option<String>,
        /// TLS to the master (when the sentinel URLs are `rediss://`).
        tls: bool,
    },
    /// Redis Cluster: seed nodes (the others are discovered); every key
    /// authgate writes is one slot per script (hash tags).
    Cluster(Vec<redis::ConnectionInfo>),
}

/// A [`Topology`] and the CA that verifies its `rediss://` endpoints.
#[derive(Clone)]
pub struct Target {
    pub topology: Topology,
    /// PEM CA certificates used instead of the system roots
    /// (`session.redis_ca_file`).
    pub ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.topology {
            Topology::Single(_) => "single",
            Topology::Sentinel { .. } => "sentinel",
            Topology::Cluster(_) => "cluster",
        };
        f.debug_struct("Target")
            .field("topology", &kind)
            .field("ca", &self.ca.is_some())
            .finish_non_exhaustive()
    }
}

/// Makes connections for a [`Target`].
enum Connector {
    Single(redis::Client),
    Sentinel(Box<redis::sentinel::SentinelClient>),
    Cluster(redis::cluster::ClusterClient),
}

impl Connector {
    fn new(target: Target, timeout: Duration) -> redis::RedisResult<Connector> {
        let certs = |ca: &Option<Vec<u8>>| redis::TlsCertificates {
            client_tls: None,
            root_cert: ca.clone(),
        };
        Ok(match target.topology {
            Topology::Single(info) => Connector::Single(match &target.ca {
                Some(_) => redis::Client::build_with_tls(info, certs(&target.ca))?,
                None => redis::Client::open(info)?,
            }),
            Topology::Sentinel {
                master,
                sentinels,
                password,
                tls,
            } => {
                use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
                // The builder takes one set of sentinel credentials; they
                // come from the first sentinel URL.
                let auth = sentinels.first().map(|i| i.redis.clone());
                let mut b = SentinelClientBuilder::new(
                    sentinels.into_iter().map(|i| i.addr),
                    master,
                    SentinelServerType::Master,
                )?;
                if let Some(auth) = auth {
                    if let Some(u) = auth.username {
                        b = b.set_client_to_sentinel_username(u);
                    }
                    if let Some(p) = auth.password {
                        b = b.set_client_to_sentinel_password(p);
                    }
                }
                if let Some(p) = password {
                    b = b.set_client_to_redis_password(p);
                }
                if tls {
                    b = b.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
                    if target.ca.is_some() {
                        b = b
                            .set_client_to_redis_certificates(certs(&target.ca))
                            .set_client_to_sentinel_certificates(certs(&target.ca));
                    }
                }
                Connector::Sentinel(Box::new(b.build()?))
            }
            Topology::Cluster(nodes) => {
                let mut b = redis::cluster::ClusterClientBuilder::new(nodes)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1);
                if target.ca.is_some() {
                    b = b.certs(certs(&target.ca));
                }
                Connector::Cluster(b.build()?)
            }
        })
    }

    async fn connect(&mut self, timeout: Duration) -> redis::RedisResult<Conn> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        Ok(match self {
            Connector::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout)
                    .set_number_of_retries(1)
                    .set_max_delay(1000);
                Conn::Manager(ConnectionManager::new_with_config(client.clone(), config).await?)
            }
            Connector::Sentinel(s) => {
                Conn::Multiplexed(s.get_async_connection_with_config(&config).await?)
            }
            Connector::Cluster(c) => Conn::Cluster(c.get_async_connection().await?),
        })
    }
}

/// A connection of any topology.
#[derive(Clone)]
enum Conn {
    /// Reconnects by itself to the same address.
    Manager(ConnectionManager),
    /// To the master a sentinel named; dropped after a failure.
    Multiplexed(MultiplexedConnection),
    /// Follows slot moves and node failures by itself.
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Multiplexed(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Multiplexed(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Multiplexed(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// One Redis deployment (topology, credentials, CA, timeout, key prefix),
/// shared by the session store, the replay cache and the throttle.
pub struct Redis {
    connector: tokio::sync::Mutex<Connector>,
    /// The connection in use; `None` before the first call and, with
    /// Sentinel, after a failure (the next call asks the sentinels again).
    conn: Mutex<Option<Conn>>,
    sentinel: bool,
    cluster: bool,
    timeout: Duration,
    prefix: String,
    /// When a connection failure was last logged (Unix ms), so a Redis
    /// outage logs every 10 s rather than on every request.
    logged: AtomicU64,
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
    /// One endpoint, system CA roots. See [`Redis::connect`].
    pub fn new(
        info: redis::ConnectionInfo,
        timeout: Duration,
        prefix: &str,
    ) -> Result<Redis, StoreError> {
        Redis::connect(
            Target {
                topology: Topology::Single(info),
                ca: None,
            },
            timeout,
            prefix,
        )
    }

    /// Connects nothing yet (see the module docs). Fails only on a
    /// description the client refuses (e.g. a CA file without a
    /// certificate).
    pub fn connect(target: Target, timeout: Duration, prefix: &str) -> Result<Redis, StoreError> {
        let sentinel = matches!(target.topology, Topology::Sentinel { .. });
        let cluster = matches!(target.topology, Topology::Cluster(_));
        let connector = Connector::new(target, timeout).map_err(unavailable)?;
        Ok(Redis {
            connector: tokio::sync::Mutex::new(connector),
            conn: Mutex::new(None),
            sentinel,
            cluster,
            timeout,
            prefix: prefix.to_string(),
            logged: AtomicU64::new(0),
        })
    }

    pub fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}{kind}{rest}", self.prefix)
    }

    fn cached(&self) -> Option<Conn> {
        self.conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn conn(&self) -> Result<Conn, StoreError> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let made = tokio::time::timeout(self.timeout, async {
            let mut connector = self.connector.lock().await;
            if let Some(c) = self.cached() {
                return Ok(c);
            }
            let c = connector.connect(self.timeout).await?;
            *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = Some(c.clone());
            Ok::<_, redis::RedisError>(c)
        })
        .await;
        match made {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => {
                self.log_failure(&e);
                Err(unavailable(e))
            }
            Err(_) => Err(unavailable(TimedOut(self.timeout))),
        }
    }

    /// Logs why Redis cannot be reached (a refused certificate, a wrong
    /// password, no master known to the sentinels), at most every 10 s.
    fn log_failure(&self, e: &redis::RedisError) {
        let now = now_ms();
        let last = self.logged.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 10_000
            && self
                .logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(error = %describe(e), "redis unreachable");
        }
    }

    /// After a failed call: with Sentinel, forget the connection so the
    /// next call asks the sentinels for the (possibly new) master.
    fn failed(&self, e: Option<&redis::RedisError>) {
        if let Some(e) = e {
            self.log_failure(e);
        }
        if self.sentinel {
            *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// Runs a script (EVALSHA, loading it again after a Redis restart) with
    /// the timeout.
    async fn invoke<T: FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut c = self.conn().await?;
        match tokio::time::timeout(self.timeout, inv.invoke_async(&mut c)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.failed(Some(&e));
                Err(unavailable(e))
            }
            Err(_) => {
                self.failed(None);
                Err(unavailable(TimedOut(self.timeout)))
            }
        }
    }

    /// Runs one command with the timeout.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut c = self.conn().await?;
        match tokio::time::timeout(self.timeout, cmd.query_async(&mut c)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.failed(Some(&e));
                Err(unavailable(e))
            }
            Err(_) => {
                self.failed(None);
                Err(unavailable(TimedOut(self.timeout)))
            }
        }
    }

    /// With Redis Cluster, the primaries (`host`, `port`) from `CLUSTER
    /// NODES`; otherwise empty.
    async fn primaries(&self) -> Result<Vec<(String, u16)>, StoreError> {
        if !self.cluster {
            return Ok(Vec::new());
        }
        let text: String = self.query(redis::cmd("CLUSTER").arg("NODES")).await?;
        Ok(cluster_primaries(&text))
    }

    /// Runs `cmd` on the primary at `host:port` (cluster) or on the one
    /// server.
    async fn query_on<T: FromRedisValue>(
        &self,
        node: Option<&(String, u16)>,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        let Some((host, port)) = node else {
            return self.query(cmd).await;
        };
        let Conn::Cluster(mut c) = self.conn().await? else {
            return self.query(cmd).await;
        };
        use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: host.clone(),
            port: *port,
        });
        let v = tokio::time::timeout(self.timeout, c.route_command(cmd, route))
            .await
            .map_err(|_| unavailable(TimedOut(self.timeout)))?
            .map_err(unavailable)?;
        T::from_redis_value(&v).map_err(unavailable)
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

/// The error and its causes on one line (the TLS reason of a refused
/// certificate sits in the sources). Never holds the URL or a password.
fn describe(e: &redis::RedisError) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}

/// The primaries in `CLUSTER NODES` output: `id host:port@cport flags
/// master ...`, skipping failed ones.
fn cluster_primaries(text: &str) -> Vec<(String, u16)> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (_id, addr, flags) = (f.next()?, f.next()?, f.next()?);
            let flags: Vec<&str> = flags.split(',').collect();
            if !flags.contains(&"master") || flags.iter().any(|x| x.starts_with("fail")) {
                return None;
            }
            let addr = addr.split('@').next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some((host.to_string(), port.parse().ok()?))
        })
        .collect()
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

/// Every-session index: add the id scored by its absolute expiry, drop
/// the ids past theirs; the set lives as long as its longest session.
/// KEYS: index. ARGV: id, expires (Unix s), now (Unix s), ttl seconds.
static ALL_INDEX: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[4]) then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
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

/// A session hash's `d`, `exp` and `seen` (`HMGET`).
type Fields = (Option<String>, Option<u64>, Option<u64>);

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
    /// When this replica last made sure older sessions are indexed (Unix
    /// s; 0 = never): see [`RedisStore::backfill`].
    backfilled: AtomicU64,
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
            backfilled: AtomicU64::new(0),
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

    fn email_key(&self, email: &str) -> String {
        self.redis.key("e:", &email.trim().to_lowercase())
    }

    fn all_key(&self) -> String {
        self.redis.key("i:", "all")
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
        self.index(&s.id, &s.identity, s.expires, now).await
    }

    /// Adds session `id` to the subject, email and every-session indexes;
    /// each lives as long as its longest session.
    async fn index(
        &self,
        id: &str,
        identity: &Identity,
        expires: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        let index_ttl = expires.saturating_sub(crate::clock::now_unix()).max(60);
        let _: i64 = self
            .redis
            .invoke(
                INDEX
                    .key(self.subject_key(&identity.subject))
                    .arg(id)
                    .arg(index_ttl),
            )
            .await?;
        if let Some(email) = identity.email.as_deref().filter(|e| !e.trim().is_empty()) {
            let _: i64 = self
                .redis
                .invoke(INDEX.key(self.email_key(email)).arg(id).arg(index_ttl))
                .await?;
        }
        let _: i64 = self
            .redis
            .invoke(
                ALL_INDEX
                    .key(self.all_key())
                    .arg(id)
                    .arg(expires)
                    .arg(now)
                    .arg(index_ttl),
            )
            .await?;
        Ok(())
    }

    /// Indexes sessions written without the list indexes (by an authgate
    /// from before them, e.g. an old replica during a rolling upgrade): one
    /// SCAN of `s:*` (the sessions gauge already scans so every 30 s), at
    /// most once an hour per Redis (the marker `i:indexed`) and per
    /// replica, and only when someone lists.
    async fn backfill(&self, now: u64) -> Result<(), StoreError> {
        const EVERY: u64 = 3600;
        let wall = crate::clock::now_unix();
        let last = self.backfilled.load(Ordering::Relaxed);
        if last != 0 && wall.saturating_sub(last) < EVERY {
            return Ok(());
        }
        let marker = self.redis.key("i:", "indexed");
        let done: i64 = self.redis.query(redis::cmd("EXISTS").arg(&marker)).await?;
        if done == 0 {
            let head = self.redis.key("s:", "{");
            for key in self.scan_sessions().await? {
                let Some(id) = key.strip_prefix(&head).and_then(|r| r.strip_suffix('}')) else {
                    continue;
                };
                let Ok((Some(data), Some(exp))) = self
                    .redis
                    .query::<(Option<String>, Option<u64>)>(
                        redis::cmd("HMGET").arg(&key).arg("d").arg("exp"),
                    )
                    .await
                else {
                    continue;
                };
                let Ok(stored) = serde_json::from_str::<Stored>(&data) else {
                    continue;
                };
                if now < exp {
                    self.index(id, &stored.identity, exp, now).await?;
                }
            }
            let _: () = self
                .redis
                .query(redis::cmd("SET").arg(&marker).arg(1).arg("EX").arg(EVERY))
                .await?;
        }
        self.backfilled.store(wall, Ordering::Relaxed);
        Ok(())
    }

    /// The live sessions of the index `key` (a set, or the `i:all` sorted
    /// set), dropping from it the ids whose session has gone.
    async fn list_index(
        &self,
        key: &str,
        sorted: bool,
        user: Option<&str>,
        now: u64,
    ) -> Result<Vec<Summary>, StoreError> {
        use futures_util::StreamExt as _;
        let ids: Vec<String> = if sorted {
            let _: i64 = self
                .redis
                .query(redis::cmd("ZREMRANGEBYSCORE").arg(key).arg("-inf").arg(now))
                .await?;
            self.redis
                .query(redis::cmd("ZRANGE").arg(key).arg(0).arg(-1))
                .await?
        } else {
            self.redis.query(redis::cmd("SMEMBERS").arg(key)).await?
        };
        // Concurrent reads on the one multiplexed connection (pipelined).
        let read = futures_util::stream::iter(ids)
            .map(|id| async move {
                let got: Result<Fields, StoreError> = self
                    .redis
                    .query(
                        redis::cmd("HMGET")
                            .arg(self.session_key(&id))
                            .arg("d")
                            .arg("exp")
                            .arg("seen"),
                    )
                    .await;
                (id, got)
            })
            .buffered(32)
            .collect::<Vec<_>>()
            .await;
        let idle = Some(self.idle_secs).filter(|&i| i > 0);
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (id, got) in read {
            let (Some(data), Some(exp), Some(seen)) = got? else {
                gone.push(id);
                continue;
            };
            if now >= exp || idle.is_some_and(|i| now.saturating_sub(seen) >= i) {
                continue;
            }
            let Ok(stored) = serde_json::from_str::<Stored>(&data) else {
                continue;
            };
            if user.is_some_and(|u| !is_user(&stored.identity, u)) {
                continue;
            }
            out.push(Summary::of(
                &id,
                &stored.identity,
                stored.created,
                stored.expires,
                seen,
                idle,
            ));
        }
        if !gone.is_empty() {
            let cmd = if sorted { "ZREM" } else { "SREM" };
            let _: i64 = self
                .redis
                .query(redis::cmd(cmd).arg(key).arg(&gone))
                .await?;
        }
        Ok(out)
    }

    /// Every live session, or `user`'s (by the email index and the subject
    /// index: `user` may be either).
    async fn list_now(&self, user: Option<&str>, now: u64) -> Result<Vec<Summary>, StoreError> {
        self.backfill(now).await?;
        let Some(user) = user else {
            return self.list_index(&self.all_key(), true, None, now).await;
        };
        let mut out = self
            .list_index(&self.email_key(user), false, Some(user), now)
            .await?;
        for s in self
            .list_index(&self.subject_key(user), false, Some(user), now)
            .await?
        {
            if !out.iter().any(|o| o.id() == s.id()) {
                out.push(s);
            }
        }
        Ok(out)
    }

    async fn get_now(&self, id: &str, now: u64) -> Result<Option<Arc<Session>>, StoreError> {
        let key = self.session_key(id);
        // The hot path is a plain HMGET (no script): the last use is
        // recorded at most once a second, so most requests within that
        // second only read. Anything else (a use to record, an expired or
        // idle session to delete) goes through the GET script.
        let (data, exp, seen): (Option<String>, Option<u64>, Option<u64>) = self
            .redis
            .query(
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("d")
                    .arg("exp")
                    .arg("seen"),
            )
            .await?;
        let data = match (data, exp, seen) {
            (None, _, _) => None,
            (Some(d), Some(exp), Some(seen))
                if now <= seen
                    && now < exp
                    && (self.idle_secs == 0 || now.saturating_sub(seen) < self.idle_secs) =>
            {
                Some(d)
            }
            _ => {
                self.redis
                    .invoke(GET.key(&key).arg(now).arg(self.idle_secs))
                    .await?
            }
        };
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
                    .arg(crate::clock::now_unix()),
            )
            .await?;
        Ok(r == 1)
    }

    async fn revoke_subject_now(&self, target: LogoutTarget<'_>) -> Result<usize, StoreError> {
        let key = self.subject_key(target.subject);
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
            if target.matches(&stored.identity) && self.revoke_now(&id).await? {
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
        Ok(self.scan_sessions().await?.len())
    }

    /// Every `s:` key, by SCAN (O(keys)); on every primary of a cluster.
    async fn scan_sessions(&self) -> Result<Vec<String>, StoreError> {
        let pattern = self.redis.key("s:", "*");
        let primaries = self.redis.primaries().await?;
        let nodes: Vec<Option<&(String, u16)>> = if primaries.is_empty() {
            vec![None]
        } else {
            primaries.iter().map(Some).collect()
        };
        let mut out = Vec::new();
        for node in nodes {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = self
                    .redis
                    .query_on(
                        node,
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(1000),
                    )
                    .await?;
                out.extend(keys);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(out)
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
        target: LogoutTarget<'a>,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(self.revoke_subject_now(target))
    }

    fn list<'a>(
        &'a self,
        user: Option<&'a str>,
        now: u64,
    ) -> BoxFuture<'a, Result<Vec<Summary>, StoreError>> {
        Box::pin(self.list_now(user, now))
    }

    fn len(&self) -> BoxFuture<'_, usize> {
        Box::pin(async move { self.len_now().await.unwrap_or(0) })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.redis.ping())
    }
}

#[cfg(test)]
mod tests {
    use super::cluster_primaries;

    #[test]
    fn cluster_nodes_output_gives_the_live_primaries() {
        let cases: &[(&str, &[(&str, u16)])] = &[
            ("", &[]),
            (
                "07c3 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460\n\
                 67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922\n\
                 292f 127.0.0.1:30004@40004 slave 07c3 0 1426238318243 1 connected\n",
                &[("127.0.0.1", 30001), ("127.0.0.1", 30002)],
            ),
            (
                "a 10.0.0.1:6379@16379 master,fail - 0 0 1 connected\n\
                 b 10.0.0.2:6379@16379 master,fail? - 0 0 1 connected\n\
                 c ::1:7000@17000 master - 0 0 3 connected 0-16383\n",
                &[("::1", 7000)],
            ),
            ("garbage\nd host:notaport@1 master\n", &[]),
        ];
        for (text, want) in cases {
            let got = cluster_primaries(text);
            let want: Vec<(String, u16)> = want.iter().map(|(h, p)| (h.to_string(), *p)).collect();
            assert_eq!(got, want, "{text:?}");
        }
    }
}
