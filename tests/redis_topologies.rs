//! Redis deployments beyond one plain endpoint, each against real
//! `redis-server` processes on free loopback ports (private dirs, killed on
//! drop): `rediss://` with a CA the test generates (and a wrong CA, which
//! must be refused), password and ACL-user authentication, Redis Sentinel
//! in front of a master and a replica (including a promotion of the
//! replica), and a three-primary Redis Cluster.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;

use authgate::session::redis::{Target, Topology};
use authgate::session::{HeaderNames, Redis, RedisStore, Store};
use common::client::get;
use common::gate::{config_text, identity, load_config, Gate, Keys};
use common::pki::Pki;
use common::ports::free_port;
use common::process::{until, Proc};
use common::redis::{cli, redis_proc, redis_server};
use common::store_suite;
use common::upstream::Upstream;

const PASSWORD: &str = "default-secret";
const ACL_PASSWORD: &str = "acl-secret";

/// A TLS-only `redis-server` (no plain port) requiring `PASSWORD` for the
/// default user, with an ACL user `authgate` (`ACL_PASSWORD`) limited to
/// keys under `authgate:`.
struct TlsRedis {
    _proc: Proc,
    _dir: tempfile::TempDir,
    port: u16,
}

impl TlsRedis {
    fn start(pki: &Pki) -> TlsRedis {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let proc = {
            let mut args: Vec<String> = vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                String::new(),
                "--dir".into(),
                dir.path().display().to_string(),
                "--tls-cert-file".into(),
                pki.path("server.pem"),
                "--tls-key-file".into(),
                pki.path("server.key"),
                "--tls-ca-cert-file".into(),
                pki.path("ca.pem"),
                "--tls-auth-clients".into(),
                "no".into(),
                "--requirepass".into(),
                PASSWORD.into(),
            ];
            // `user authgate on >PASSWORD ~authgate:* +@all`, one word per
            // argument.
            args.extend([
                "--user".to_string(),
                "authgate".into(),
                "on".into(),
                format!(">{ACL_PASSWORD}"),
                "~authgate:*".into(),
                "+@all".into(),
            ]);
            redis_proc(
                Command::new("redis-server")
                    .args(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )
        };
        let (p, ca) = (port.to_string(), pki.path("ca.pem"));
        until("TLS redis-server answers", Duration::from_secs(10), || {
            cli(&["--tls", "--cacert", &ca, "-p", &p, "-a", PASSWORD, "PING"])
                .is_some_and(|t| t == "PONG")
        });
        TlsRedis {
            _proc: proc,
            _dir: dir,
            port,
        }
    }
}

/// The error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

fn handle(url: &str, ca: Option<&str>, prefix: &str) -> Redis {
    let info: redis::ConnectionInfo = url.parse().expect("url");
    Redis::connect(
        Target {
            topology: Topology::Single(info),
            ca: ca.map(|p| std::fs::read(p).expect("ca")),
        },
        Duration::from_secs(2),
        prefix,
    )
    .expect("redis")
}

/// `config_text` with `session` lines put into its `[session]` table.
fn gate_config(keys: &Keys, upstream: &str, session: &str) -> String {
    config_text(keys, upstream, "").replacen(
        "[session]\n",
        &format!("[session]\nstore = \"redis\"\nredis_timeout = \"2s\"\n{session}\n"),
        1,
    )
}

async fn status(g: &Gate, path: &str, cookie: &str) -> StatusCode {
    get(
        &g.url(path),
        &[("cookie", cookie), ("accept", "application/json")],
    )
    .await
    .status
}

// ---------------------------------------------------------------------------
// TLS and authentication.

#[tokio::test]
async fn rediss_with_the_configured_ca_and_password_or_acl_user_shares_sessions() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki);
    let up = Upstream::start().await;
    let ka = Keys::new();
    let kb = ka.share();
    let ca = pki.path("ca.pem");
    // Replica A: the default user's password in the URL.
    let a = gate_config(
        &ka,
        &up.url(),
        &format!(
            "redis_url = \"rediss://:{PASSWORD}@127.0.0.1:{}/\"\nredis_ca_file = {ca:?}",
            server.port
        ),
    );
    // Replica B: an ACL user (name in the URL, password from its own key),
    // allowed only keys under the default prefix `authgate:`; the host name
    // `localhost` is also in the certificate.
    let b = gate_config(
        &kb,
        &up.url(),
        &format!(
            "redis_url = \"rediss://authgate@localhost:{}/\"\nredis_password = {ACL_PASSWORD:?}\nredis_ca_file = {ca:?}",
            server.port
        ),
    );
    let a = Gate::start_with(ka, a, vec![]).await;
    let b = Gate::start_with(kb, b, vec![]).await;
    for g in [&a, &b] {
        let ready = get(&g.url("/_auth/readyz"), &[]).await;
        assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    }
    let cookie = a
        .login(identity("jane", "jane@example.com", Some("annotator"), &[]))
        .await;
    assert_eq!(status(&b, "/projects", &cookie).await, StatusCode::OK);
    assert_eq!(status(&a, "/projects", &cookie).await, StatusCode::OK);
    let out = get(&b.url("/_auth/logout"), &[("cookie", &cookie)]).await;
    assert!(out.status.is_redirection() || out.status.is_success());
    assert_eq!(
        status(&a, "/projects", &cookie).await,
        StatusCode::UNAUTHORIZED
    );
    // What B wrote sits under the ACL user's key pattern.
    let keys = cli(&[
        "--tls",
        "--cacert",
        &ca,
        "-p",
        &server.port.to_string(),
        "-a",
        PASSWORD,
        "--scan",
        "--pattern",
        "*",
    ])
    .expect("scan");
    assert!(!keys.is_empty() && keys.lines().all(|k| k.starts_with("authgate:")));
}

#[tokio::test]
async fn rediss_refuses_a_server_certificate_from_another_ca_and_wrong_credentials() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki);
    let url = format!("rediss://:{PASSWORD}@127.0.0.1:{}/", server.port);

    let good = handle(&url, Some(&pki.path("ca.pem")), "authgate:");
    good.ping().await.expect("the right CA is accepted");

    // A CA that did not sign the server certificate, and the system roots.
    for ca in [Some(pki.path("wrong-ca.pem")), None] {
        let bad = handle(&url, ca.as_deref(), "authgate:");
        let e = bad.ping().await.expect_err("certificate refused");
        let text = chain(&e);
        assert!(
            text.contains("certificate") && text.contains("UnknownIssuer"),
            "{text}"
        );
        assert!(!text.contains(PASSWORD), "{text}");
    }
    // Plain redis:// to the TLS port fails too (no downgrade).
    let plain = handle(
        &format!("redis://:{PASSWORD}@127.0.0.1:{}/", server.port),
        None,
        "authgate:",
    );
    assert!(plain.ping().await.is_err());

    // Wrong password, unknown ACL user, and an ACL user outside its keys.
    for url in [
        format!("rediss://:wrong@127.0.0.1:{}/", server.port),
        format!("rediss://nobody:{ACL_PASSWORD}@127.0.0.1:{}/", server.port),
    ] {
        let bad = handle(&url, Some(&pki.path("ca.pem")), "authgate:");
        let e = bad.ping().await.expect_err("credentials refused");
        let text = chain(&e);
        assert!(
            text.contains("WRONGPASS") || text.contains("uthentication"),
            "{text}"
        );
        assert!(
            !text.contains("wrong@") && !text.contains(ACL_PASSWORD),
            "{text}"
        );
    }
    let outside = handle(
        &format!(
            "rediss://authgate:{ACL_PASSWORD}@127.0.0.1:{}/",
            server.port
        ),
        Some(&pki.path("ca.pem")),
        "other:",
    );
    let now = authgate::clock::now_unix();
    let e = outside
        .first_use("id", now + 60, now)
        .await
        .expect_err("key outside the ACL pattern");
    assert!(chain(&e).contains("NOPERM"), "{}", chain(&e));

    // A gate with the wrong CA starts, is not ready, and refuses to serve
    // signed-in users rather than skipping the revocation check.
    let up = Upstream::start().await;
    let keys = Keys::new();
    let text = gate_config(
        &keys,
        &up.url(),
        &format!(
            "redis_url = {url:?}\nredis_ca_file = {:?}",
            pki.path("wrong-ca.pem")
        ),
    );
    let g = Gate::start_with(keys, text, vec![]).await;
    let ready = get(&g.url("/_auth/readyz"), &[]).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(g
        .state
        .start_session(identity("x", "x@example.com", None, &[]))
        .await
        .is_err());
}

fn config_error(session: &str) -> String {
    let keys = Keys::new();
    let text = gate_config(&keys, "http://127.0.0.1:9", session);
    match load_config(&text, vec![], None) {
        Ok(_) => panic!("accepted: {session}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn topology_settings_are_checked_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "hello").expect("write");
    let cases: &[(String, &[&str])] = &[
        (
            format!("redis_url = \"rediss://127.0.0.1:6380\"\nredis_ca_file = {not_pem:?}"),
            &["session.redis_ca_file", "no PEM certificate"],
        ),
        (
            "redis_url = \"rediss://127.0.0.1:6380\"\nredis_ca_file = \"/nonexistent/ca.pem\"".into(),
            &["session.redis_ca_file", "cannot read"],
        ),
        (
            "redis_sentinel_master = \"mymaster\"".into(),
            &["session.redis_sentinel_urls", "required"],
        ),
        (
            "redis_sentinel_urls = [\"redis://127.0.0.1:26379\"]".into(),
            &["session.redis_sentinel_master", "required"],
        ),
        (
            "redis_sentinel_master = \"m\"\nredis_sentinel_urls = [\"redis://127.0.0.1:26379\", \"rediss://127.0.0.1:26380\"]".into(),
            &["session.redis_sentinel_urls", "one scheme"],
        ),
        (
            "redis_sentinel_master = \"m\"\nredis_sentinel_urls = [\"http://:pw1@127.0.0.1:26379\"]".into(),
            &["session.redis_sentinel_urls", "rediss://"],
        ),
        (
            "redis_url = \"redis://127.0.0.1\"\nredis_cluster_urls = [\"redis://127.0.0.1:7000\"]".into(),
            &["session.redis_url", "only one"],
        ),
        (
            "redis_cluster_urls = [\"redis://:pw2@127.0.0.1:notaport\"]".into(),
            &["session.redis_cluster_urls", "not a valid Redis URL"],
        ),
    ];
    for (session, want) in cases {
        let e = config_error(session);
        for w in *want {
            assert!(e.contains(w), "{session}: {e}");
        }
        assert!(!e.contains("pw1") && !e.contains("pw2"), "{e}");
    }
}

// ---------------------------------------------------------------------------
// Redis Sentinel.

const MASTER: &str = "authgate-master";
const SENTINEL_PASSWORD: &str = "sentinel-secret";

/// A master and a replica (both requiring `PASSWORD`) and one sentinel
/// (quorum 1, requiring `SENTINEL_PASSWORD`) that monitors them.
struct SentinelSetup {
    _dir: tempfile::TempDir,
    master_port: u16,
    replica_port: u16,
    sentinel_port: u16,
    _procs: Vec<Proc>,
}

impl SentinelSetup {
    fn start() -> SentinelSetup {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mp, rp, sp) = (free_port(), free_port(), free_port());
        let mut procs = Vec::new();
        for (name, port, extra) in [
            ("master", mp, vec![]),
            (
                "replica",
                rp,
                vec!["--replicaof".to_string(), format!("127.0.0.1 {mp}")],
            ),
        ] {
            let d = dir.path().join(name);
            std::fs::create_dir_all(&d).expect("dir");
            let mut args = vec![
                "--requirepass",
                PASSWORD,
                "--masterauth",
                PASSWORD,
                "--replica-announce-ip",
                "127.0.0.1",
            ];
            args.extend(extra.iter().map(|s| s.as_str()));
            procs.push(redis_server(&d, port, false, &args));
            let p = port.to_string();
            until(&format!("{name} answers"), Duration::from_secs(10), || {
                cli(&["-p", &p, "-a", PASSWORD, "PING"]).is_some_and(|t| t == "PONG")
            });
        }
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sp}\nbind 127.0.0.1\ndir {}\nrequirepass {SENTINEL_PASSWORD}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {mp} 1\n\
                 sentinel auth-pass {MASTER} {PASSWORD}\n\
                 sentinel down-after-milliseconds {MASTER} 2000\n\
                 sentinel failover-timeout {MASTER} 10000\n",
                dir.path().display()
            ),
        )
        .expect("sentinel.conf");
        procs.push(redis_proc(
            Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        ));
        let s = SentinelSetup {
            _dir: dir,
            master_port: mp,
            replica_port: rp,
            sentinel_port: sp,
            _procs: procs,
        };
        // The replica has synced, and the sentinel knows it.
        until("replica in sync", Duration::from_secs(20), || {
            s.redis(rp, &["INFO", "replication"])
                .is_some_and(|t| t.contains("master_link_status:up"))
        });
        until("sentinel sees the replica", Duration::from_secs(30), || {
            s.sentinel(&["SENTINEL", "replicas", MASTER])
                .is_some_and(|t| t.contains(&rp.to_string()) && !t.contains("s_down"))
        });
        s
    }

    fn redis(&self, port: u16, args: &[&str]) -> Option<String> {
        let p = port.to_string();
        let mut a = vec!["-p", &p, "-a", PASSWORD];
        a.extend(args);
        cli(&a)
    }

    fn sentinel(&self, args: &[&str]) -> Option<String> {
        let p = self.sentinel_port.to_string();
        let mut a = vec!["-p", &p, "-a", SENTINEL_PASSWORD];
        a.extend(args);
        cli(&a)
    }

    fn master_port(&self) -> Option<u16> {
        let t = self.sentinel(&["SENTINEL", "get-master-addr-by-name", MASTER])?;
        t.lines().nth(1)?.trim().parse().ok()
    }

    fn config(&self) -> String {
        format!(
            "redis_sentinel_master = \"{MASTER}\"\nredis_sentinel_urls = [\"redis://:{SENTINEL_PASSWORD}@127.0.0.1:{}\"]\nredis_password = {PASSWORD:?}",
            self.sentinel_port
        )
    }
}

#[tokio::test]
async fn sentinel_finds_the_master_and_follows_a_failover() {
    let setup = SentinelSetup::start();
    assert_eq!(setup.master_port(), Some(setup.master_port));
    let up = Upstream::start().await;
    let keys = Keys::new();
    let text = gate_config(&keys, &up.url(), &setup.config());
    let g = Gate::start_with(keys, text, vec![]).await;
    assert_eq!(status(&g, "/_auth/readyz", "").await, StatusCode::OK);
    let cookie = g
        .login(identity("jane", "jane@example.com", Some("annotator"), &[]))
        .await;
    assert_eq!(status(&g, "/projects", &cookie).await, StatusCode::OK);
    // The session went to the master (and from there to the replica).
    let on_master = setup
        .redis(setup.master_port, &["--scan", "--pattern", "authgate:s:*"])
        .expect("scan");
    assert_eq!(on_master.lines().count(), 1, "{on_master}");
    let acked = setup
        .redis(setup.master_port, &["WAIT", "1", "5000"])
        .expect("wait");
    assert_eq!(acked, "1", "the replica acknowledged the writes");

    // Promote the replica (a real failover: the old master is demoted).
    setup
        .sentinel(&["SENTINEL", "failover", MASTER])
        .expect("failover");
    until(
        "the sentinel names the replica as master",
        Duration::from_secs(30),
        || setup.master_port() == Some(setup.replica_port),
    );
    until(
        "the promoted replica is a master",
        Duration::from_secs(30),
        || {
            setup
                .redis(setup.replica_port, &["ROLE"])
                .is_some_and(|t| t.starts_with("master"))
        },
    );
    // Until the sentinel has demoted the old master, a client still
    // connected to it may write there (Redis Sentinel's documented window:
    // such writes are lost); wait for the end state.
    until("the old master is demoted", Duration::from_secs(30), || {
        setup
            .redis(setup.master_port, &["ROLE"])
            .is_some_and(|t| t.starts_with("slave"))
    });
    // authgate follows: the session is served again (503 meanwhile, never
    // served without its check), then writes go to the new master.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status(&g, "/projects", &cookie).await;
        if s == StatusCode::OK {
            break;
        }
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "authgate did not follow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fresh = g
        .login(identity("bob", "bob@example.com", Some("annotator"), &[]))
        .await;
    assert_eq!(status(&g, "/projects", &fresh).await, StatusCode::OK);
    let out = get(&g.url("/_auth/logout"), &[("cookie", &cookie)]).await;
    assert!(out.status.is_redirection() || out.status.is_success());
    assert_eq!(
        status(&g, "/projects", &cookie).await,
        StatusCode::UNAUTHORIZED
    );
    let tomb = setup
        .redis(setup.replica_port, &["--scan", "--pattern", "authgate:*"])
        .expect("scan");
    assert_eq!(
        tomb.lines()
            .filter(|l| l.starts_with("authgate:r:") || l.starts_with("authgate:u:bob"))
            .count(),
        2,
        "logout and the new login recorded on the new master: {tomb}"
    );
    assert_eq!(status(&g, "/_auth/readyz", "").await, StatusCode::OK);
}

// ---------------------------------------------------------------------------
// Redis Cluster.

/// Three primaries (no replicas) on loopback, slots spread by
/// `redis-cli --cluster create`.
struct Cluster {
    _dir: tempfile::TempDir,
    ports: Vec<u16>,
    _procs: Vec<Proc>,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ports = Vec::new();
        let mut procs = Vec::new();
        for i in 0..3 {
            let (port, bus) = (free_port(), free_port());
            let d = dir.path().join(format!("n{i}"));
            std::fs::create_dir_all(&d).expect("dir");
            let bus = bus.to_string();
            procs.push(redis_server(
                &d,
                port,
                false,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                ],
            ));
            let p = port.to_string();
            until("cluster node answers", Duration::from_secs(10), || {
                cli(&["-p", &p, "PING"]).is_some_and(|t| t == "PONG")
            });
            ports.push(port);
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(nodes.iter().map(|s| s.as_str()));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = Command::new("redis-cli")
            .args(&args)
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        for p in &ports {
            let p = p.to_string();
            until("cluster state ok", Duration::from_secs(30), || {
                cli(&["-p", &p, "CLUSTER", "INFO"]).is_some_and(|t| t.contains("cluster_state:ok"))
            });
        }
        Cluster {
            _dir: dir,
            ports,
            _procs: procs,
        }
    }

    fn handle(&self, prefix: &str) -> Arc<Redis> {
        let nodes = vec![format!("redis://127.0.0.1:{}", self.ports[0])
            .parse()
            .expect("url")];
        Arc::new(
            Redis::connect(
                Target {
                    topology: Topology::Cluster(nodes),
                    ca: None,
                },
                Duration::from_secs(2),
                prefix,
            )
            .expect("cluster"),
        )
    }

    fn keys_on(&self, port: u16, pattern: &str) -> usize {
        cli(&["-p", &port.to_string(), "--scan", "--pattern", pattern])
            .map(|t| t.lines().filter(|l| !l.is_empty()).count())
            .unwrap_or(0)
    }
}

#[tokio::test]
async fn the_store_suite_passes_on_a_redis_cluster_and_keys_spread_over_its_primaries() {
    let cluster = Cluster::start();
    let n = std::sync::atomic::AtomicUsize::new(0);
    store_suite::store_suite(&|idle| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let redis = cluster.handle(&format!("suite{i}:"));
        Arc::new(RedisStore::new(redis, HeaderNames::default(), idle)) as Arc<dyn Store>
    })
    .await;

    // Many sessions: spread over every primary, counted across all of them.
    let redis = cluster.handle("spread:");
    let store = RedisStore::new(Arc::clone(&redis), HeaderNames::default(), Duration::ZERO);
    let now = authgate::clock::now_unix();
    let mut ids = Vec::new();
    for i in 0..60 {
        let s = store_suite::session(&format!("user{i}"), None, now, 600);
        store.insert(Arc::clone(&s)).await.expect("insert");
        ids.push(s.id.clone());
    }
    assert_eq!(store.len().await, 60);
    for p in &cluster.ports {
        assert!(cluster.keys_on(*p, "spread:s:*") > 0, "no session on {p}");
    }
    for id in &ids[..10] {
        assert!(store.revoke(id).await.expect("revoke"));
    }
    assert_eq!(store.len().await, 50);
    // Replay ids and throttle counters work across slots too.
    assert!(redis.first_use("a1", now + 60, now).await.expect("first"));
    assert!(!redis.first_use("a1", now + 60, now).await.expect("again"));
    let window = Duration::from_secs(60);
    for _ in 0..3 {
        redis
            .throttle_fail("mallory", 3, window)
            .await
            .expect("fail");
    }
    assert!(redis
        .throttle_check("mallory", 3, window)
        .await
        .expect("check")
        .is_err());
    assert!(redis
        .throttle_check("alice", 3, window)
        .await
        .expect("check")
        .is_ok());
}

#[tokio::test]
async fn two_replicas_on_a_redis_cluster_share_sessions() {
    let cluster = Cluster::start();
    let up = Upstream::start().await;
    let ka = Keys::new();
    let kb = ka.share();
    // A knows one seed node, B another.
    let a = gate_config(
        &ka,
        &up.url(),
        &format!(
            "redis_cluster_urls = [\"redis://127.0.0.1:{}\"]",
            cluster.ports[0]
        ),
    );
    let b = gate_config(
        &kb,
        &up.url(),
        &format!(
            "redis_cluster_urls = [\"redis://127.0.0.1:{}\", \"redis://127.0.0.1:{}\"]",
            cluster.ports[2], cluster.ports[1]
        ),
    );
    let a = Gate::start_with(ka, a, vec![]).await;
    let b = Gate::start_with(kb, b, vec![]).await;
    assert_eq!(status(&a, "/_auth/readyz", "").await, StatusCode::OK);
    let mut cookies = Vec::new();
    for i in 0..6 {
        let c = a
            .login(identity(
                &format!("user{i}"),
                "u@example.com",
                Some("annotator"),
                &[],
            ))
            .await;
        assert_eq!(status(&b, "/projects", &c).await, StatusCode::OK);
        cookies.push(c);
    }
    let out = get(&b.url("/_auth/logout"), &[("cookie", &cookies[0])]).await;
    assert!(out.status.is_redirection() || out.status.is_success());
    assert_eq!(
        status(&a, "/projects", &cookies[0]).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(&a, "/projects", &cookies[1]).await, StatusCode::OK);
    assert_eq!(a.state.sessions.len().await, 5);
}
