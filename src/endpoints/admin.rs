//! The SSO & SAML settings page, `{prefix}/admin/sso` (owner and
//! administrator only; everyone else 403; without a session, the login
//! page): the URLs to paste into the IdP, the IdP metadata status, forms
//! to upload the IdP metadata or set its URL, the three group-mapping
//! tables, the explain box and the test sign-in.
//!
//! - `GET  {prefix}/admin/sso`           the page
//! - `GET  {prefix}/admin/sso.js`        its one script (copy buttons)
//! - `POST {prefix}/admin/sso/metadata`  upload (multipart) or URL
//! - `POST {prefix}/admin/sso/mapping`   the mapping tables (save, add a row)
//! - `POST {prefix}/admin/sso/explain`   groups or an email → the grant, and why
//! - `POST {prefix}/admin/sso/sessions`  revoke one session (`sid`) or a user's (`user`)
//! - `GET  {prefix}/admin/sso/test`      SP-initiated sign-in that only reports
//!
//! Every form carries a CSRF token: the session's id (hashed) sealed with
//! the session keys as an [`AdminCsrf`] (a purpose of its own), so a token
//! works only with the session it was made for. Saving goes
//! through `crate::app::sso::save` (state file, Redis, reload) and is an
//! audit event naming who and what changed. Nothing secret is rendered:
//! no keys, no metadata XML, no cookies.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::State;
use crate::clock::now_unix;
use crate::config::raw::ProjectRule;
use crate::error::Error;
use crate::http::{full, Body};
use crate::mapping::explain::{Explanation, Grant, RoleFrom};
use crate::pages::escape;
use crate::pages::sso as page;
use crate::request::context::RequestCtx;
use crate::role::Role;
use crate::session::control::{self, Selector};
use crate::session::sealed::{ad, text_payload};
use crate::session::{Expiring, Sealable, Sealed, Session, Summary};
use crate::settings::{self, Metadata, Problem, RoleRow, Saved, WorkspaceRow};
use crate::telemetry::Audit;

/// Largest form accepted (an IdP metadata document is at most 4 MiB).
const MAX_FORM: usize = 4 * 1024 * 1024 + 64 * 1024;
/// Time allowed to download metadata given by URL.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Sessions shown in the page's table at most (newest first).
const MAX_LISTED: usize = 500;
/// Certificates expiring within this many days get a warning.
const EXPIRY_WARNING_DAYS: u32 = 30;

/// Routes `/admin/sso*`.
pub async fn dispatch(
    state: &Arc<State>,
    ctx: &RequestCtx,
    req: Request<Incoming>,
    sub: &str,
    user: &mut Option<Arc<Session>>,
) -> Result<Response<Body>, Error> {
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let post = req.method() == Method::POST;
    if sub == "/admin/sso.js" {
        return if get {
            Ok(script())
        } else {
            Err(Error::MethodNotAllowed)
        };
    }
    let s = match admin_session(state, &req, user).await? {
        Ok(s) => s,
        Err(redirect) => return Ok(redirect),
    };
    match sub {
        "/admin/sso" if get => {
            // A save on another replica shows at once.
            let state = crate::app::sso::sync(state).await;
            let notice = super::query_param(&req, "saved").map(|v| match v.as_str() {
                "unchanged" => "Nothing changed.".to_string(),
                v => format!("Saved (version {v}). New sign-ins use it now; signed-in users keep their sessions."),
            }).or_else(|| super::query_param(&req, "revoked").map(|n| match n.as_str() {
                "1" => "1 session revoked: its next request is signed out.".to_string(),
                n => format!("{} sessions revoked: their next requests are signed out.", n.parse::<usize>().unwrap_or(0)),
            }));
            let sessions = Some(session_list(&state).await);
            Ok(render(
                &state,
                &s,
                View {
                    notice,
                    sessions,
                    ..View::default()
                },
            ))
        }
        "/admin/sso/metadata" if post => metadata(state, ctx, &s, req).await,
        "/admin/sso/mapping" if post => mapping(state, ctx, &s, req).await,
        "/admin/sso/explain" if post => explain(state, ctx, &s, req).await,
        "/admin/sso/sessions" if post => revoke_sessions(state, ctx, &s, req).await,
        "/admin/sso/test" if get => super::saml::test_sign_in(state, &req),
        _ => Err(Error::MethodNotAllowed),
    }
}

/// The session of an owner or administrator; `Err(redirect)` to the login
/// page for a browser without a session.
async fn admin_session(
    state: &State,
    req: &Request<Incoming>,
    user: &mut Option<Arc<Session>>,
) -> Result<Result<Arc<Session>, Response<Body>>, Error> {
    let Some(s) = state.load_session(req.headers()).await? else {
        if crate::request::context::is_navigation(req.method(), req.headers()) {
            return Ok(Err(super::redirect_to_login(
                state,
                &format!("{}/admin/sso", state.config.server.prefix),
            )));
        }
        return Err(Error::Unauthenticated);
    };
    *user = Some(s.clone());
    if !is_admin(&s) {
        return Err(Error::Forbidden(
            "this page is for owners and administrators",
        ));
    }
    Ok(Ok(s))
}

pub fn is_admin(s: &Session) -> bool {
    s.identity.role.is_some_and(Role::is_admin)
}

fn script() -> Response<Body> {
    let mut r = Response::new(full(page::SCRIPT));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

// ---------------------------------------------------------------- CSRF

fn session_tag(s: &Session) -> String {
    let h = openssl::sha::sha256(s.id.as_bytes());
    h[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// What the page's CSRF token seals: the session it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AdminCsrf {
    /// [`session_tag`] of that session.
    pub(crate) session_tag: String,
}

impl Sealable for AdminCsrf {
    const AD: &'static [u8] = ad::ADMIN_CSRF;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.session_tag.as_bytes());
    }
    fn decode(payload: &[u8]) -> Option<Self> {
        text_payload(payload).map(|session_tag| AdminCsrf { session_tag })
    }
}

impl Expiring for AdminCsrf {
    /// A page left open this long must be reloaded before its forms work.
    const TTL: Duration = Duration::from_secs(12 * 3600);
}

fn csrf_token(state: &State, s: &Session) -> String {
    let csrf = AdminCsrf {
        session_tag: session_tag(s),
    };
    Sealed::seal(&state.keys, &csrf, now_unix()).into_string()
}

fn csrf_ok(state: &State, s: &Session, token: Option<&str>) -> bool {
    let Some(csrf) = token.and_then(|t| Sealed::<AdminCsrf>::open(&state.keys, t, now_unix()))
    else {
        return false;
    };
    let want = session_tag(s);
    aws_lc_rs::constant_time::verify_slices_are_equal(csrf.session_tag.as_bytes(), want.as_bytes())
        .is_ok()
}

// ---------------------------------------------------------------- forms

/// A submitted form: every (name, value), in order.
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").to_string()
    }
}

/// Reads an urlencoded or multipart form.
async fn read_form(req: Request<Incoming>) -> Result<Form, Error> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = crate::http::read_body(req.into_body(), MAX_FORM).await?;
    if ct
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Ok(Form(
            form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ));
    }
    let boundary = multer::parse_boundary(&ct).map_err(|_| Error::BadRequest("expected a form"))?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => return Err(Error::BadRequest("malformed multipart form")),
        };
        let name = field.name().unwrap_or("").to_string();
        let bytes = field
            .bytes()
            .await
            .map_err(|_| Error::BadRequest("malformed multipart form"))?;
        out.push((name, String::from_utf8_lossy(&bytes).into_owned()));
    }
    Ok(Form(out))
}

/// Reads the form and checks its CSRF token (403 when it does not belong
/// to this session).
async fn checked_form(
    state: &State,
    ctx: &RequestCtx,
    s: &Session,
    req: Request<Incoming>,
) -> Result<Form, Error> {
    let path = req.uri().path().to_string();
    let form = read_form(req).await?;
    if !csrf_ok(state, s, form.get("csrf")) {
        Audit::new("access_refused")
            .subject(s.identity.subject.as_str())
            .role(s.identity.role.map(Role::as_str))
            .request("POST", &path, ctx.client)
            .reason("csrf")
            .request_id(ctx.id.as_str())
            .emit();
        return Err(Error::CsrfMismatch);
    }
    Ok(form)
}

fn who(s: &Session) -> String {
    s.identity
        .email
        .clone()
        .unwrap_or_else(|| s.identity.subject.clone())
}

/// Saves, writes the audit event, and answers 303 back to the page.
async fn commit(
    state: &State,
    ctx: &RequestCtx,
    s: &Session,
    new: Saved,
) -> Result<Response<Body>, Problem> {
    let old = state.sso.current();
    let changed = settings::changes(&old, &new);
    let prefix = &state.config.server.prefix;
    if changed.is_empty() {
        return Ok(see_other(&format!("{prefix}/admin/sso?saved=unchanged")));
    }
    let saved = crate::app::sso::save(state, new)
        .await
        .map_err(|e| Problem {
            field: "save".into(),
            message: e.to_string(),
        })?;
    let path = format!("{prefix}/admin/sso");
    Audit::new("sso_settings_saved")
        .subject(s.identity.subject.as_str())
        .role(s.identity.role.map(Role::as_str))
        .request("POST", &path, ctx.client)
        .reason("saved")
        .request_id(ctx.id.as_str())
        .version(saved.version)
        .changed(&changed.join(" | "))
        .emit();
    Ok(see_other(&format!("{path}?saved={}", saved.version)))
}

fn see_other(location: &str) -> Response<Body> {
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn refused(state: &State, s: &Session, mut view: View, p: Problem) -> Response<Body> {
    view.problems.push(p);
    view.status = StatusCode::BAD_REQUEST;
    render(state, s, view)
}

/// POST `/admin/sso/metadata`: an uploaded document (file or pasted) or a
/// URL, each checked (parses, one IdP, a signing certificate, an
/// HTTP-Redirect SSO endpoint) before it is saved.
async fn metadata(
    state: &State,
    ctx: &RequestCtx,
    s: &Session,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let form = checked_form(state, ctx, s, req).await?;
    let url = form.text("metadata_url").trim().to_string();
    let view = View {
        metadata_url: Some(url.clone()),
        ..View::default()
    };
    let fail = |m: String| Problem {
        field: "metadata".into(),
        message: m,
    };
    if let Some(src) = state.sso.locks.get(settings::KEY_METADATA) {
        return Ok(refused(
            state,
            s,
            view,
            fail(format!(
                "the IdP metadata is set by the configuration ({src})"
            )),
        ));
    }
    if state.sso.state_dir.is_none() {
        return Ok(refused(
            state,
            s,
            view,
            fail(settings::store::Error::NoStateDir.to_string()),
        ));
    }
    let (md, text) = if form.get("source") == Some("url") {
        let uri = match check_url(&url) {
            Ok(u) => u,
            Err(m) => return Ok(refused(state, s, view, fail(m))),
        };
        match crate::saml::metadata::fetch(&uri, FETCH_TIMEOUT).await {
            Ok(text) => (Metadata::Url { url: url.clone() }, text),
            Err(e) => return Ok(refused(state, s, view, fail(e.to_string()))),
        }
    } else {
        let file = form.text("metadata_file");
        let text = if file.trim().is_empty() {
            form.text("metadata_xml")
        } else {
            file
        };
        if text.trim().is_empty() {
            return Ok(refused(
                state,
                s,
                view,
                fail("choose a metadata file or paste the XML".into()),
            ));
        }
        (Metadata::Xml { xml: text.clone() }, text)
    };
    // The same checks as at start: with saml.metadata_signing_cert set, an
    // upload must carry that signature too.
    let (trust, algs) = match &state.config.saml {
        Some(c) => (
            c.metadata_trust.as_ref(),
            c.allowed_signature_algorithms.clone(),
        ),
        None => (None, vec![crate::saml::SignatureAlgorithm::RsaSha256]),
    };
    if let Err(e) = crate::saml::metadata::load(&text, trust, &algs) {
        let why = match e {
            crate::saml::Error::MetadataNoSigningCertificate => "the IdP metadata has no signing certificate (a KeyDescriptor with an X509Certificate); without one no sign-in could be verified".to_string(),
            e => e.to_string(),
        };
        return Ok(refused(state, s, view, fail(format!("refused: {why}"))));
    }
    let mut new = state.sso.current();
    new.metadata = Some(md);
    new.saved_by = who(s);
    new.saved_at = now_unix();
    match commit(state, ctx, s, new).await {
        Ok(r) => Ok(r),
        Err(p) => Ok(refused(state, s, view, p)),
    }
}

/// https, or plain http on loopback (as `saml.idp_metadata_url`).
fn check_url(url: &str) -> Result<http::Uri, String> {
    let u: http::Uri = url.parse().map_err(|_| {
        format!("{url:?} is not a URL; expected e.g. https://idp.example.com/metadata")
    })?;
    let host = u.host().unwrap_or("");
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    match u.scheme_str() {
        Some("https") if !host.is_empty() => Ok(u),
        Some("http") if loopback => Ok(u),
        Some("http") => Err(format!("{url:?}: metadata decides whose signatures are trusted, so it must come over https (plain http only for 127.0.0.1/localhost)")),
        _ => Err(format!("{url:?} is not an https URL")),
    }
}

/// The submitted rows of the three tables (blank and removed rows left out).
fn rows(form: &Form) -> (Vec<RoleRow>, Vec<WorkspaceRow>, Vec<ProjectRule>) {
    let lines = |v: String| -> Vec<String> {
        v.lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let mut roles = Vec::new();
    let mut ws = Vec::new();
    let mut projects = Vec::new();
    let indexes = |prefix: &str| -> Vec<usize> {
        let mut v: Vec<usize> = form
            .0
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(prefix)?.split('-').next()?.parse().ok())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    for i in indexes("role-") {
        let p = |f: &str| form.text(&format!("role-{i}-{f}"));
        let row = RoleRow {
            role: p("name"),
            groups: lines(p("groups")),
        };
        if p("remove").is_empty() && !(row.role.trim().is_empty() && row.groups.is_empty()) {
            roles.push(row);
        }
    }
    for i in indexes("ws-") {
        let p = |f: &str| form.text(&format!("ws-{i}-{f}"));
        let row = WorkspaceRow {
            title: p("title"),
            groups: lines(p("groups")),
        };
        if p("remove").is_empty() && !(row.title.trim().is_empty() && row.groups.is_empty()) {
            ws.push(row);
        }
    }
    for i in indexes("prj-") {
        let p = |f: &str| form.text(&format!("prj-{i}-{f}"));
        let row = ProjectRule {
            project: p("project"),
            group: p("group"),
            role: p("role"),
        };
        let blank = row.project.trim().is_empty() && row.group.trim().is_empty();
        if p("remove").is_empty() && !blank {
            projects.push(row);
        }
    }
    (roles, ws, projects)
}

/// POST `/admin/sso/mapping`: `action=save`, or `add-role`, `add-workspace`,
/// `add-project` (the form again with one more empty row, nothing saved).
async fn mapping(
    state: &State,
    ctx: &RequestCtx,
    s: &Session,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let form = checked_form(state, ctx, s, req).await?;
    let (roles, ws, projects) = rows(&form);
    let action = form.text("action");
    let mut view = View {
        roles: Some(roles.clone()),
        workspaces: Some(ws.clone()),
        projects: Some(projects.clone()),
        ..View::default()
    };
    match action.as_str() {
        "add-role" => {
            view.extra = (1, 0, 0);
            return Ok(render(state, s, view));
        }
        "add-workspace" => {
            view.extra = (0, 1, 0);
            return Ok(render(state, s, view));
        }
        "add-project" => {
            view.extra = (0, 0, 1);
            return Ok(render(state, s, view));
        }
        _ => {}
    }
    if state.sso.state_dir.is_none() {
        let p = Problem {
            field: "save".into(),
            message: settings::store::Error::NoStateDir.to_string(),
        };
        return Ok(refused(state, s, view, p));
    }
    let managed = !state.config.policy.manual_role_management;
    let tables = match settings::check_tables(&roles, &ws, &projects, managed) {
        Ok(t) => t,
        Err(problems) => {
            view.problems = problems;
            view.status = StatusCode::BAD_REQUEST;
            return Ok(render(state, s, view));
        }
    };
    let mut new = state.sso.current();
    let old = new
        .mapping
        .clone()
        .unwrap_or_else(|| settings::Tables::from_raw(&state.sso.base_raw.mapping));
    let locks = &state.sso.locks;
    new.mapping = Some(settings::Tables {
        roles: if locks.get(settings::KEY_ROLES).is_some() {
            old.roles
        } else {
            tables.roles
        },
        workspaces: if locks.get(settings::KEY_WORKSPACES).is_some() {
            old.workspaces
        } else {
            tables.workspaces
        },
        projects: if locks.get(settings::KEY_PROJECTS).is_some() {
            old.projects
        } else {
            tables.projects
        },
    });
    new.saved_by = who(s);
    new.saved_at = now_unix();
    match commit(state, ctx, s, new).await {
        Ok(r) => Ok(r),
        Err(p) => Ok(refused(state, s, view, p)),
    }
}

/// POST `/admin/sso/explain`: `groups` (one per line) or the `email` of a
/// user who signed in since start; the grant from the mapping in force.
async fn explain(
    state: &State,
    ctx: &RequestCtx,
    s: &Session,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let form = checked_form(state, ctx, s, req).await?;
    let email = form.text("email").trim().to_string();
    let typed: Vec<String> = form
        .text("groups")
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let mut view = View {
        explain_groups: typed.join("\n"),
        explain_email: email.clone(),
        ..View::default()
    };
    let groups = if typed.is_empty() && !email.is_empty() {
        match state.seen.groups_of(&email) {
            Some(g) => {
                view.explain_note = Some(format!("The groups {email} last signed in with."));
                g
            }
            None => {
                let p = Problem {
                    field: "email".into(),
                    message: format!("{email} has not signed in on this instance since it started; paste their groups instead"),
                };
                return Ok(refused(state, s, view, p));
            }
        }
    } else {
        typed
    };
    let email = (!email.is_empty()).then_some(email.as_str());
    view.explanation = Some(state.config.mapping.explain(email, &groups));
    Ok(render(state, s, view))
}

/// The live sessions for the table, or why they cannot be shown.
async fn session_list(state: &State) -> Result<Vec<Summary>, String> {
    control::list(state.sessions.as_ref(), None, now_unix())
        .await
        .map_err(|e| format!("the session store is unavailable: {e}"))
}

/// POST `/admin/sso/sessions`: `sid` (one session, by the prefix the
/// table shows) or `user` (every session of that email); 303 back to the
/// page with the count, one audit event per ended session.
async fn revoke_sessions(
    state: &State,
    ctx: &RequestCtx,
    s: &Session,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let path = req.uri().path().to_string();
    let form = checked_form(state, ctx, s, req).await?;
    let sid = form.text("sid").trim().to_string();
    let user = form.text("user").trim().to_string();
    let sel = match (sid.is_empty(), user.is_empty()) {
        (false, true) => Selector::Sid(sid),
        (true, false) => Selector::User(user),
        _ => {
            let view = View {
                sessions: Some(session_list(state).await),
                ..View::default()
            };
            let p = Problem {
                field: "sessions".into(),
                message: "choose one session (Revoke) or give one email".into(),
            };
            return Ok(refused(state, s, view, p));
        }
    };
    let done = match control::revoke(state.sessions.as_ref(), &sel, now_unix()).await {
        Ok(d) => d,
        Err(control::Error::Store(e)) => return Err(Error::SessionStore(e)),
        Err(e) => {
            let view = View {
                sessions: Some(session_list(state).await),
                ..View::default()
            };
            let p = Problem {
                field: "sessions".into(),
                message: e.to_string(),
            };
            return Ok(refused(state, s, view, p));
        }
    };
    let by = who(s);
    super::sessions::audited(
        &done,
        &sel,
        &super::sessions::By {
            who: &by,
            via: "sso_page",
            path: &path,
            client: ctx.client,
            request_id: Some(&ctx.id),
        },
    );
    let prefix = &state.config.server.prefix;
    Ok(see_other(&format!(
        "{prefix}/admin/sso?revoked={}#sessions",
        done.len()
    )))
}

// ---------------------------------------------------------------- page

#[derive(Default)]
struct View {
    /// The Sessions table (`None`: not loaded for this view).
    sessions: Option<Result<Vec<Summary>, String>>,
    status: StatusCode,
    notice: Option<String>,
    problems: Vec<Problem>,
    metadata_url: Option<String>,
    roles: Option<Vec<RoleRow>>,
    workspaces: Option<Vec<WorkspaceRow>>,
    projects: Option<Vec<ProjectRule>>,
    /// Extra empty rows (roles, workspaces, projects).
    extra: (usize, usize, usize),
    explain_groups: String,
    explain_email: String,
    explain_note: Option<String>,
    explanation: Option<Explanation>,
}

/// The IdP URLs: from the SAML settings in force, else as they will be.
fn sp_urls(state: &State) -> Vec<(&'static str, &'static str, String)> {
    let cfg = &state.config;
    let base = format!("{}{}", cfg.server.public_url, cfg.server.prefix);
    let (acs, entity, login, logout, metadata) = match &state.saml {
        Some(sso) => {
            let st = &sso.settings;
            (
                st.acs_url.clone(),
                st.entity_id.clone(),
                st.login_url.clone(),
                st.logout_url.clone(),
                st.metadata_url.clone(),
            )
        }
        None => {
            let entity = match cfg.raw.saml.entity_id.trim() {
                "" => format!("{base}/saml/metadata"),
                e => e.to_string(),
            };
            (
                format!("{base}/saml/acs"),
                entity,
                format!("{base}/saml/login"),
                format!("{base}/logout"),
                format!("{base}/saml/metadata"),
            )
        }
    };
    vec![
        (
            "acs",
            "ACS URL (Reply URL, Single sign-on URL)",
            acs.clone(),
        ),
        ("entity", "Audience URI (SP Entity ID, Identifier)", entity),
        ("recipient", "Recipient / Destination", acs),
        ("login", "Login URL (Sign-on URL)", login),
        ("logout", "Logout URL", logout),
        ("spmeta", "SP metadata", metadata),
    ]
}

fn render(state: &State, s: &Session, v: View) -> Response<Body> {
    let cfg = &state.config;
    let prefix = &cfg.server.prefix;
    let csrf = page::csrf_field(&csrf_token(state, s));
    let sso = &state.sso;
    let mut b = String::from("<h1>SSO &amp; SAML</h1>");
    b.push_str(&format!(
        "<p class=\"muted\">Signed in as {}. <a href=\"{}/logout\">Sign out</a></p>",
        escape(&who(s)),
        escape(prefix)
    ));
    if let Some(n) = &v.notice {
        b.push_str(&format!(
            "<p class=\"ok\" role=\"status\" id=\"notice\">{}</p>",
            escape(n)
        ));
    }
    b.push_str(&page::problems(&v.problems));
    if let Some(p) = &sso.problem {
        b.push_str(&format!(
            "<p class=\"error\" role=\"alert\">The saved settings (version {}) are not in force: {}</p>",
            sso.version,
            escape(p)
        ));
    }
    if sso.state_dir.is_none() {
        b.push_str("<p class=\"locked\">Saving is off: set <code>server.state_dir</code> (a writable directory) to change these settings here.</p>");
    }

    // 1. Organization domain.
    let host = cfg
        .server
        .public_url
        .split("://")
        .nth(1)
        .unwrap_or(&cfg.server.public_url)
        .to_string();
    b.push_str("<h2 id=\"domain\">Organization</h2><table>");
    b.push_str(&page::row("Organization domain", &host));
    let domains = &cfg.raw.saml.allowed_email_domains;
    b.push_str(&page::row(
        "Email domains allowed to sign in",
        &if domains.is_empty() {
            "any".to_string()
        } else {
            domains.join(", ")
        },
    ));
    b.push_str("</table>");

    // 2. What to paste into the IdP.
    b.push_str("<h2 id=\"urls\">Paste into your identity provider</h2><table>");
    for (id, label, value) in sp_urls(state) {
        b.push_str(&page::copy_row(id, label, &value));
    }
    let a = &cfg.raw.saml;
    b.push_str(&page::row(
        "Attributes to send",
        &format!(
            "{}, {}, {}, {} (email required)",
            a.attr_email, a.attr_first_name, a.attr_last_name, a.attr_groups
        ),
    ));
    b.push_str("</table>");

    // 3. IdP metadata.
    b.push_str("<h2 id=\"metadata\">Identity provider metadata</h2>");
    b.push_str(&metadata_status(state));
    match sso.locks.get(settings::KEY_METADATA) {
        Some(src) => b.push_str(&format!(
            "<p class=\"locked\">The IdP metadata is set by the configuration (<code>{}</code>) and cannot be changed here.</p>",
            escape(src)
        )),
        None => {
            let url = v.metadata_url.clone().unwrap_or_else(|| match &sso.current().metadata {
                Some(Metadata::Url { url }) => url.clone(),
                _ => String::new(),
            });
            b.push_str(&format!(
                "<form method=\"post\" action=\"{p}/admin/sso/metadata\" enctype=\"multipart/form-data\" id=\"upload-form\">{csrf}<input type=\"hidden\" name=\"source\" value=\"upload\">\
<fieldset><legend>Upload the IdP metadata XML</legend>\
<p><label for=\"metadata_file\">Metadata file</label> <input type=\"file\" id=\"metadata_file\" name=\"metadata_file\" accept=\".xml,application/xml,text/xml,application/samlmetadata+xml\"></p>\
<p><label for=\"metadata_xml\">or paste the XML</label><textarea id=\"metadata_xml\" name=\"metadata_xml\" rows=\"4\"></textarea></p>\
<button type=\"submit\" id=\"upload\">Upload and check</button></fieldset></form>\
<form method=\"post\" action=\"{p}/admin/sso/metadata\" id=\"url-form\">{csrf}<input type=\"hidden\" name=\"source\" value=\"url\">\
<fieldset><legend>Or fetch it from a URL</legend><p><label for=\"metadata_url\">Metadata URL</label><input type=\"url\" id=\"metadata_url\" name=\"metadata_url\" value=\"{u}\" placeholder=\"https://idp.example.com/metadata\"></p>\
<button type=\"submit\" id=\"fetch\">Fetch and check</button> <span class=\"muted\">Refreshed every {r}.</span></fieldset></form>",
                p = escape(prefix),
                u = escape(&url),
                r = escape(&cfg.raw.saml.metadata_refresh),
            ));
        }
    }

    // 4. Group mappings.
    b.push_str("<h2 id=\"mappings\">Group mappings</h2>");
    b.push_str("<p class=\"muted\" id=\"groups-help\">Groups: one per line, as the IdP sends them (SAML group names, compared exactly) or LDAP DNs such as <code>cn=team,ou=groups,dc=example,dc=com</code> (compared normalized). A user in several groups gets the highest role.</p>");
    let raw_m = &cfg.raw.mapping;
    let (e_roles, e_ws, e_prj) = v.extra;
    b.push_str(&format!(
        "<form method=\"post\" action=\"{}/admin/sso/mapping\" id=\"mapping-form\">{csrf}",
        escape(prefix)
    ));
    // Organization roles.
    b.push_str("<h3>Organization roles</h3>");
    let mut roles = v.roles.clone().unwrap_or_else(|| {
        raw_m
            .roles
            .iter()
            .map(|(r, g)| RoleRow {
                role: r.clone(),
                groups: g.clone(),
            })
            .collect()
    });
    match sso.locks.get(settings::KEY_ROLES) {
        Some(src) => b.push_str(&page::locked(
            "organization roles",
            src,
            &readonly_map(&raw_m.roles),
        )),
        None => {
            roles.extend((0..e_roles + 1).map(|_| RoleRow::default()));
            b.push_str(&page::role_rows(&roles));
            b.push_str("<button type=\"submit\" class=\"secondary\" name=\"action\" value=\"add-role\" id=\"add-role\">Add a role row</button>");
        }
    }
    let default = match cfg.mapping.default_role() {
        Some(r) => r.as_str().to_string(),
        None => "(no role claim: the application decides)".into(),
    };
    b.push_str(&format!("<p class=\"muted\">Users in no mapped group: <strong>{}</strong> (<code>mapping.default_role</code>).</p>", escape(&default)));
    // Workspaces.
    b.push_str("<h3>Workspaces</h3>");
    let mut ws = v.workspaces.clone().unwrap_or_else(|| {
        raw_m
            .workspaces
            .iter()
            .map(|(t, g)| WorkspaceRow {
                title: t.clone(),
                groups: g.clone(),
            })
            .collect()
    });
    match sso.locks.get(settings::KEY_WORKSPACES) {
        Some(src) => b.push_str(&page::locked(
            "workspaces",
            src,
            &readonly_map(&raw_m.workspaces),
        )),
        None => {
            ws.extend((0..e_ws + 1).map(|_| WorkspaceRow::default()));
            b.push_str(&page::workspace_rows(&ws));
            b.push_str("<button type=\"submit\" class=\"secondary\" name=\"action\" value=\"add-workspace\" id=\"add-workspace\">Add a workspace row</button>");
        }
    }
    // Projects.
    b.push_str("<h3>Projects</h3><p class=\"muted\">Inherit: the user's organization role (annotator, reviewer, manager, administrator or owner).</p>");
    let mut prj = v.projects.clone().unwrap_or_else(|| raw_m.projects.clone());
    match sso.locks.get(settings::KEY_PROJECTS) {
        Some(src) => {
            let list: BTreeMap<String, Vec<String>> = raw_m
                .projects
                .iter()
                .map(|p| (format!("{} ({})", p.project, p.role), vec![p.group.clone()]))
                .collect();
            b.push_str(&page::locked("project rules", src, &readonly_map(&list)))
        }
        None => {
            prj.extend((0..e_prj + 1).map(|_| ProjectRule::default()));
            b.push_str(&page::project_rows(&prj));
            b.push_str("<button type=\"submit\" class=\"secondary\" name=\"action\" value=\"add-project\" id=\"add-project\">Add a project row</button>");
        }
    }
    b.push_str("<p><button type=\"submit\" name=\"action\" value=\"save\" id=\"save\">Save</button></p></form>");

    // 5. Test sign-in.
    b.push_str("<h2 id=\"test\">Test sign-in</h2>");
    if state.saml.is_some() {
        b.push_str(&format!(
            "<p>Signs in at the identity provider in a new tab and shows what the assertion carries and the role, workspaces and projects it would get. Your own session does not change.</p><p><a href=\"{}/admin/sso/test\" target=\"_blank\" rel=\"noopener\" id=\"test-link\">Test sign-in (opens a new tab)</a></p>",
            escape(prefix)
        ));
    } else {
        b.push_str("<p class=\"muted\">Available once IdP metadata is in force.</p>");
    }

    // 6. Sessions.
    b.push_str(&sessions_html(prefix, &csrf, &v.sessions));

    // 7. Explain.
    b.push_str(&format!(
        "<h2 id=\"explain\">Explain a user's grant</h2><form method=\"post\" action=\"{}/admin/sso/explain\" id=\"explain-form\">{csrf}\
<p><label for=\"explain-groups\">Groups (one per line)</label><textarea id=\"explain-groups\" name=\"groups\">{}</textarea></p>\
<p><label for=\"explain-email\">Email (the owner check; alone: the groups this user last signed in with)</label><input type=\"email\" id=\"explain-email\" name=\"email\" value=\"{}\"></p>\
<button type=\"submit\" id=\"explain-button\">Explain</button></form>",
        escape(prefix),
        escape(&v.explain_groups),
        escape(&v.explain_email)
    ));
    if let Some(e) = &v.explanation {
        if let Some(n) = &v.explain_note {
            b.push_str(&format!("<p class=\"muted\">{}</p>", escape(n)));
        }
        b.push_str(&explanation_html(e));
    }

    let body = page::frame("SSO & SAML", &format!("{prefix}/admin/sso.js"), &b);
    let status = if v.status == StatusCode::default() {
        StatusCode::OK
    } else {
        v.status
    };
    let mut r = crate::http::html(status, body);
    use base64::Engine as _;
    let hash = base64::engine::general_purpose::STANDARD
        .encode(openssl::sha::sha256(page::STYLE.as_bytes()));
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'sha256-{hash}'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r.headers_mut()
        .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// The Sessions table: one Revoke form per row, and a form to end every
/// session of one email. Shows the sid prefix, never the id.
fn sessions_html(prefix: &str, csrf: &str, list: &Option<Result<Vec<Summary>, String>>) -> String {
    let action = format!("{}/admin/sso/sessions", escape(prefix));
    let mut b = String::from("<h2 id=\"sessions\">Sessions</h2>");
    let list = match list {
        None => {
            b.push_str(&format!("<p class=\"muted\"><a href=\"{}/admin/sso#sessions\">Reload the page</a> to see the sessions.</p>", escape(prefix)));
            return b;
        }
        Some(Err(e)) => {
            b.push_str(&format!(
                "<p class=\"error\" role=\"alert\">{}</p>",
                escape(e)
            ));
            return b;
        }
        Some(Ok(l)) => l,
    };
    b.push_str(&format!(
        "<p class=\"muted\">{} live session{}. A revoked session is signed out at its next request, on every replica.</p>",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    ));
    if !list.is_empty() {
        b.push_str("<table id=\"sessions-table\"><thead><tr><th scope=\"col\">Session</th><th scope=\"col\">User</th><th scope=\"col\">Method</th><th scope=\"col\">Role</th><th scope=\"col\">IdP</th><th scope=\"col\">Signed in (UTC)</th><th scope=\"col\">Last seen</th><th scope=\"col\">Expires</th><th scope=\"col\"></th></tr></thead><tbody>");
        for s in list.iter().take(MAX_LISTED) {
            let user = match &s.email {
                Some(e) if *e != s.user => format!("{} ({})", s.user, e),
                _ => s.user.clone(),
            };
            b.push_str(&format!(
                "<tr><td><code>{sid}</code></td><td>{user}</td><td>{m}</td><td>{role}</td><td>{idp}</td><td>{c}</td><td>{l}</td><td>{e}</td>\
<td><form method=\"post\" action=\"{action}\">{csrf}<input type=\"hidden\" name=\"sid\" value=\"{sid}\">\
<button type=\"submit\" class=\"secondary\" aria-label=\"Revoke session {sid} of {user}\">Revoke</button></form></td></tr>",
                sid = escape(&s.sid),
                user = escape(&user),
                m = escape(s.method),
                role = escape(s.role.map_or("-", Role::as_str)),
                idp = escape(s.idp.as_deref().unwrap_or(if s.method == "ldap" { "directory" } else { "-" })),
                c = escape(&crate::pages::utc(s.created)),
                l = escape(&crate::pages::utc(s.last_seen)),
                e = escape(&crate::pages::utc(s.expires)),
            ));
        }
        b.push_str("</tbody></table>");
        if list.len() > MAX_LISTED {
            b.push_str(&format!(
                "<p class=\"muted\" id=\"sessions-more\">The newest {MAX_LISTED} are shown; <code>authgate sessions list</code> shows all {}.</p>",
                list.len()
            ));
        }
    }
    b.push_str(&format!(
        "<form method=\"post\" action=\"{action}\" id=\"revoke-user-form\">{csrf}\
<p><label for=\"revoke-user\">Sign a user out everywhere (email)</label><input type=\"email\" id=\"revoke-user\" name=\"user\"></p>\
<button type=\"submit\" id=\"revoke-user-button\">Revoke all their sessions</button></form>"
    ));
    b
}

fn readonly_map(m: &BTreeMap<String, Vec<String>>) -> String {
    let mut s = String::from("<table>");
    for (k, v) in m {
        s.push_str(&page::row(k, &v.join("; ")));
    }
    s.push_str("</table>");
    s
}

/// Every configured IdP (`[saml]` and each `[[saml.idps]]`): where its
/// metadata comes from, whether the copy in force is current, and its
/// signing certificates with their expiry.
fn metadata_status(state: &State) -> String {
    let Some(sso) = &state.saml else {
        return "<p id=\"metadata-status\">SAML is off: no IdP metadata is in force. Upload it or give its URL below.</p>".into();
    };
    let providers = sso.providers();
    let mut b = String::from("<div id=\"metadata-status\">");
    for p in providers {
        if providers.len() > 1 {
            b.push_str(&format!(
                "<h3 id=\"idp-{id}\">{} (<code>{id}</code>)</h3>",
                escape(&p.name),
                id = escape(&p.id)
            ));
        }
        b.push_str(&provider_status(state, p));
    }
    b.push_str("</div>");
    b
}

/// The configuration key that sets `p`'s metadata, for "Set by".
fn metadata_key(state: &State, p: &crate::saml::Provider) -> String {
    let leaf = match p.settings.metadata {
        crate::saml::settings::MetadataSource::Url(_) => "idp_metadata_url",
        crate::saml::settings::MetadataSource::File(_) => "idp_metadata_file",
    };
    let raw = &state.config.raw.saml;
    match raw.idps.iter().position(|e| e.id.trim() == p.id) {
        Some(i) => format!("saml.idps.{i}.{leaf}"),
        None if raw.idp_metadata_url.trim().is_empty() => "saml.idp_metadata_file".into(),
        None => "saml.idp_metadata_url".into(),
    }
}

fn provider_status(state: &State, p: &crate::saml::Provider) -> String {
    let status = p.status();
    let loaded = p.loaded();
    let idp = &loaded.idp;
    let mut b = format!("<table id=\"metadata-status-{}\">", escape(&p.id));
    b.push_str(&page::row("Source", &status.source));
    b.push_str(&page::row(
        "Set by",
        &state.config.source_of(&metadata_key(state, p)),
    ));
    b.push_str(&page::row("IdP entity ID", &idp.entity_id));
    b.push_str(&page::row("IdP single sign-on URL", &idp.sso_redirect));
    b.push_str(&page::row(
        "IdP single logout URL",
        idp.slo_redirect.as_deref().unwrap_or("none"),
    ));
    let state_text = match &status.last_error {
        None => "loaded, current".to_string(),
        Some(_) => format!(
            "the last refresh failed: the copy loaded {} stays in force",
            crate::saml::metadata::describe_time(status.loaded_at)
        ),
    };
    b.push_str(&format!(
        "<tr><th scope=\"row\">Status</th><td class=\"{}\">{}</td></tr>",
        if status.last_error.is_some() {
            "warn"
        } else {
            "ok"
        },
        escape(&state_text)
    ));
    b.push_str(&page::row(
        "Metadata signature",
        &match &idp.signed_by {
            Some(key) => format!("verified with the certificate of {key}"),
            None => "not checked: trusted as fetched (set saml.metadata_signing_cert to require the IdP's signature)".into(),
        },
    ));
    b.push_str(&page::row(
        "Valid until",
        &match idp.valid_until {
            Some(t) if t <= chrono::Utc::now() => {
                format!(
                    "{} — EXPIRED: the IdP must publish a current copy",
                    t.to_rfc3339()
                )
            }
            Some(t) => t.to_rfc3339(),
            None => "not stated".into(),
        },
    ));
    b.push_str(&page::row(
        "Last refresh",
        &crate::saml::metadata::describe_time(status.loaded_at),
    ));
    b.push_str(&page::row(
        "Last error",
        status.last_error.as_deref().unwrap_or("none"),
    ));
    for c in &idp.certs {
        let warn = match expiry(&c.der, c.expired) {
            Expiry::Expired => " <span class=\"warn\">EXPIRED</span>".to_string(),
            Expiry::Soon => format!(" <span class=\"warn\">expires in less than {EXPIRY_WARNING_DAYS} days: ask the IdP for the new certificate</span>"),
            Expiry::Later => String::new(),
        };
        b.push_str(&format!(
            "<tr><th scope=\"row\">Signing certificate</th><td>{} — expires {}{warn}</td></tr>",
            escape(&c.subject),
            escape(&c.not_after)
        ));
    }
    b.push_str("</table>");
    b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Expired,
    /// Within [`EXPIRY_WARNING_DAYS`].
    Soon,
    Later,
}

/// How close a certificate (DER) is to its notAfter, now. `expired_at_load`
/// is used when the certificate cannot be read again.
fn expiry(der: &[u8], expired_at_load: bool) -> Expiry {
    let (Ok(x), Ok(now), Ok(soon)) = (
        openssl::x509::X509::from_der(der),
        openssl::asn1::Asn1Time::days_from_now(0),
        openssl::asn1::Asn1Time::days_from_now(EXPIRY_WARNING_DAYS),
    ) else {
        return if expired_at_load {
            Expiry::Expired
        } else {
            Expiry::Later
        };
    };
    if x.not_after() < now {
        Expiry::Expired
    } else if x.not_after() < soon {
        Expiry::Soon
    } else {
        Expiry::Later
    }
}

pub fn explanation_html(e: &Explanation) -> String {
    let r = &e.resolved;
    let from = match e.role_from {
        RoleFrom::OwnerEmail => "the email is mapping.owner_email",
        RoleFrom::Groups => "the highest role of the mapped groups",
        RoleFrom::Default => "no role group matched: mapping.default_role",
    };
    let mut b =
        String::from("<section id=\"explanation\" aria-live=\"polite\"><h3>Result</h3><table>");
    b.push_str(&page::row(
        "Organization role",
        &format!(
            "{} ({from})",
            r.role.map(|r| r.as_str()).unwrap_or("no role claim")
        ),
    ));
    b.push_str(&page::row(
        "Workspaces",
        &if r.workspaces.is_empty() {
            "none".into()
        } else {
            r.workspaces.join(", ")
        },
    ));
    let projects: Vec<String> = r
        .projects
        .iter()
        .map(|(p, v)| format!("{p}: {v}"))
        .collect();
    b.push_str(&page::row(
        "Project roles",
        &if projects.is_empty() {
            "none".into()
        } else {
            projects.join(", ")
        },
    ));
    b.push_str("</table><h3>Mapping rows that name these groups</h3>");
    if e.rows.is_empty() {
        b.push_str("<p>None.</p>");
    } else {
        b.push_str("<table id=\"explain-rows\"><thead><tr><th scope=\"col\">Group</th><th scope=\"col\">Row</th><th scope=\"col\">Grants</th><th scope=\"col\">Decided</th></tr></thead><tbody>");
        for row in &e.rows {
            let grant = match &row.grant {
                Grant::Role(r) => format!("role {}", r.as_str()),
                Grant::Workspace(t) => format!("workspace {t}"),
                Grant::Project(p, pr) => format!("project {p} as {}", pr.as_str()),
            };
            b.push_str(&format!(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                escape(&row.group),
                escape(&row.key),
                escape(&grant),
                if row.decided {
                    "yes"
                } else {
                    "no (a higher grant won)"
                }
            ));
        }
        b.push_str("</tbody></table>");
    }
    if !e.unmatched.is_empty() {
        b.push_str(&format!(
            "<p>Groups no row names: {}</p>",
            escape(&e.unmatched.join(", "))
        ));
    }
    b.push_str("</section>");
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate valid from `from` to `to` days from now.
    fn cert(from: i64, to: i64) -> Vec<u8> {
        use openssl::asn1::Asn1Time;
        let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).expect("rsa"))
            .expect("key");
        let mut name = openssl::x509::X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", "idp").expect("cn");
        let name = name.build();
        let mut b = openssl::x509::X509Builder::new().expect("builder");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(&name).expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        b.set_not_before(&Asn1Time::from_unix(now + from * 86400).expect("t"))
            .expect("nb");
        b.set_not_after(&Asn1Time::from_unix(now + to * 86400).expect("t"))
            .expect("na");
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .expect("sign");
        b.build().to_der().expect("der")
    }

    #[test]
    fn certificates_expiring_within_30_days_are_flagged() {
        let table = [
            (-400, -1, Expiry::Expired),
            (-10, 1, Expiry::Soon),
            (-10, 29, Expiry::Soon),
            (-10, 31, Expiry::Later),
            (-10, 365, Expiry::Later),
        ];
        for (from, to, want) in table {
            assert_eq!(expiry(&cert(from, to), false), want, "{from}..{to}");
        }
        assert_eq!(expiry(b"not DER", true), Expiry::Expired);
        assert_eq!(expiry(b"not DER", false), Expiry::Later);
    }
}
