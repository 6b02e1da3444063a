//! The access decision: one implementation for both doors.
//!
//! A request reaches the upstream through one of two doors: the proxy
//! (`proxy::handle`, which forwards it itself) or forward-auth
//! (`/_auth/check`, asked by nginx `auth_request`, Traefik ForwardAuth or
//! Envoy `ext_authz` about a request they will forward). Both ask
//! [`decide`] and only render its [`Verdict`] differently, so a request
//! cannot be refused at one door and let through at the other:
//!
//! ```text
//! 1. policy: route table decision   managed_by_directory / native login → refuse (every caller)
//!                                   the upstream's logout → Logout (each door ends the session)
//! 2. public path?                   forward anonymously
//! 3. session from the cookie        none → upstream API token? forward anonymously
//!                                          otherwise refuse: sign in
//! 4. role gates                     not_activated → pending activation; deactivated → refuse;
//!                                   policy.enforce_roles: the role table's role for the route
//!                                   (the same normalized path and methods as step 1) → 403
//!                                   naming the role; an upstream API token counts as annotator
//! 5. forward with the session's identity
//! ```
//!
//! [`refuse`] writes the audit line of a refusal and turns it into the
//! [`Error`] that `error::respond` renders; a door that answers a refusal
//! itself (a redirect to the login page) does not call it.
//!
//! This module decides; it builds no response and forwards nothing. On the
//! hot path (an allowed request) it allocates nothing: the policy request
//! borrows the caller's parts and the session is a shared `Arc`.

use std::sync::Arc;

use http::{header, HeaderMap, Method};

use crate::app::State;
use crate::error::Error;
use crate::policy::{self, Decision};
use crate::request::context::RequestCtx;
use crate::role::Role;
use crate::session::Session;
use crate::telemetry::Audit;

/// The request a door asks about, as that door read it.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The method of the request that will be forwarded (forward-auth: the
    /// original request's, from `X-Original-Method`/`X-Forwarded-Method`).
    pub method: &'a Method,
    /// The normalized path, exactly as it is (or will be) forwarded.
    pub path: &'a str,
    /// The raw query string (without `?`), if any.
    pub query: Option<&'a str>,
    /// The request's headers: the cookie, `Authorization`, the
    /// method-override headers and `Content-Type` are read. Forward-auth
    /// passes the headers it was called with, which nginx and Traefik copy
    /// from the client's request.
    pub headers: &'a HeaderMap,
}

/// What a door does with a request.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Forward to the upstream.
    Forward(Access),
    /// The upstream's logout (the route table's `intercept` rows, while the
    /// `intercept_logout` switch is on): end authgate's session instead of
    /// forwarding. The proxy answers it with authgate's logout; forward-auth
    /// sends browsers there and ends other callers' sessions itself.
    Logout,
    /// Refuse; [`refuse`] audits it and gives the error to answer with.
    Refuse(Refusal),
}

/// On whose behalf a forwarded request goes.
#[derive(Debug, Clone)]
pub enum Access {
    /// A path under `policy.public_paths`: no session looked at, no identity
    /// headers.
    Public,
    /// No session, but the upstream's own API token
    /// (`policy.allow_upstream_tokens`): no identity headers; the upstream
    /// checks the token.
    UpstreamToken,
    /// A signed-in user allowed by the role gates: forward with the signed
    /// identity assertion and the plain identity headers.
    Session(Arc<Session>),
}

/// Why a request is refused.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// 403 `managed_by_directory`: the route changes an assignment the
    /// directory manages (`reason`: the armed switch). Every caller.
    ManagedByDirectory { reason: String },
    /// The upstream's own login (signup, password reset) while authgate owns
    /// login: a door that can redirects browsers to `/_auth/login`; anything
    /// else is 403 `managed_by_directory` with reason `native_login`.
    NativeLogin,
    /// No session (and no accepted upstream token): browsers are sent to
    /// the login page where the door can redirect; anything else is 401.
    SignIn,
    /// Signed in as `not_activated`: 403 pending activation.
    PendingActivation(Arc<Session>),
    /// Signed in as `deactivated` (a session from before the role changed):
    /// 403.
    Deactivated(Arc<Session>),
    /// `policy.enforce_roles`: the role (the session's, or annotator for a
    /// request carrying the upstream's API token) is below `needed`, the role
    /// of role-table row `rule`. 403 `role_required`.
    RoleRequired {
        needed: Role,
        rule: usize,
        role: Option<Role>,
        session: Option<Arc<Session>>,
    },
}

impl Verdict {
    /// The session the verdict was reached with (for the access log), if any.
    pub fn session(&self) -> Option<&Arc<Session>> {
        match self {
            Verdict::Forward(Access::Session(s))
            | Verdict::Refuse(Refusal::PendingActivation(s) | Refusal::Deactivated(s)) => Some(s),
            Verdict::Refuse(Refusal::RoleRequired {
                session: Some(s), ..
            }) => Some(s),
            _ => None,
        }
    }
}

/// The access decision for one request (see the module docs for the order).
/// The only error is an unavailable session store.
pub async fn decide(state: &Arc<State>, req: &Inbound<'_>) -> Result<Verdict, Error> {
    // 1. The route policy applies to every caller, tokens included, and runs
    // before the session is looked at.
    let overrides = policy::override_methods(req.headers, req.query);
    let preq = policy::Request {
        method: req.method,
        path: req.path,
        query: req.query,
        override_methods: &overrides,
        form_body: is_form_post(req.method, req.headers),
    };
    let decision = state.config.policy.routes.decide(&preq, &state.switches);
    match decision {
        Decision::Allow => {}
        Decision::Deny { reason, .. } => {
            state.metrics.policy_denials.inc();
            return Ok(Verdict::Refuse(Refusal::ManagedByDirectory { reason }));
        }
        Decision::Login { .. } => {
            state.metrics.policy_denials.inc();
            return Ok(Verdict::Refuse(Refusal::NativeLogin));
        }
        Decision::Logout { .. } => return Ok(Verdict::Logout),
    }

    // 2. Public paths: no session, no identity.
    if state.is_public(req.path) {
        return Ok(Verdict::Forward(Access::Public));
    }

    // 3. Session; without one, the upstream's own API token if allowed.
    let Some(session) = state.load_session(req.headers).await? else {
        if state.config.policy.allow_upstream_tokens && carries_upstream_token(req.headers) {
            if let Some(refusal) = role_gate(state, &preq, Some(TOKEN_ROLE), None) {
                return Ok(Verdict::Refuse(refusal));
            }
            return Ok(Verdict::Forward(Access::UpstreamToken));
        }
        return Ok(Verdict::Refuse(Refusal::SignIn));
    };
    crate::app::maybe_refresh(state, &session);

    // 4. Role gates.
    Ok(match session.identity.role {
        Some(Role::NotActivated) => Verdict::Refuse(Refusal::PendingActivation(session)),
        Some(Role::Deactivated) => Verdict::Refuse(Refusal::Deactivated(session)),
        role => {
            // The upstream acts as the token's owner, whom authgate cannot see: no
            // more than an annotator, whatever the session says.
            let role = if carries_upstream_token(req.headers) {
                role.map(|r| r.min(TOKEN_ROLE))
            } else {
                role
            };
            match role_gate(state, &preq, role, Some(&session)) {
                Some(refusal) => Verdict::Refuse(refusal),
                // 5. Forward with identity.
                None => Verdict::Forward(Access::Session(session)),
            }
        }
    })
}

/// The role a request carrying the upstream's own API token is decided as.
const TOKEN_ROLE: Role = Role::Annotator;

/// `policy.enforce_roles`: the role table's decision for `role`, as a refusal.
fn role_gate(
    state: &State,
    preq: &policy::Request<'_>,
    role: Option<Role>,
    session: Option<&Arc<Session>>,
) -> Option<Refusal> {
    if !state.config.policy.enforce_roles {
        return None;
    }
    match state.config.policy.role_routes.decide(preq, role) {
        policy::RoleDecision::Allow => None,
        policy::RoleDecision::Refuse { needed, rule } => {
            state.metrics.role_denials.inc();
            Some(Refusal::RoleRequired {
                needed,
                rule,
                role,
                session: session.cloned(),
            })
        }
    }
}

/// Audits a refusal of `req` (except [`Refusal::SignIn`], which is not an
/// audit event) and returns the error to answer it with.
pub async fn refuse(state: &State, ctx: &RequestCtx, req: &Inbound<'_>, refusal: Refusal) -> Error {
    match refusal {
        Refusal::ManagedByDirectory { reason } => {
            policy_denied(state, ctx, req, &reason).await;
            Error::ManagedByDirectory { reason }
        }
        Refusal::NativeLogin => {
            // The same refusal as any other directory-managed route, so API
            // clients see one shape.
            policy_denied(state, ctx, req, "native_login").await;
            Error::ManagedByDirectory {
                reason: "native_login".into(),
            }
        }
        Refusal::SignIn => Error::Unauthenticated,
        Refusal::PendingActivation(s) => {
            audit(ctx, req, Some(&s), "access_refused", "pending_activation");
            Error::PendingActivation
        }
        Refusal::Deactivated(s) => {
            audit(ctx, req, Some(&s), "access_refused", "deactivated");
            Error::Deactivated
        }
        Refusal::RoleRequired {
            needed,
            rule,
            role,
            session,
        } => {
            let family = state
                .config
                .policy
                .role_routes
                .rule(rule)
                .map_or("", |r| r.family());
            let reason = format!("role_required:{needed}:{family}:route[{rule}]");
            // The role decided with (an upstream token's is annotator, with or without a session).
            let id = session.as_deref().map(|s| &s.identity);
            Audit::new("role_denied")
                .subject(id.map(|i| i.subject.as_str()))
                .role(role.map(Role::as_str))
                .request(req.method.as_str(), req.path, ctx.client)
                .reason(&reason)
                .request_id(ctx.id.as_str())
                .emit();
            Error::RoleRequired { needed, role }
        }
    }
}

/// The audit line of a policy refusal. The policy ran before the session was
/// looked at; it is read here only to name who was refused.
async fn policy_denied(state: &State, ctx: &RequestCtx, req: &Inbound<'_>, reason: &str) {
    let session = state.load_session(req.headers).await.ok().flatten();
    audit(ctx, req, session.as_deref(), "policy_denied", reason);
}

fn audit(
    ctx: &RequestCtx,
    req: &Inbound<'_>,
    session: Option<&Session>,
    event: &'static str,
    reason: &str,
) {
    let id = session.map(|s| &s.identity);
    Audit::new(event)
        .subject(id.map(|i| i.subject.as_str()))
        .role(id.and_then(|i| i.role).map(Role::as_str))
        .request(req.method.as_str(), req.path, ctx.client)
        .reason(reason)
        .request_id(ctx.id.as_str())
        .emit();
}

/// A POST whose body is a form may carry a `_method` field. Django upper-cases the method
/// (`post` is POST) and a repeated Content-Type may be read either way, so any spelling counts.
fn is_form_post(method: &Method, headers: &HeaderMap) -> bool {
    method.as_str().eq_ignore_ascii_case("POST")
        && headers
            .get_all(header::CONTENT_TYPE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(policy::is_form_content_type)
}

/// The request carries the upstream's own API token: `Authorization: Token
/// <credentials>` or `Bearer <credentials>` (Label Studio accepts both). The
/// scheme is case-insensitive (RFC 9110 §11.1), followed by at least one
/// space and non-empty credentials; a bare `Token` or `Bearer ` is no token,
/// and neither is a value that is not visible ASCII. Only the first
/// `Authorization` header counts.
pub fn carries_upstream_token(h: &HeaderMap) -> bool {
    let Some(v) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, credentials)) = v.trim_start().split_once(' ') else {
        return false;
    };
    (scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer"))
        && !credentials.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn upstream_tokens_are_recognised_in_any_case() {
        let table: &[(&[u8], bool)] = &[
            (b"Token abc", true),
            (b"token abc", true),
            (b"TOKEN abc", true),
            (b"ToKeN abc", true),
            (b"Bearer abc", true),
            (b"bearer abc", true),
            (b"BEARER abc", true),
            (b"Token  abc", true),
            (b"  Bearer abc", true),
            (b"Token abc def", true),
            (b"Token ", false),
            (b"Token   ", false),
            (b"Token", false),
            (b"Bearer ", false),
            (b"Bearer", false),
            (b"Tokenabc", false),
            (b"Bearerabc", false),
            (b"Basic abc", false),
            (b"Tokens abc", false),
            (b"Bear abc", false),
            (b"", false),
            (b"Token \xff", false),
        ];
        for (value, want) in table {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                HeaderValue::from_bytes(value).expect("header value"),
            );
            assert_eq!(
                carries_upstream_token(&h),
                *want,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        assert!(!carries_upstream_token(&HeaderMap::new()));
    }

    #[test]
    fn only_form_posts_may_hide_a_method_in_the_body() {
        let form = |ct: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            h
        };
        let post = Method::POST;
        let lower_post = Method::from_bytes(b"post").expect("method");
        assert!(is_form_post(
            &post,
            &form("application/x-www-form-urlencoded")
        ));
        assert!(is_form_post(
            &lower_post,
            &form("multipart/form-data; boundary=x")
        ));
        assert!(!is_form_post(&post, &form("application/json")));
        assert!(!is_form_post(
            &Method::PUT,
            &form("application/x-www-form-urlencoded")
        ));
        assert!(!is_form_post(&post, &HeaderMap::new()));
    }
}
