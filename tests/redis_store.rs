//! The Redis store against a real `redis-server` (started here as a plain
//! process on a free loopback port, private data dir, killed on drop):
//! the same store suite as the in-memory store, and two authgate replicas
//! sharing one Redis (sessions, logout, SAML replay ids, the login
//! throttle), including Redis going away and coming back.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use authgate::saml::ReplayCache;
use authgate::session::{HeaderNames, MemoryStore, Redis, RedisStore, Store};
use common::client::{get, send, Got};
use common::cookies::{cookie_pair, csrf_of, form};
use common::gate::{config_text, identity, load_config, login, Gate, Keys};
use common::ports::free_port;
use common::redis::RedisServer;
use common::store_suite::{session, store_suite};
use common::upstream::Upstream;

// ---------------------------------------------------------------------------
// The store suite, run against both stores.

#[tokio::test]
async fn store_suite_memory() {
    store_suite(&|idle| Arc::new(MemoryStore::new(idle)) as Arc<dyn Store>).await;
}

#[tokio::test]
async fn store_suite_redis() {
    let server = RedisServer::start();
    let n = std::sync::atomic::AtomicUsize::new(0);
    store_suite(&|idle| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let redis = server.handle(&format!("suite{i}:"));
        Arc::new(RedisStore::new(redis, HeaderNames::default(), idle)) as Arc<dyn Store>
    })
    .await;
}

#[tokio::test]
async fn redis_keys_expire_with_their_sessions() {
    let server = RedisServer::start();
    let redis = server.handle("ttl:");
    let store = RedisStore::new(Arc::clone(&redis), HeaderNames::default(), Duration::ZERO);
    let now = authgate::clock::now_unix();
    let s = session("jane", None, now, 120);
    store.insert(Arc::clone(&s)).await.expect("insert");
    let ttl: i64 = redis
        .query(redis::cmd("TTL").arg(format!("ttl:s:{{{}}}", s.id)))
        .await
        .expect("ttl");
    assert!((100..=120).contains(&ttl), "session key ttl {ttl}");
    let ttl: i64 = redis
        .query(redis::cmd("TTL").arg("ttl:u:jane"))
        .await
        .expect("ttl");
    assert!((60..=120).contains(&ttl), "subject index ttl {ttl}");
    store.revoke(&s.id).await.expect("revoke");
    let ttl: i64 = redis
        .query(redis::cmd("TTL").arg(format!("ttl:r:{{{}}}", s.id)))
        .await
        .expect("ttl");
    assert!((60..=120).contains(&ttl), "tombstone ttl {ttl}");
    // A replay id lives until the assertion's expiry.
    assert!(redis.first_use("id-1", now + 300, now).await.expect("set"));
    let ttl: i64 = redis
        .query(redis::cmd("TTL").arg("ttl:a:id-1"))
        .await
        .expect("ttl");
    assert!((290..=300).contains(&ttl), "replay ttl {ttl}");
}

// ---------------------------------------------------------------------------
// Two replicas sharing one Redis.

fn redis_toml(server: &RedisServer, extra: &str) -> String {
    format!(
        "[session]\nstore = \"redis\"\nredis_url = {:?}\nredis_timeout = \"300ms\"\n{extra}",
        server.url()
    )
}

/// `config_text` puts `[session]` first; the Redis keys go into it.
fn replica_config(keys: &Keys, upstream: &str, server: &RedisServer, extra: &str) -> String {
    let text = config_text(keys, upstream, extra);
    let redis = redis_toml(server, "");
    let redis = redis.trim_start_matches("[session]\n");
    text.replacen("[session]\n", &format!("[session]\n{redis}"), 1)
}

async fn replicas(server: &RedisServer, up: &Upstream, extra: &str) -> (Gate, Gate) {
    let ka = Keys::new();
    let text = replica_config(&ka, &up.url(), server, extra);
    // Replica B uses A's session secret and signing key.
    let kb = ka.share();
    let a = Gate::start_with(ka, text.clone(), vec![]).await;
    let b = Gate::start_with(kb, text, vec![]).await;
    (a, b)
}

async fn status(g: &Gate, path: &str, cookie: &str) -> StatusCode {
    get(&g.url(path), &[("cookie", cookie)]).await.status
}

#[tokio::test]
async fn a_session_from_one_replica_works_on_the_other_and_logout_ends_it_everywhere() {
    let server = RedisServer::start();
    let up = Upstream::start().await;
    let (a, b) = replicas(&server, &up, "").await;
    let cookie = a
        .login(identity(
            "uid=jane,ou=people",
            "jane@example.com",
            Some("annotator"),
            &[],
        ))
        .await;
    assert_eq!(status(&a, "/projects", &cookie).await, StatusCode::OK);
    assert_eq!(status(&b, "/projects", &cookie).await, StatusCode::OK);
    let who = get(&b.url("/_auth/userinfo"), &[("cookie", &cookie)]).await;
    assert_eq!(who.json()["sub"], "uid=jane,ou=people", "{}", who.text());

    let out = get(&b.url("/_auth/logout"), &[("cookie", &cookie)]).await;
    assert!(
        out.status.is_redirection() || out.status.is_success(),
        "{}",
        out.status
    );
    assert_eq!(
        get(
            &a.url("/projects"),
            &[("cookie", &cookie), ("accept", "application/json")]
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&b, "/_auth/userinfo", &cookie).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(a.state.sessions.len().await, 0);

    // SAML Single Logout on one replica ends the subject's sessions on both.
    let saml_bob = || {
        let mut id = identity("bob", "bob@example.com", Some("annotator"), &[]);
        id.method = authgate::identity::Method::Saml;
        id.saml_idp = Some("default".into());
        id
    };
    let c1 = a.login(saml_bob()).await;
    let c2 = b.login(saml_bob()).await;
    assert_eq!(
        b.state
            .sessions
            .revoke_subject(authgate::session::LogoutTarget {
                subject: "bob",
                session_index: None,
                idp: "default",
                first_idp: true,
            })
            .await
            .expect("slo"),
        2
    );
    assert_eq!(
        status(&a, "/_auth/userinfo", &c1).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&a, "/_auth/userinfo", &c2).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_saml_assertion_consumed_on_one_replica_is_a_replay_on_the_other() {
    let server = RedisServer::start();
    let a = server.handle("replay:");
    let b = server.handle("replay:");
    let (ca, cb) = (
        authgate::saml::RedisReplayCache::new(a),
        authgate::saml::RedisReplayCache::new(b),
    );
    let now = authgate::clock::now_unix();
    assert!(ca
        .first_use("_assertion-1", now + 300, now)
        .await
        .expect("a"));
    assert!(!cb
        .first_use("_assertion-1", now + 300, now)
        .await
        .expect("b"));
    assert!(!ca
        .first_use("_assertion-1", now + 300, now)
        .await
        .expect("a again"));
    assert!(cb
        .first_use("_assertion-2", now + 300, now)
        .await
        .expect("other id"));
}

/// One LDAP form POST with an empty password (a credentials failure that
/// needs no directory: it is refused before any bind).
async fn failed_login(g: &Gate, user: &str) -> Got {
    let page = get(&g.url("/_auth/login"), &[("accept", "text/html")]).await;
    let csrf = csrf_of(&page.text());
    let cookie = cookie_pair(&page, "authgate_login").expect("pre-login cookie");
    let body = form(&[
        ("username", user),
        ("password", ""),
        ("rd", "/"),
        ("csrf", &csrf),
    ]);
    let req = Request::post(g.url("/_auth/ldap/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html")
        .header("cookie", cookie)
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    send(req).await
}

const LDAP: &str = r#"
[ldap]
enabled = true
server_uri = "ldaps://127.0.0.1:9"
user_dn_template = "uid=%(user)s,ou=people,dc=example,dc=com"
max_failures = 3
throttle_window = "5m"
"#;

#[tokio::test]
async fn failed_logins_are_counted_across_replicas() {
    let server = RedisServer::start();
    let up = Upstream::start().await;
    let (a, b) = replicas(&server, &up, LDAP).await;
    for g in [&a, &b, &a] {
        let got = failed_login(g, "mallory").await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{}", got.text());
    }
    let got = failed_login(&b, "mallory").await;
    assert_eq!(got.status, StatusCode::TOO_MANY_REQUESTS, "{}", got.text());
    assert!(got.headers.get("retry-after").is_some());
    // Another user is not affected.
    assert_eq!(
        failed_login(&b, "alice").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn redis_down_means_503_then_everything_recovers_by_itself() {
    let mut server = RedisServer::start_with(true);
    let up = Upstream::start().await;
    let (a, b) = replicas(&server, &up, LDAP).await;
    let cookie = a
        .login(identity(
            "uid=jane,ou=people",
            "jane@example.com",
            Some("annotator"),
            &[],
        ))
        .await;
    assert_eq!(status(&b, "/projects", &cookie).await, StatusCode::OK);
    assert_eq!(status(&a, "/_auth/readyz", "").await, StatusCode::OK);

    server.stop();
    // Signed-in users: refused, never served without the revocation check.
    let got = get(
        &b.url("/projects"),
        &[("cookie", &cookie), ("accept", "text/html")],
    )
    .await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        got.text().contains("temporarily unavailable"),
        "{}",
        got.text()
    );
    assert_eq!(
        up.count(),
        1,
        "nothing reached the upstream while Redis was down"
    );
    // Readiness says so.
    let ready = get(&a.url("/_auth/readyz"), &[]).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["checks"]["session_store"], "unreachable");
    // New logins: a clear 503 page.
    let got = failed_login(&a, "mallory").await;
    assert_eq!(
        got.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        got.text()
    );
    assert!(
        got.text().contains("temporarily unavailable"),
        "{}",
        got.text()
    );
    assert!(a
        .state
        .start_session(identity("x", "x@example.com", None, &[]))
        .await
        .is_err());

    // Same data dir, append-only file: the session survives the restart,
    // and both replicas reconnect without help.
    server.restart();
    for g in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = status(g, "/projects", &cookie).await;
            if s == StatusCode::OK {
                break;
            }
            assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
            assert!(Instant::now() < deadline, "no recovery within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status(g, "/_auth/readyz", "").await, StatusCode::OK);
    }
    assert_eq!(
        failed_login(&a, "mallory").await.status,
        StatusCode::UNAUTHORIZED
    );
    let fresh = b.login(identity("y", "y@example.com", None, &[])).await;
    assert_eq!(status(&a, "/_auth/userinfo", &fresh).await, StatusCode::OK);
}

#[tokio::test]
async fn authgate_starts_while_redis_is_down_and_reports_not_ready() {
    let port = free_port();
    let up = Upstream::start().await;
    let keys = Keys::new();
    let text = config_text(&keys, &up.url(), "").replacen(
        "[session]\n",
        &format!("[session]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}\"\nredis_timeout = \"200ms\"\n"),
        1,
    );
    let g = Gate::start_with(keys, text, vec![]).await;
    let ready = get(&g.url("/_auth/readyz"), &[]).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["ready"], false);
    assert_eq!(status(&g, "/_auth/healthz", "").await, StatusCode::OK);
}

fn config_error(session: &str) -> String {
    let keys = Keys::new();
    let text = config_text(&keys, "http://127.0.0.1:9", "").replacen(
        "[session]\n",
        &format!("[session]\n{session}\n"),
        1,
    );
    match load_config(&text, vec![], None) {
        Ok(_) => panic!("accepted: {session}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn redis_settings_are_checked_at_start_without_echoing_the_password() {
    let e = config_error("store = \"redis\"");
    assert!(e.contains("session.redis_url"), "{e}");
    let e = config_error("store = \"redis\"\nredis_url = \"http://:hunter2@127.0.0.1\"");
    assert!(
        e.contains("session.redis_url") && e.contains("rediss://"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
    let e = config_error(
        "store = \"redis\"\nredis_url = \"redis://127.0.0.1\"\nredis_timeout = \"soon\"",
    );
    assert!(e.contains("session.redis_timeout"), "{e}");
    let e = config_error("store = \"memcached\"");
    assert!(
        e.contains("session.store") && e.contains("\"redis\""),
        "{e}"
    );
}

/// Authenticated-request throughput through authgate with the in-memory
/// store and with the Redis store (one revocation check per request), same
/// machine, same run. A measurement, not a gate (shared CI cores make
/// ratios noisy): `cargo test --release --test redis_store -- --ignored
/// --nocapture throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_memory_vs_redis() {
    let server = RedisServer::start();
    let up = Upstream::start().await;
    let mem = Gate::start(&up.url(), "").await;
    let (red, _other) = replicas(&server, &up, "").await;
    let mut rates = Vec::new();
    for (name, g) in [
        ("memory", &mem),
        ("redis", &red),
        ("memory", &mem),
        ("redis", &red),
    ] {
        let cookie = g
            .login(identity(
                "uid=jane,ou=people",
                "jane@example.com",
                Some("annotator"),
                &[],
            ))
            .await;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let url: http::Uri = g.url("/projects/1").parse().expect("uri");
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (client, url, cookie) = (client.clone(), url.clone(), cookie.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let req = Request::get(url.clone())
                        .header("cookie", &cookie)
                        .body(Full::new(Bytes::new()))
                        .expect("request");
                    let resp = client.request(req).await.expect("response");
                    assert_eq!(resp.status(), StatusCode::OK);
                    let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
                    n += 1;
                }
                n
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("join");
        }
        let rate = total as f64 / 3.0;
        println!("{name}: {rate:.0} authenticated requests/s");
        rates.push((name, rate));
    }
    let best = |n: &str| {
        rates
            .iter()
            .filter(|(k, _)| *k == n)
            .map(|(_, r)| *r)
            .fold(0.0, f64::max)
    };
    println!(
        "redis / memory = {:.2}",
        best("redis") / best("memory").max(1.0)
    );
}

// ---------------------------------------------------------------------------
// Session control across replicas.

async fn admin(g: &Gate, method: &str, path: &str, body: &str) -> Got {
    let url = format!("http://{}{path}", g.metrics_addr.expect("metrics listener"));
    let b = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    send(
        b.body(Full::new(Bytes::from(body.to_string())))
            .expect("request"),
    )
    .await
}

fn listed(got: &Got) -> Vec<String> {
    let mut v: Vec<String> = got.json()["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", got.text()))
        .iter()
        .map(|s| s["sid"].as_str().expect("sid").to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn sessions_listed_and_revoked_through_one_replica_end_at_once_on_the_other() {
    let server = RedisServer::start();
    let up = Upstream::start().await;
    let (a, b) = replicas(&server, &up, "").await;
    let start = |g: &Gate, subject: &str, email: &str| {
        let id = identity(subject, email, Some("annotator"), &[]);
        let state = Arc::clone(&g.state);
        async move { login(&state, id).await }
    };
    // Jane twice (LDAP DN subject, mixed-case email), on both replicas; Bob; Carol.
    let (j1, jc1) = start(&a, "uid=jane,ou=people", "Jane@Example.com").await;
    let (j2, jc2) = start(&b, "uid=jane,ou=people", "jane@example.com").await;
    let (b1, bc1) = start(&a, "uid=bob,ou=people", "bob@example.com").await;
    let (_c1, cc1) = start(&b, "uid=carol,ou=people", "carol@example.com").await;
    for (g, c) in [(&a, &jc1), (&b, &jc1), (&a, &jc2), (&b, &bc1), (&a, &cc1)] {
        assert_eq!(status(g, "/projects", c).await, StatusCode::OK);
    }

    // Each replica lists every session, from the shared indexes.
    let from_a = admin(&a, "GET", "/admin/sessions", "").await;
    assert_eq!(from_a.json()["store"], "redis", "{}", from_a.text());
    assert_eq!(listed(&from_a).len(), 4);
    assert_eq!(
        listed(&from_a),
        listed(&admin(&b, "GET", "/admin/sessions", "").await)
    );
    assert!(!from_a.text().contains(&j1), "prefixes only");
    let mut want = vec![j1[..12].to_string(), j2[..12].to_string()];
    want.sort();
    let by_email = admin(&b, "GET", "/admin/sessions?user=JANE%40example.com", "").await;
    assert_eq!(listed(&by_email), want, "{}", by_email.text());
    let by_dn = admin(
        &a,
        "GET",
        "/admin/sessions?user=uid%3Djane%2Cou%3Dpeople",
        "",
    )
    .await;
    assert_eq!(listed(&by_dn), want, "{}", by_dn.text());
    let jane = &by_email.json()["sessions"][0];
    assert!(jane["last_seen"].as_u64() >= jane["created"].as_u64());

    // Revoked through A by sid prefix: the next request on B fails.
    let r = admin(
        &a,
        "POST",
        "/admin/sessions/revoke",
        &format!("{{\"sid\":\"{}\"}}", &b1[..12]),
    )
    .await;
    assert_eq!(r.json()["revoked"], 1, "{}", r.text());
    assert_eq!(
        status(&b, "/projects", &bc1).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&a, "/projects", &bc1).await,
        StatusCode::UNAUTHORIZED
    );

    // By user through B: both of Jane's end on A (A had just served them,
    // so its local decode cache is warm).
    assert_eq!(status(&a, "/projects", &jc2).await, StatusCode::OK);
    let r = admin(
        &b,
        "POST",
        "/admin/sessions/revoke",
        "{\"user\":\"jane@example.com\"}",
    )
    .await;
    assert_eq!(r.json()["revoked"], 2, "{}", r.text());
    assert_eq!(
        status(&a, "/projects", &jc1).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&a, "/projects", &jc2).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(&a, "/projects", &cc1).await, StatusCode::OK);
    let left = admin(&a, "GET", "/admin/sessions", "").await;
    assert_eq!(listed(&left).len(), 1, "{}", left.text());

    // All, through A: Carol (signed in on B) is out on B.
    let r = admin(&a, "POST", "/admin/sessions/revoke", "{\"all\":true}").await;
    assert_eq!(r.json()["revoked"], 1, "{}", r.text());
    assert_eq!(
        status(&b, "/projects", &cc1).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(listed(&admin(&b, "GET", "/admin/sessions", "").await).is_empty());

    // Listing drops the ids of ended sessions from the indexes.
    let redis = server.handle("authgate:");
    let left: Vec<String> = redis
        .query(redis::cmd("ZRANGE").arg("authgate:i:all").arg(0).arg(-1))
        .await
        .expect("zrange");
    assert!(left.is_empty(), "{left:?}");
    let none = admin(&a, "GET", "/admin/sessions?user=jane@example.com", "").await;
    assert!(listed(&none).is_empty(), "{}", none.text());
    let in_email: Vec<String> = redis
        .query(redis::cmd("SMEMBERS").arg("authgate:e:jane@example.com"))
        .await
        .expect("smembers");
    assert!(in_email.is_empty(), "{in_email:?}");
}

/// A session as an authgate from before the list indexes wrote it: the
/// hash only (and the subject index).
async fn old_style_session(redis: &Redis, prefix: &str, email: &str, now: u64) -> String {
    let id = authgate::session::new_session_id();
    let identity = identity(&format!("uid={email}"), email, Some("annotator"), &[]);
    let data = serde_json::json!({
        "identity": identity, "created": now, "expires": now + 3600, "identity_at": now,
    });
    let _: i64 = redis
        .query(
            redis::cmd("HSET")
                .arg(format!("{prefix}s:{{{id}}}"))
                .arg("d")
                .arg(data.to_string())
                .arg("exp")
                .arg(now + 3600)
                .arg("seen")
                .arg(now),
        )
        .await
        .expect("hset");
    id
}

#[tokio::test]
async fn listing_reads_indexes_and_indexes_older_sessions_once() {
    let server = RedisServer::start();
    let redis = server.handle("idx:");
    let store = RedisStore::new(
        Arc::clone(&redis),
        HeaderNames::default(),
        Duration::from_secs(600),
    );
    let now = authgate::clock::now_unix();
    let s = session("uid=jane", None, now, 3600);
    store.insert(Arc::clone(&s)).await.expect("insert");
    let old = old_style_session(&redis, "idx:", "Old@Example.com", now).await;

    // The first list indexes what an older authgate wrote (one SCAN).
    let all = store.list(None, now + 1).await.expect("list");
    let mut ids: Vec<&str> = all.iter().map(|x| x.id()).collect();
    ids.sort();
    let mut want = vec![s.id.as_str(), old.as_str()];
    want.sort();
    assert_eq!(ids, want);
    let by_email = store
        .list(Some("old@example.com"), now + 1)
        .await
        .expect("list");
    assert_eq!(by_email.len(), 1);
    assert_eq!(by_email[0].id(), old);
    let marker: i64 = redis
        .query(redis::cmd("TTL").arg("idx:i:indexed"))
        .await
        .expect("ttl");
    assert!((3500..=3600).contains(&marker), "marker ttl {marker}");

    // Later lists read the indexes only: a session written without them
    // now is not found until the marker expires.
    let _later = old_style_session(&redis, "idx:", "late@example.com", now).await;
    assert_eq!(store.list(None, now + 2).await.expect("list").len(), 2);
    let other = RedisStore::new(
        Arc::clone(&redis),
        HeaderNames::default(),
        Duration::from_secs(600),
    );
    assert_eq!(
        other.list(None, now + 2).await.expect("list").len(),
        2,
        "the marker is shared by every replica"
    );

    let mine = store
        .list(Some("JANE@example.com"), now + 1)
        .await
        .expect("list");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].created, now);
    // Idle past the timeout: no longer listed.
    assert!(store.list(None, now + 601).await.expect("list").is_empty());
    let ttl: i64 = redis
        .query(redis::cmd("TTL").arg("idx:e:jane@example.com"))
        .await
        .expect("ttl");
    assert!((3000..=3600).contains(&ttl), "email index ttl {ttl}");
    let ttl: i64 = redis
        .query(redis::cmd("TTL").arg("idx:i:all"))
        .await
        .expect("ttl");
    assert!((3000..=3600).contains(&ttl), "all-sessions index ttl {ttl}");
}
