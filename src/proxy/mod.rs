//! The request path: one hyper service, its phases in order.
//!
//! ```text
//! accept → TLS → hyper → proxy::handle(req)
//!  1. ctx = RequestCtx::new(..)                  request id, navigation or API
//!  2. path::normalize(uri.path)                  once; 400 on ambiguous input
//!  3. strip hop-by-hop, strip inbound identity   ALWAYS, before anything reads headers
//!  4. /_auth/* → endpoints::dispatch             authgate's own endpoints
//!  5. gate::decide                               the access decision /_auth/check makes too:
//!     a. policy: route table decision              managed_by_directory → 403 (every caller)
//!     b. public path?                              forward without identity
//!     c. session from the cookie                   none → upstream token? / 302 login / 401 JSON
//!     d. role gates                                not_activated → 403 pending activation
//!  6. set identity headers; upstream::send       streaming both ways, upgrades spliced
//!  7. Err(e) anywhere → error::respond           one status map, one log line
//! ```
//!
//! The normalized path is both what policy checks and what is forwarded, so
//! the check and the upstream can never disagree. This module owns the flow
//! and renders the gate's verdict (a redirect for browsers, the error for
//! others); the decisions themselves live in `gate`, `policy`, `session` and
//! `identity`.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::app::State;
use crate::error::{self, Error};
use crate::gate::{self, Access, Refusal, Verdict};
use crate::http::{full, Body};
use crate::request::context::{ConnInfo, RequestCtx};
use crate::request::{headers, path};
use crate::session::Session;
use crate::upstream;

static X_FORWARDED_FOR: header::HeaderName = header::HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: header::HeaderName = header::HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: header::HeaderName = header::HeaderName::from_static("x-forwarded-host");
static X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// Entry point for every request on the main listener.
pub async fn handle(
    state: Arc<State>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Response<Body> {
    let ctx = RequestCtx::new(
        state.request_ids.next(),
        req.method(),
        req.headers(),
        Arc::clone(&state.prefix),
        conn.peer.ip(),
    );
    state.metrics.in_flight.inc();
    let mut user: Option<Arc<Session>> = None;
    let mut logged_path = String::new();
    let mut resp = match phases(&state, &conn, &ctx, req, &mut user, &mut logged_path).await {
        Ok(r) => r,
        Err(e) => error::respond(&e, &ctx),
    };
    if ctx.method == Method::HEAD {
        resp = without_body(resp);
    }
    state.metrics.in_flight.dec();
    let status = resp.status().as_u16();
    state.metrics.record_status(status);
    if state.config.log.access_log {
        let subject = user
            .as_ref()
            .map(|s| s.identity.subject.as_str())
            .unwrap_or("-");
        let line = crate::telemetry::access::Line {
            request_id: ctx.id.as_str(),
            method: ctx.method.as_str(),
            path: &logged_path,
            status,
            latency_us: ctx.start.elapsed().as_micros() as u64,
            user: subject,
            client: ctx.client,
        };
        if !crate::telemetry::access::log(&line) {
            access_via_tracing(&line);
        }
    }
    resp
}

/// The access line through `tracing` (no writer thread: the app runs
/// in-process in a test, or the access target is filtered out).
#[cold]
fn access_via_tracing(l: &crate::telemetry::access::Line<'_>) {
    tracing::info!(
        target: "authgate::access",
        request_id = %l.request_id,
        method = %l.method,
        path = %l.path,
        status = l.status,
        latency_us = l.latency_us,
        user = l.user,
        client = %l.client,
    );
}

async fn phases(
    state: &Arc<State>,
    conn: &Arc<ConnInfo>,
    ctx: &RequestCtx,
    mut req: Request<Incoming>,
    user: &mut Option<Arc<Session>>,
    logged_path: &mut String,
) -> Result<Response<Body>, Error> {
    let cfg = &state.config;

    // 2. Normalize once; this exact path is checked and forwarded.
    if req.method() == Method::CONNECT {
        return Err(Error::MethodNotAllowed);
    }
    path::normalize_into(req.uri().path(), logged_path).map_err(Error::BadPath)?;
    let path: &str = logged_path;

    // 3. Strip, then (later) set. Trusted proxies' forwarding headers are
    // read before they are stripped.
    let inbound_fwd = conn.trusted.then(|| ForwardedIn::read(req.headers()));
    let upgrade = headers::is_upgrade(req.headers());
    headers::strip_hop_by_hop(req.headers_mut(), upgrade);
    headers::strip_protected(req.headers_mut(), &state.protected);

    // 4. authgate's own endpoints. The rare branches (endpoints, logout,
    // audit of a refusal) are boxed: inlined, their state machines made this
    // future ~15 KiB, which hyper keeps allocated per connection (its
    // in-flight slot) and copies per request; boxed, it is ~3 KiB
    // (bench/README.md: about 5 KiB less RSS per idle keep-alive connection).
    if is_under(path, &cfg.server.prefix) {
        return Box::pin(crate::endpoints::dispatch(
            state, conn, ctx, req, path, user,
        ))
        .await;
    }

    // 5. The access decision (route policy, public path, session, upstream
    // token, role gates): the one `/_auth/check` makes too.
    let inbound = gate::Inbound {
        method: req.method(),
        path,
        query: req.uri().query(),
        headers: req.headers(),
    };
    let verdict = gate::decide(state, &inbound).await?;
    *user = verdict.session().cloned();
    let session = match verdict {
        Verdict::Forward(Access::Public | Access::UpstreamToken) => None,
        Verdict::Forward(Access::Session(s)) => Some(s),
        Verdict::Logout => {
            // The upstream's own logout also ends our session.
            return Box::pin(crate::endpoints::logout(state, ctx, &req, path)).await;
        }
        Verdict::Refuse(Refusal::NativeLogin) if ctx.wants_html => {
            return Ok(crate::endpoints::redirect_to_login(state, "/"));
        }
        Verdict::Refuse(Refusal::SignIn) if ctx.wants_html => {
            let rd = match req.uri().query() {
                Some(q) => format!("{path}?{q}"),
                None => path.to_string(),
            };
            return Ok(crate::endpoints::redirect_to_login(state, &rd));
        }
        Verdict::Refuse(refusal) => {
            return Err(Box::pin(gate::refuse(state, ctx, &inbound, refusal)).await);
        }
    };

    // 6. Forward, with the session's identity or none.
    forward(
        state,
        conn,
        ctx,
        req,
        path,
        session.as_ref(),
        inbound_fwd,
        upgrade,
    )
    .await
}

/// A HEAD answer: the headers of the GET answer, no body (RFC 9110 §9.3.2). hyper drops the
/// body itself over HTTP/1.1 but not over HTTP/2, where DATA on a HEAD response is a protocol
/// error; the upstream's answers to HEAD already have none.
fn without_body(resp: Response<Body>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    match body {
        Either::Left(upstream) => Response::from_parts(parts, Either::Left(upstream)),
        Either::Right(ours) => {
            if let Some(n) = http_body::Body::size_hint(&ours).exact() {
                parts
                    .headers
                    .entry(header::CONTENT_LENGTH)
                    .or_insert_with(|| HeaderValue::from(n));
            }
            Response::from_parts(parts, full(Bytes::new()))
        }
    }
}

/// `path` is `prefix` or below it (`/_auth`, `/_auth/x`, not `/_authx`).
fn is_under(path: &str, prefix: &str) -> bool {
    path.len() >= prefix.len()
        && path.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
}

/// X-Forwarded-* as a trusted proxy sent them.
pub struct ForwardedIn {
    pub for_: Option<HeaderValue>,
    pub proto: Option<HeaderValue>,
    pub host: Option<HeaderValue>,
}

impl ForwardedIn {
    fn read(h: &http::HeaderMap) -> ForwardedIn {
        let joined = |name: &header::HeaderName| -> Option<HeaderValue> {
            let mut it = h.get_all(name).iter();
            let first = it.next()?.clone();
            let mut out = first.as_bytes().to_vec();
            for v in it {
                out.extend_from_slice(b", ");
                out.extend_from_slice(v.as_bytes());
            }
            HeaderValue::from_bytes(&out).ok()
        };
        ForwardedIn {
            for_: joined(&X_FORWARDED_FOR),
            proto: h.get(&X_FORWARDED_PROTO).cloned(),
            host: h.get(&X_FORWARDED_HOST).cloned(),
        }
    }
}

/// Sends the request upstream with identity (or none) and streams the answer back.
#[allow(clippy::too_many_arguments)]
async fn forward(
    state: &Arc<State>,
    conn: &ConnInfo,
    ctx: &RequestCtx,
    mut req: Request<Incoming>,
    path: &str,
    session: Option<&Arc<Session>>,
    inbound: Option<ForwardedIn>,
    upgrade: bool,
) -> Result<Response<Body>, Error> {
    let cfg = &state.config;

    // Target: the normalized path + the query as sent.
    let mut pq = String::with_capacity(path.len() + 1 + req.uri().query().map_or(0, str::len));
    pq.push_str(path);
    if let Some(q) = req.uri().query() {
        pq.push('?');
        pq.push_str(q);
    }
    // Origin-form (RFC 9112 section 3.2.1): hyper writes the URI as it is
    // given, and absolute-form is for requests to proxies.
    let uri = Uri::builder()
        .path_and_query(pq)
        .build()
        .map_err(|_| Error::BadRequest("request target"))?;

    // Host: as the browser sent it (HTTP/2 :authority becomes Host).
    let original_host = req.headers().get(header::HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let h = req.headers_mut();
    // Room for what is added below at once, instead of growing (and
    // rehashing) the map as it fills: Host, X-Forwarded-For/Proto/Host,
    // X-Request-Id, the identity header and the plain identity headers.
    h.reserve(5 + session.map_or(0, |s| 1 + s.plain.len()));
    if cfg.upstream.pass_host_header {
        if let Some(host) = &original_host {
            h.insert(header::HOST, host.clone());
        }
    } else {
        h.insert(
            header::HOST,
            HeaderValue::from_str(cfg.upstream.authority.as_str())
                .map_err(|_| Error::BadRequest("host"))?,
        );
    }

    // X-Forwarded-*: appended to a trusted proxy's values, else ours alone.
    let proto = if conn.tls {
        HeaderValue::from_static("https")
    } else {
        HeaderValue::from_static("http")
    };
    match inbound {
        Some(ForwardedIn {
            for_,
            proto: in_proto,
            host: in_host,
        }) => {
            let xff = match for_ {
                Some(prev) => {
                    let mut v = prev.as_bytes().to_vec();
                    v.extend_from_slice(b", ");
                    v.extend_from_slice(conn.peer_header.as_bytes());
                    HeaderValue::from_bytes(&v).unwrap_or_else(|_| conn.peer_header.clone())
                }
                None => conn.peer_header.clone(),
            };
            h.insert(X_FORWARDED_FOR.clone(), xff);
            h.insert(X_FORWARDED_PROTO.clone(), in_proto.unwrap_or(proto));
            if let Some(host) = in_host.or(original_host) {
                h.insert(X_FORWARDED_HOST.clone(), host);
            }
        }
        None => {
            h.insert(X_FORWARDED_FOR.clone(), conn.peer_header.clone());
            h.insert(X_FORWARDED_PROTO.clone(), proto);
            if let Some(host) = original_host {
                h.insert(X_FORWARDED_HOST.clone(), host);
            }
        }
    }
    if let Ok(id) = HeaderValue::from_str(&ctx.id) {
        h.insert(X_REQUEST_ID.clone(), id);
    }

    // authgate's own cookies stay here: the upstream must not log or replay them.
    strip_own_cookies(
        h,
        state
            .cookie
            .name
            .trim_start_matches("__Host-")
            .trim_start_matches("__Secure-"),
    );

    // Identity.
    if let Some(s) = session {
        let token = state.identity_token(s)?;
        h.insert(cfg.identity.header.clone(), token);
        if cfg.identity.plain_headers {
            s.plain.apply(h);
        }
    }

    // Body limit: refuse a declared length early; a chunked body is cut off.
    let declared = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    if upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    let body = match cfg.upstream.max_body {
        Some(max) => {
            if declared.is_some_and(|n| n > max) {
                return Err(Error::BodyTooLarge);
            }
            Either::Right(Limited::new(body, max as usize))
        }
        None => Either::Left(body),
    };
    let up_req = Request::from_parts(parts, body);

    let (mut resp, took) = match state.upstream.send(up_req).await {
        Ok(r) => r,
        Err(e) => {
            match &e {
                upstream::Error::Connect(_) => state.metrics.upstream_connect_errors.inc(),
                upstream::Error::Timeout => state.metrics.upstream_timeouts.inc(),
                upstream::Error::Other(_) => state.metrics.upstream_other_errors.inc(),
            };
            if cfg.upstream.max_body.is_some() && body_limit_hit(&e) {
                return Err(Error::BodyTooLarge);
            }
            return Err(Error::Upstream(e));
        }
    };
    state.metrics.upstream_seconds.observe(took.as_secs_f64());

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                let (Ok(client), Ok(upstream)) = tokio::join!(client_upgrade, upstream_upgrade)
                else {
                    return;
                };
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
            return Ok(resp.map(Either::Left));
        }
    }
    headers::strip_hop_by_hop(resp.headers_mut(), false);
    Ok(resp.map(Either::Left))
}

/// Removes authgate's cookies (the session, `<name>_login`, `<name>-saml`,
/// `<name>-slo`, with or without the `__Host-` prefix) from the Cookie
/// header(s); other cookies are kept, in order, in one header. Requests
/// that carry none of ours (the common case on public paths) are untouched.
fn strip_own_cookies(h: &mut http::HeaderMap, base: &str) {
    let base = base.as_bytes();
    if base.is_empty() {
        return;
    }
    let is_own = |name: &[u8]| {
        let name = name
            .strip_prefix(b"__Host-".as_slice())
            .or_else(|| name.strip_prefix(b"__Secure-".as_slice()))
            .unwrap_or(name);
        name == base
            || name.len() > base.len()
                && name.starts_with(base)
                && matches!(name[base.len()], b'_' | b'-')
    };
    // `name=value` pairs, trimmed; empty ones skipped.
    fn pairs(v: &HeaderValue) -> impl Iterator<Item = &[u8]> {
        v.as_bytes()
            .split(|b| *b == b';')
            .map(<[u8]>::trim_ascii)
            .filter(|p| !p.is_empty())
    }
    fn name(pair: &[u8]) -> &[u8] {
        pair.split(|b| *b == b'=')
            .next()
            .unwrap_or(pair)
            .trim_ascii()
    }
    if !h
        .get_all(header::COOKIE)
        .iter()
        .any(|v| pairs(v).any(|p| is_own(name(p))))
    {
        return;
    }
    let mut kept: Vec<u8> = Vec::new();
    for v in h.get_all(header::COOKIE) {
        for pair in pairs(v) {
            if !is_own(name(pair)) {
                if !kept.is_empty() {
                    kept.extend_from_slice(b"; ");
                }
                kept.extend_from_slice(pair);
            }
        }
    }
    h.remove(header::COOKIE);
    if let Ok(v) = HeaderValue::from_bytes(&kept) {
        if !kept.is_empty() {
            h.insert(header::COOKIE, v);
        }
    }
}

fn body_limit_hit(e: &upstream::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matching_is_segment_aware() {
        assert!(is_under("/_auth", "/_auth"));
        assert!(is_under("/_auth/login", "/_auth"));
        assert!(is_under("/_AUTH/login", "/_auth"));
        assert!(!is_under("/_authx", "/_auth"));
        assert!(!is_under("/", "/_auth"));
    }

    #[test]
    fn own_cookies_are_not_forwarded() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["authgate=abc"], None),
            (&["a=1; authgate=abc; b=2"], Some("a=1; b=2")),
            (
                &[
                    "__Host-authgate=x; __Host-authgate-saml=y",
                    "authgate_login=z; c=3",
                ],
                Some("c=3"),
            ),
            (
                &["authgatex=1; xauthgate=2; authgate2=3"],
                Some("authgatex=1; xauthgate=2; authgate2=3"),
            ),
            (
                &["csrftoken=t; sessionid=s"],
                Some("csrftoken=t; sessionid=s"),
            ),
            (&["authgate-slo=1;sessionid=s"], Some("sessionid=s")),
        ];
        for (input, want) in cases {
            let mut h = http::HeaderMap::new();
            for v in *input {
                h.append(header::COOKIE, HeaderValue::from_str(v).expect("ascii"));
            }
            strip_own_cookies(&mut h, "authgate");
            let got: Vec<_> = h
                .get_all(header::COOKIE)
                .iter()
                .map(|v| v.to_str().expect("ascii"))
                .collect();
            match want {
                None => assert!(got.is_empty(), "{input:?} -> {got:?}"),
                Some(w) => assert_eq!(got, vec![*w], "{input:?}"),
            }
        }
    }

    /// The future of one request stays small: hyper keeps it allocated per
    /// connection and copies it per request, so the rare branches (endpoints,
    /// logout, the audit of a refusal) are boxed (see phase 4). Inlined they
    /// made it ~15 KiB; about 4 KiB in a debug build with them boxed.
    #[test]
    fn request_future_stays_small() {
        fn size_of_output<A, B, C, Fut>(_: impl FnOnce(A, B, C) -> Fut) -> usize {
            std::mem::size_of::<Fut>()
        }
        let size = size_of_output(handle);
        assert!(size <= 6 * 1024, "proxy::handle's future is {size} bytes");
    }
}
