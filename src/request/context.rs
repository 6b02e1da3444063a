//! Per-connection and per-request context: who is calling, over what, and
//! how they want errors rendered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{header, HeaderMap, HeaderValue, Method};

use crate::telemetry::RequestId;

/// Facts about one accepted connection, computed once per connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The peer is in `server.trusted_proxies`: its X-Forwarded-* are believed.
    pub trusted: bool,
    /// The peer IP as a header value (X-Forwarded-For for untrusted peers).
    pub peer_header: HeaderValue,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, tls: bool, trusted: bool) -> ConnInfo {
        let peer_header = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ConnInfo {
            peer,
            tls,
            trusted,
            peer_header,
        }
    }
}

/// Facts about one request, for logging and error rendering.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub id: RequestId,
    pub start: Instant,
    pub method: Method,
    /// Browser navigation (GET/HEAD accepting text/html): errors as HTML,
    /// unauthenticated requests redirected to the login page.
    pub wants_html: bool,
    /// `server.prefix`, shared with the state.
    pub prefix: Arc<str>,
    pub client: std::net::IpAddr,
}

impl RequestCtx {
    /// The same request, with errors rendered as HTML pages: for endpoints a
    /// browser reaches by posting a form (SAML ACS and SLO).
    pub fn for_page(&self) -> RequestCtx {
        RequestCtx {
            wants_html: true,
            ..self.clone()
        }
    }

    pub fn new(
        id: RequestId,
        method: &Method,
        headers: &HeaderMap,
        prefix: Arc<str>,
        client: std::net::IpAddr,
    ) -> RequestCtx {
        RequestCtx {
            id,
            start: Instant::now(),
            method: method.clone(),
            wants_html: is_navigation(method, headers),
            prefix,
            client,
        }
    }
}

/// A browser navigation: GET or HEAD whose Accept names text/html.
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && headers
            .get_all(header::ACCEPT)
            .iter()
            .any(|v| v.to_str().map(|s| s.contains("text/html")).unwrap_or(false))
}
