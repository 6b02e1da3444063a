//! The one place that turns failures into status codes and pages.
//!
//! Every module returns its own typed error; `Error` gathers them and
//! `respond` chooses the status by an exhaustive match, so a new failure kind
//! cannot reach a user without someone deciding its status here. Users get a
//! short HTML page (browser navigations) or JSON (everything else) carrying
//! the request id; the log gets the cause chain. Nothing secret is ever put
//! in either.

use http::{header, HeaderValue, Response, StatusCode};

use crate::http::Body;
use crate::http::{html, json};
use crate::pages;
use crate::request::context::RequestCtx;
use crate::request::path;
use crate::role::Role;
use crate::upstream;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("ambiguous request path")]
    BadPath(#[source] path::Error),
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    #[error("request body larger than upstream.max_body")]
    BodyTooLarge,
    #[error("upstream request failed")]
    Upstream(#[source] upstream::Error),
    #[error("not signed in")]
    Unauthenticated,
    #[error("refused by policy: {reason}")]
    ManagedByDirectory { reason: String },
    #[error("organization role {} needed, signed in as {}", .needed, .role.map_or("no role", Role::as_str))]
    RoleRequired { needed: Role, role: Option<Role> },
    #[error("account pending activation")]
    PendingActivation,
    #[error("account deactivated")]
    Deactivated,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("session store unavailable")]
    SessionStore(#[source] crate::session::StoreError),
    #[error("identity signing failed")]
    Identity(#[source] crate::identity::Error),
    #[error("SAML sign-in refused")]
    Saml(#[source] crate::saml::Error),
    #[error("ldap sign-in failed")]
    Ldap(#[source] crate::ldap::Error),
    #[error("too many failed sign-in attempts")]
    Throttled { retry_after: u64 },
    #[error("login form CSRF token missing or not bound to this browser")]
    CsrfMismatch,
}

impl From<crate::http::BodyError> for Error {
    fn from(e: crate::http::BodyError) -> Error {
        use crate::http::BodyError;
        match e {
            BodyError::TooLarge => Error::BodyTooLarge,
            BodyError::Slow => Error::BadRequest("request body not received in time"),
            BodyError::Unreadable => Error::BadRequest("unreadable body"),
        }
    }
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadPath(_) | Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Upstream(e) => match e {
                upstream::Error::Timeout => StatusCode::GATEWAY_TIMEOUT,
                upstream::Error::Connect(_) | upstream::Error::Other(_) => StatusCode::BAD_GATEWAY,
            },
            Error::Unauthenticated => StatusCode::UNAUTHORIZED,
            Error::ManagedByDirectory { .. }
            | Error::RoleRequired { .. }
            | Error::PendingActivation
            | Error::Deactivated
            | Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::SessionStore(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Identity(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Saml(e) => saml_status(e),
            Error::Ldap(e) if e.is_credentials() => StatusCode::UNAUTHORIZED,
            Error::Ldap(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::CsrfMismatch => StatusCode::FORBIDDEN,
        }
    }

    /// Machine-readable code for JSON bodies.
    fn code(&self) -> &'static str {
        match self {
            Error::BadPath(_) => "bad_path",
            Error::BadRequest(_) => "bad_request",
            Error::BodyTooLarge => "body_too_large",
            Error::Upstream(upstream::Error::Timeout) => "upstream_timeout",
            Error::Upstream(_) => "upstream_unavailable",
            Error::Unauthenticated => "unauthenticated",
            Error::ManagedByDirectory { .. } => "managed_by_directory",
            Error::RoleRequired { .. } => "role_required",
            Error::PendingActivation => "pending_activation",
            Error::Deactivated => "deactivated",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound => "not_found",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::SessionStore(_) => "session_store_unavailable",
            Error::Identity(_) => "internal_error",
            Error::Saml(_) => "saml_refused",
            Error::Ldap(e) if e.is_credentials() => "invalid_credentials",
            Error::Ldap(_) => "directory_unavailable",
            Error::Throttled { .. } => "too_many_attempts",
            Error::CsrfMismatch => "csrf",
        }
    }

    /// What the user should read (and do).
    fn user_message(&self) -> String {
        match self {
            Error::BadPath(_) => "The request path is ambiguous (for example an encoded slash) and was refused.".into(),
            Error::BadRequest(what) => format!("The request was malformed: {what}."),
            Error::BodyTooLarge => "The request body is larger than this service accepts.".into(),
            Error::Upstream(upstream::Error::Timeout) => "The application did not answer in time. Try again in a moment.".into(),
            Error::Upstream(_) => "The application is not reachable right now. Try again in a moment.".into(),
            Error::Unauthenticated => "Sign in to continue.".into(),
            Error::ManagedByDirectory { .. } => "This change is managed by your organization's directory (SSO/LDAP groups). Ask your administrator to change your group membership instead.".into(),
            Error::RoleRequired { needed, role } => format!(
                "This needs the {needed} role (or higher); you are signed in as {}. Ask your administrator to add you to a group that grants the {needed} role, then sign in again.",
                match role.map(Role::as_str) {
                    Some(r) => format!("{} {r}", if r.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }),
                    None => "someone without an organization role".to_string(),
                }
            ),
            Error::PendingActivation => "Your account is pending activation. Ask your administrator to add you to a group that grants access, then sign in again.".into(),
            Error::Deactivated => "Your account is deactivated. Contact your administrator if you think this is a mistake.".into(),
            Error::Forbidden(what) => format!("Access denied: {what}."),
            Error::NotFound => "Not found.".into(),
            Error::MethodNotAllowed => "Method not allowed.".into(),
            Error::SessionStore(_) => "Sign-in is temporarily unavailable. Try again in a moment.".into(),
            Error::Identity(_) => "Something went wrong on our side.".into(),
            Error::Saml(e) => saml_message(e),
            Error::Ldap(e) if e.is_credentials() => crate::ldap::login::INVALID.into(),
            Error::Ldap(_) => crate::ldap::login::UNAVAILABLE.into(),
            Error::Throttled { .. } => crate::ldap::login::THROTTLED.into(),
            Error::CsrfMismatch => crate::ldap::login::EXPIRED.into(),
        }
    }
}

/// Builds the response for `err` and logs its cause chain once.
pub fn respond(err: &Error, ctx: &RequestCtx) -> Response<Body> {
    let status = err.status();
    let chain = cause_chain(err);
    if status.is_server_error() {
        tracing::warn!(request_id = %ctx.id, status = status.as_u16(), error = %chain, "request failed");
    } else {
        tracing::debug!(request_id = %ctx.id, status = status.as_u16(), error = %chain, "request refused");
    }
    let mut resp = if ctx.wants_html {
        let title = status.canonical_reason().unwrap_or("Error");
        html(
            status,
            pages::error::error_page(title, &err.user_message(), &ctx.id, &ctx.prefix),
        )
    } else {
        let mut body = serde_json::json!({
            "error": err.code(),
            "message": err.user_message(),
            "request_id": ctx.id.as_str(),
        });
        if let Error::ManagedByDirectory { reason } = err {
            body["reason"] = serde_json::Value::String(reason.clone());
        }
        if let Error::RoleRequired { needed, role } = err {
            body["required_role"] = serde_json::Value::String(needed.as_str().to_string());
            body["role"] = role.map_or(serde_json::Value::Null, |r| {
                serde_json::Value::String(r.as_str().into())
            });
        }
        json(status, &body)
    };
    if let Ok(v) = HeaderValue::from_str(&ctx.id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if let Error::Throttled { retry_after } = err {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
    }
    resp
}

/// SAML failures: the status each one gets (chosen here, exhaustively).
fn saml_status(e: &crate::saml::Error) -> StatusCode {
    use crate::saml::Error as S;
    match e {
        S::MetadataInvalid(_)
        | S::MetadataNoSigningCertificate
        | S::MetadataBadCertificate(_)
        | S::MetadataNoRedirectSso
        | S::MetadataUnsigned { .. }
        | S::MetadataSignature { .. }
        | S::MetadataExpired(_)
        | S::MetadataFetch { .. }
        | S::Build(_)
        | S::ReplayCacheFull
        | S::ReplayStore(_) => StatusCode::SERVICE_UNAVAILABLE,
        S::MissingResponse | S::Base64 | S::NotUtf8 | S::Malformed(_) => StatusCode::BAD_REQUEST,
        S::Doctype
        | S::Entity
        | S::AssertionCount { .. }
        | S::EncryptionRequired
        | S::NoDecryptionKey
        | S::EncryptionAlgorithm(_)
        | S::EncryptionStructure(_)
        | S::Decrypt(_)
        | S::Unsigned
        | S::SignatureAlgorithm(_)
        | S::SignatureInvalid
        | S::Status { .. }
        | S::Destination { .. }
        | S::Recipient { .. }
        | S::Issuer { .. }
        | S::AudienceMissing { .. }
        | S::Audience { .. }
        | S::Expired(_)
        | S::NotYetValid(_)
        | S::IssuedInFuture(_)
        | S::TooOld(_)
        | S::SubjectConfirmation(_)
        | S::UnknownRequest(_)
        | S::Unsolicited
        | S::Replay(_)
        | S::MissingNameId
        | S::MissingEmail(_)
        | S::EmailDomain(_)
        | S::GroupsOverage { .. }
        | S::Logout(_) => StatusCode::FORBIDDEN,
        S::SloUnavailable => StatusCode::NOT_FOUND,
    }
}

/// What a person can do about each SAML failure, in plain words.
fn saml_message(e: &crate::saml::Error) -> String {
    use crate::saml::Error as S;
    const AGAIN: &str = "Start again from the sign-in page.";
    const ADMIN: &str =
        "Ask your administrator to check the SSO set-up, quoting the request id below.";
    match e {
        S::MetadataInvalid(_)
        | S::MetadataNoSigningCertificate
        | S::MetadataBadCertificate(_)
        | S::MetadataNoRedirectSso
        | S::MetadataUnsigned { .. }
        | S::MetadataSignature { .. }
        | S::MetadataExpired(_)
        | S::MetadataFetch { .. }
        | S::Build(_) => format!("Single sign-on is not available right now: the identity provider's metadata could not be loaded. {ADMIN}"),
        S::ReplayCacheFull => "Single sign-on is busy right now. Try again in a few minutes.".into(),
        S::ReplayStore(_) => "Sign-in is temporarily unavailable. Try again in a moment.".into(),
        S::MissingResponse | S::Base64 | S::NotUtf8 | S::Malformed(_) => format!("The sign-in response from your identity provider could not be read. {AGAIN}"),
        S::Doctype | S::Entity | S::AssertionCount { .. } => format!("The sign-in response has a structure this service refuses for security reasons. {ADMIN}"),
        S::EncryptionRequired => "This service accepts only encrypted assertions. An administrator must turn on assertion encryption for this application in the identity provider (the encryption certificate is in the SP metadata).".into(),
        S::NoDecryptionKey => format!("The identity provider encrypts its assertions, but this service has no key to decrypt them. {ADMIN}"),
        S::EncryptionAlgorithm(alg) => format!("The identity provider encrypts with an algorithm this service does not accept ({alg}). An administrator should switch it to AES-GCM or AES-CBC with RSA-OAEP."),
        S::EncryptionStructure(_) | S::Decrypt(_) => format!("The encrypted sign-in response could not be decrypted. If the service's encryption certificate changed, an administrator must give the identity provider the current SP metadata. {AGAIN}"),
        S::Unsigned => "The identity provider sent an unsigned response. An administrator must configure it to sign the assertion or the response.".into(),
        S::SignatureAlgorithm(alg) => format!("The response is signed with an algorithm this service does not accept ({alg}). An administrator should switch the identity provider to RSA-SHA256."),
        S::SignatureInvalid => "The sign-in response is not signed by a certificate this service trusts. If the identity provider's signing certificate changed, an administrator must refresh the IdP metadata in authgate.".into(),
        S::Status { code, message } => format!("Your identity provider did not sign you in (status {code}{}). Try again, or contact your administrator.", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()),
        S::Destination { expected, .. } | S::Recipient { expected, .. } => format!("The identity provider sent the response to another address. An administrator must set the ACS (Reply/Recipient) URL in the identity provider to {expected}"),
        S::Issuer { expected, .. } => format!("The response comes from an identity provider this service is not set up for (expected {expected}). An administrator must check the IdP metadata."),
        S::AudienceMissing { expected } | S::Audience { expected, .. } => format!("The identity provider addressed its response to another application. An administrator must paste this entity ID into the identity provider as the Audience (SP Entity ID): {expected}"),
        S::Expired(_) | S::NotYetValid(_) | S::IssuedInFuture(_) | S::TooOld(_) => format!("The sign-in response has expired or is not valid yet. This usually means the clocks of the identity provider and this server differ: check both clocks, then {}", AGAIN.to_lowercase()),
        S::SubjectConfirmation(_) | S::MissingNameId => format!("The sign-in response lacks information this service needs. {ADMIN}"),
        S::UnknownRequest(_) | S::Unsolicited => format!("This sign-in was not started from this browser, or it took too long. {AGAIN}"),
        S::Replay(_) => format!("This sign-in response was already used. {AGAIN}"),
        S::MissingEmail(attr) => format!("Your identity provider did not send your email address. An administrator must add the attribute {attr} to the SAML assertion."),
        S::EmailDomain(domain) => format!("Accounts of the domain {domain} cannot sign in here."),
        S::GroupsOverage { .. } => "You are in more groups than your identity provider puts in a sign-in (Microsoft Entra ID stops at 150 and sends a link instead), so this service cannot tell which access you should have, and it will not guess. An administrator of the identity provider must change this application's group claim: send only the groups assigned to the application, or apply a group filter (for example only groups whose names start with the prefix used here), or use app roles instead of groups. Then sign in again.".into(),
        S::Logout(_) => format!("The sign-out message from your identity provider was refused. {ADMIN}"),
        S::SloUnavailable => "Single logout is not set up for this application.".into(),
    }
}

pub fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}
