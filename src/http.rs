//! HTTP response primitives every layer shares: the one response [`Body`]
//! type, and builders for authgate's own small responses (HTML pages, JSON
//! errors) and for reading a small request body. Only the upstream's
//! streamed body type comes from elsewhere ([`crate::upstream`], a leaf).

use std::time::Duration;

use ::http::{header, HeaderValue, Response, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};

/// Every response body: the upstream's streamed body or one of ours.
pub type Body = Either<crate::upstream::UpstreamBody, Full<Bytes>>;

/// One of authgate's own bodies.
pub fn full(b: impl Into<Bytes>) -> Body {
    Either::Right(Full::new(b.into()))
}

/// An HTML page: no caching, no framing, no scripts (pages that need one
/// set their own `Content-Security-Policy` with the script's hash).
pub fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(page)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    resp
}

/// A JSON document, not cached.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(full(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A public, static document (JWKS, SP metadata, a script) that clients
/// may cache for five minutes.
pub fn cacheable(body: impl Into<Bytes>, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

/// How long a small body authgate reads itself may take to arrive: a
/// client trickling a login form one byte at a time (slowloris) is cut
/// with 400 instead of holding the connection for ever.
pub const SMALL_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a small body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body not received in time")]
    Slow,
    #[error("request body too large")]
    TooLarge,
    #[error("unreadable body")]
    Unreadable,
}

/// Reads a small request body (login forms, SAML posts) with a hard cap on
/// its size and on the time it takes ([`SMALL_BODY_TIMEOUT`]).
pub async fn read_body<B>(body: B, max: usize) -> Result<Bytes, BodyError>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match tokio::time::timeout(SMALL_BODY_TIMEOUT, Limited::new(body, max).collect()).await {
        Err(_) => Err(BodyError::Slow),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(_)) => Err(BodyError::Unreadable),
    }
}
