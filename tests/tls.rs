//! TLS termination with rustls from PEM files: a self-signed certificate for
//! localhost/127.0.0.1 made with `openssl` (scripts/test installs it),
//! HTTP/1.1 and HTTP/2 chosen by ALPN, `X-Forwarded-Proto: https` upstream,
//! and the session cookie of an https public URL (`__Host-`, `Secure`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use common::client::{collect, Got};
use common::gate::{config_text, identity, Gate, Keys};
use common::pki::self_signed;
use common::upstream::Upstream;

/// authgate with TLS on, public URL https://localhost, `/public` public.
async fn tls_gate(up: &Upstream) -> (Gate, PathBuf) {
    let keys = Keys::new();
    let (cert, key) = self_signed(keys.dir.path());
    let text = config_text(&keys, &up.url(), "[policy]\npublic_paths = [\"/public\"]\n").replace(
        "public_url = \"http://gate.test\"",
        &format!(
            "public_url = \"https://localhost\"\ntls_cert = \"{}\"\ntls_key = \"{}\"",
            cert.display(),
            key.display()
        ),
    );
    assert!(
        text.contains("tls_cert"),
        "the harness config changed shape"
    );
    (Gate::start_with(keys, text, vec![]).await, cert)
}

/// A TLS connection to the gate that trusts only `cert`, offering `alpn`.
async fn connect(gate: &Gate, cert: &Path, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(cert).expect("cert"))
        .expect("root");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(gate.addr).await.expect("connect");
    TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake")
}

async fn h1(stream: TlsStream<TcpStream>, req: Request<Full<Bytes>>) -> Got {
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    collect(send.send_request(req).await.expect("h1 response")).await
}

async fn h2(stream: TlsStream<TcpStream>, req: Request<Full<Bytes>>) -> Got {
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    collect(send.send_request(req).await.expect("h2 response")).await
}

#[tokio::test]
async fn http1_over_tls_is_forwarded_with_proto_https() {
    let up = Upstream::start().await;
    let (gate, cert) = tls_gate(&up).await;
    let stream = connect(&gate, &cert, &[b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let req = Request::get("/public/a?b=1")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let got = h1(stream, req).await;
    assert_eq!(got.status, StatusCode::OK);
    let seen = up.last();
    assert_eq!(seen.target, "/public/a?b=1");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(seen.headers["host"], "localhost");
    assert!(!got.body.is_empty());
}

/// A client that offers no ALPN gets HTTP/1.1 (HTTP/2 over TLS requires
/// ALPN, RFC 9113 section 3.2), as from nginx.
#[tokio::test]
async fn a_client_without_alpn_is_served_http1() {
    let up = Upstream::start().await;
    let (gate, cert) = tls_gate(&up).await;
    let stream = connect(&gate, &cert, &[]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), None);
    let req = Request::get("/public/no-alpn")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let got = h1(stream, req).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(up.last().target, "/public/no-alpn");
}

#[tokio::test]
async fn http2_is_negotiated_by_alpn_and_forwarded_as_http1() {
    let up = Upstream::start().await;
    let (gate, cert) = tls_gate(&up).await;
    let stream = connect(&gate, &cert, &[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let req = Request::post("https://localhost/public/upload")
        .body(Full::new(Bytes::from_static(b"0123456789")))
        .expect("request");
    let got = h2(stream, req).await;
    assert_eq!(got.status, StatusCode::OK);
    let seen = up.last();
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(seen.headers["host"], "localhost", ":authority becomes Host");
    assert_eq!(seen.body_len, 10);
}

#[tokio::test]
async fn session_cookie_under_an_https_public_url_is_host_prefixed_and_secure() {
    let up = Upstream::start().await;
    let (gate, cert) = tls_gate(&up).await;
    let (_session, set_cookie) = gate
        .state
        .start_session(identity(
            "uid=ada,ou=people,dc=example,dc=com",
            "ada@example.com",
            Some("annotator"),
            &[],
        ))
        .await
        .expect("session");
    let set_cookie = set_cookie.to_str().expect("ascii").to_string();
    assert!(set_cookie.starts_with("__Host-authgate="), "{set_cookie}");
    let attrs: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    for want in ["Secure", "HttpOnly", "Path=/", "SameSite=Lax"] {
        assert!(attrs.contains(&want), "{want} missing: {set_cookie}");
    }
    assert!(
        !attrs
            .iter()
            .any(|a| a.to_ascii_lowercase().starts_with("domain")),
        "__Host- cookies carry no Domain: {set_cookie}"
    );

    // The cookie works over TLS (HTTP/2) and the upstream gets the identity.
    let cookie = set_cookie.split(';').next().expect("pair").to_string();
    let stream = connect(&gate, &cert, &[b"h2"]).await;
    let req = Request::get("https://localhost/private")
        .header("cookie", &cookie)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let got = h2(stream, req).await;
    assert_eq!(got.status, StatusCode::OK);
    let seen = up.last();
    assert_eq!(seen.target, "/private");
    assert!(seen.headers.contains_key("x-identity-assertion"));
    assert_eq!(seen.headers["x-forwarded-proto"], "https");

    // Without it, a browser is sent to the login page on the https URL.
    let stream = connect(&gate, &cert, &[b"http/1.1"]).await;
    let req = Request::get("/private")
        .header("host", "localhost")
        .header("accept", "text/html")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let got = h1(stream, req).await;
    assert_eq!(got.status, StatusCode::FOUND);
    let location = got.headers["location"].to_str().expect("ascii");
    assert!(location.contains("/_auth/login?rd="), "{location}");

    // Logging out clears the same cookie name, Secure.
    let stream = connect(&gate, &cert, &[b"http/1.1"]).await;
    let req = Request::get("/_auth/logout")
        .header("host", "localhost")
        .header("cookie", &cookie)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let got = h1(stream, req).await;
    let cleared = got
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-authgate="))
        .unwrap_or_else(|| panic!("no __Host-authgate Set-Cookie: {:?}", got.headers))
        .to_string();
    assert!(cleared.contains("Secure"), "{cleared}");
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_not_served() {
    let up = Upstream::start().await;
    let (gate, _cert) = tls_gate(&up).await;
    let mut s = TcpStream::connect(gate.addr).await.expect("connect");
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"),
        "answered in clear text"
    );
    assert_eq!(up.count(), 0, "nothing reached the upstream");
}
