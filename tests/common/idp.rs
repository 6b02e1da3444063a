//! The independent SAML IdP (pysaml2 signing with xmlsec1,
//! `tests/idp/idp.py`) as a child process, and a small browser with a
//! cookie jar that follows the real flow (redirects, the IdP's auto-posted
//! form).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioExecutor;

use super::client::get;
use super::cookies::enc;
use super::gate::{Gate, GATE_HOST};
use super::process::Proc;
use super::python::python;
use super::upstream::Upstream;

/// The pysaml2 IdP, killed on drop.
pub struct Idp {
    _proc: Proc,
    pub port: u16,
    pub base: String,
    pub dir: tempfile::TempDir,
}

impl Idp {
    pub async fn start() -> Idp {
        Idp::start_with(&[]).await
    }

    /// With extra command-line flags (`--want-signed`).
    pub async fn start_with(flags: &[&str]) -> Idp {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/idp/idp.py");
        let stderr = std::fs::File::create(dir.path().join("stderr.txt")).expect("stderr file");
        let mut child = Command::new(python("saml2"))
            .arg(&script)
            .arg(dir.path())
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start tests/idp/idp.py (run scripts/test once to create .venv with pysaml2)");
        let stdout = child.stdout.take().expect("stdout");
        let proc = Proc::new(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let port: u16 = match line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
        {
            Some(p) => p,
            None => {
                drop(proc);
                let err =
                    std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap_or_default();
                panic!("the test IdP did not start: {line:?}\n{err}");
            }
        };
        let idp = Idp {
            _proc: proc,
            port,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        // Bounded readiness loop.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(got) = raw_request("GET", &format!("{}/health", idp.base), None, &[]).await {
                if got.status == StatusCode::OK {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "the test IdP never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        idp
    }

    pub fn metadata_url(&self) -> String {
        format!("{}/metadata", self.base)
    }

    pub fn entity_id(&self) -> String {
        format!("{}/metadata", self.base)
    }

    /// The IdP metadata XML (`variant`: "", "nocert", "rollover").
    pub async fn metadata(&self, variant: &str) -> String {
        let got = raw_request(
            "GET",
            &format!("{}?variant={variant}", self.metadata_url()),
            None,
            &[],
        )
        .await
        .expect("idp metadata");
        String::from_utf8_lossy(&got.body).into_owned()
    }

    /// Which metadata the IdP serves at its URL from now on ("" or
    /// "rollover": the old certificate listed as well).
    pub async fn set_metadata_variant(&self, variant: &str) {
        let got = raw_request(
            "POST",
            &format!("{}/metadata-variant", self.base),
            Some(variant.as_bytes().to_vec()),
            &[],
        )
        .await
        .expect("metadata variant");
        assert_eq!(got.status, StatusCode::OK);
    }

    /// Options of the metadata the IdP serves from now on (a query
    /// string: `sign=other&valid_until=past`; "" = plain, unsigned).
    pub async fn set_metadata_options(&self, options: &str) {
        let got = raw_request(
            "POST",
            &format!("{}/metadata-options", self.base),
            Some(options.as_bytes().to_vec()),
            &[],
        )
        .await
        .expect("metadata options");
        assert_eq!(got.status, StatusCode::OK);
    }

    /// Registers `gate`'s SP metadata, fetched from it, with the IdP.
    pub async fn register_gate(&self, gate: &Gate) {
        let md = get(&gate.url("/_auth/saml/metadata"), &[]).await;
        assert_eq!(md.status, StatusCode::OK, "the gate's SP metadata");
        self.register_sp(&md.text()).await;
    }

    /// Registers the SP's metadata (as the gate serves it) with the IdP.
    pub async fn register_sp(&self, xml: &str) {
        let got = raw_request(
            "POST",
            &format!("{}/sp-metadata", self.base),
            Some(xml.as_bytes().to_vec()),
            &[],
        )
        .await
        .expect("register sp");
        assert_eq!(
            got.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&got.body)
        );
    }
}

/// A response as the browser saw it.
#[derive(Debug, Clone)]
pub struct Page {
    pub url: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Page {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn location(&self) -> Option<String> {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// One request; `url` must be absolute. `gate` resolves `gate.test`.
async fn raw_request(
    method: &str,
    url: &str,
    body: Option<Vec<u8>>,
    headers: &[(String, String)],
) -> Result<Page, String> {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let req = b
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Page {
        url: url.to_string(),
        status,
        headers,
        body,
    })
}

/// A browser: a cookie jar per host, redirects followed by hand.
#[derive(Debug, Clone)]
pub struct Browser {
    gate: SocketAddr,
    jar: BTreeMap<String, BTreeMap<String, String>>,
}

fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    }
}

impl Browser {
    pub fn new(gate: SocketAddr) -> Browser {
        Browser {
            gate,
            jar: BTreeMap::new(),
        }
    }

    pub fn cookie(&self, host: &str, name: &str) -> Option<String> {
        self.jar.get(host).and_then(|c| c.get(name)).cloned()
    }

    pub fn cookie_names(&self, host: &str) -> Vec<String> {
        self.jar
            .get(host)
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Sends one request as a browser would (Host, Cookie, Accept).
    pub async fn send(&mut self, method: &str, url: &str, form: Option<&[(&str, &str)]>) -> Page {
        let (host, path) = split_url(url);
        let target = if host == GATE_HOST {
            format!("http://{}{}", self.gate, path)
        } else {
            url.to_string()
        };
        let mut headers = vec![
            ("host".to_string(), host.clone()),
            (
                "accept".to_string(),
                "text/html,application/xhtml+xml,*/*;q=0.8".to_string(),
            ),
        ];
        if let Some(c) = self.jar.get(&host) {
            if !c.is_empty() {
                let v = c
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                headers.push(("cookie".to_string(), v));
            }
        }
        let body = form.map(|fields| {
            headers.push((
                "content-type".to_string(),
                "application/x-www-form-urlencoded".to_string(),
            ));
            fields
                .iter()
                .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes()
        });
        let mut page = raw_request(method, &target, body, &headers)
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        page.url = url.to_string();
        let jar = self.jar.entry(host).or_default();
        for sc in page.headers.get_all("set-cookie") {
            let sc = sc.to_str().expect("ascii set-cookie");
            let pair = sc.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let deleted = sc.contains("Max-Age=0") || value.is_empty();
            if deleted {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_string(), value.to_string());
            }
        }
        page
    }

    pub async fn get(&mut self, url: &str) -> Page {
        self.send("GET", url, None).await
    }

    /// GET, following redirects (at most 10).
    pub async fn follow(&mut self, url: &str) -> Page {
        let mut url = url.to_string();
        for _ in 0..10 {
            let page = self.get(&url).await;
            if !page.status.is_redirection() {
                return page;
            }
            url = self.resolve(&url, &page.location().expect("redirect with Location"));
        }
        panic!("too many redirects");
    }

    /// A Location relative to the URL it came from.
    pub fn resolve(&self, base: &str, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            let (host, _) = split_url(base);
            format!("http://{host}{location}")
        }
    }

    /// Submits the auto-posting form of an IdP page, as the page's script
    /// would. Returns the ACS's answer (not followed).
    pub async fn submit_form(&mut self, page: &Page) -> Page {
        let (action, fields) = parse_form(&page.text());
        let refs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.send("POST", &action, Some(&refs)).await
    }
}

/// The action and hidden inputs of the first form in `html`.
pub fn parse_form(html: &str) -> (String, Vec<(String, String)>) {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let i = tag.find(&key)? + key.len();
        let j = tag[i..].find('"')? + i;
        Some(unescape(&tag[i..j]))
    };
    let form_start = html
        .find("<form")
        .unwrap_or_else(|| panic!("no form in {html}"));
    let form_tag = &html[form_start..form_start + html[form_start..].find('>').expect("form end")];
    let action = attr(form_tag, "action").expect("form action");
    let mut fields = Vec::new();
    let mut rest = &html[form_start..];
    while let Some(i) = rest.find("<input") {
        let end = rest[i..].find('>').expect("input end") + i;
        let tag = &rest[i..end];
        if let (Some(n), Some(v)) = (attr(tag, "name"), attr(tag, "value")) {
            fields.push((n, v));
        }
        rest = &rest[end..];
    }
    (action, fields)
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The `href` of the login page's SSO button.
pub fn sso_href(login_page: &str) -> String {
    let key = "id=\"sso\" href=\"";
    let i = login_page.find(key).expect("SSO button") + key.len();
    login_page[i..i + login_page[i..].find('"').expect("end")].replace("&amp;", "&")
}

/// `/_auth/saml/login?idp=ID&rd=/x` → the IdP (as `params`) → the form
/// posted to the ACS; returns the ACS's answer.
pub async fn sso_at(b: &mut Browser, idp: &str, params: &str) -> Page {
    let to_idp = b
        .get(&format!(
            "http://gate.test/_auth/saml/login?idp={idp}&rd=%2Fx"
        ))
        .await;
    assert_eq!(to_idp.status, StatusCode::FOUND, "{}", to_idp.text());
    let url = to_idp.location().expect("to the IdP");
    let form = b.get(&format!("{url}&{params}")).await;
    assert_eq!(form.status, StatusCode::OK, "IdP: {}", form.text());
    b.submit_form(&form).await
}

/// Whether the browser has a session (`/_auth/userinfo` answers 200).
pub async fn is_signed_in(b: &mut Browser) -> bool {
    b.get("http://gate.test/_auth/userinfo").await.status == StatusCode::OK
}

/// A fresh SP key pair (`sp.key`, `sp.crt`) in a temp dir: (dir, key, cert).
pub fn sp_pair() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    let (key, cert) = (dir.path().join("sp.key"), dir.path().join("sp.crt"));
    authgate::saml::write_sp_pair(&key, &cert, "authgate SAML SP", false).expect("keygen");
    (dir, key, cert)
}

/// A gate with SAML on against `idp`, in front of a new recording
/// upstream: `[saml]` with `saml_extra` lines, then `rest` (TOML); its SP
/// registered with the IdP.
pub async fn saml_gate(idp: &Idp, saml_extra: &str, rest: &str) -> (Upstream, Gate) {
    let up = Upstream::start().await;
    let gate = Gate::start(
        &up.url(),
        &format!(
            "[saml]\nenabled = true\nidp_metadata_url = \"{}\"\n{saml_extra}\n{rest}",
            idp.metadata_url()
        ),
    )
    .await;
    idp.register_gate(&gate).await;
    (up, gate)
}

/// Two IdPs (two pysaml2 processes: other entity IDs, other keys) in front
/// of one gate with an SP key ([`sp_pair`], so both can send
/// LogoutRequests): the first in `[saml]` ("Alpha", with `saml_extra`
/// lines), "beta" in `[[saml.idps]]` ("Beta", with `beta_extra` lines);
/// then `rest` (TOML). The temp dir holds the SP key pair.
pub async fn two_idp_gate(
    saml_extra: &str,
    beta_extra: &str,
    rest: &str,
) -> (Idp, Idp, Upstream, Gate, tempfile::TempDir) {
    let (a, b) = (Idp::start().await, Idp::start().await);
    let (dir, key, cert) = sp_pair();
    let up = Upstream::start().await;
    let gate = Gate::start(
        &up.url(),
        &format!(
            "[saml]\nenabled = true\nidp_metadata_url = \"{}\"\nidp_name = \"Alpha\"\nsp_key = \"{}\"\nsp_cert = \"{}\"\n{saml_extra}\n\n[[saml.idps]]\nid = \"beta\"\nname = \"Beta\"\nidp_metadata_url = \"{}\"\n{beta_extra}{rest}",
            a.metadata_url(),
            key.display(),
            cert.display(),
            b.metadata_url()
        ),
    )
    .await;
    a.register_gate(&gate).await;
    b.register_gate(&gate).await;
    (a, b, up, gate, dir)
}
