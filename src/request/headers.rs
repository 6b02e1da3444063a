//! Inbound header hygiene: the "strip" half of strip-then-set.
//!
//! Owns removing, from a request before anything reads it, (1) the
//! hop-by-hop headers a proxy must not forward (RFC 9110 §7.6.1) and
//! (2) every inbound copy, in every spelling, of the headers authgate itself
//! sets (DESIGN.md, "Identity propagated upstream").
//!
//! Must not: set any header, read configuration files, or know what the
//! identity headers contain. Pure and table-tested.
//!
//! Order at the caller, on every request (public routes included):
//! 1. [`strip_hop_by_hop`] — may remove headers a client nominated in
//!    `Connection`;
//! 2. [`strip_protected`];
//! 3. set authgate's own headers (identity assertion, plain identity
//!    headers, `X-Forwarded-*`).
//!
//! Because both strips run before step 3, a client sending
//! `Connection: X-Forwarded-For` or `Connection: X-Identity-Assertion` can
//! only remove its own copies, never the values authgate sets.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// A configured header name that is not a valid field name (RFC 9110 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid header name {0:?}")]
pub struct InvalidName(pub String);

/// The header names authgate sets (identity header, plain identity headers,
/// `X-Forwarded-For`/`Proto`/`Host`...). Built once at start from
/// configuration.
#[derive(Debug, Clone)]
pub struct Protected {
    /// Canonical spellings: lower case, `_` replaced by `-`, de-duplicated.
    names: Vec<Box<[u8]>>,
    /// Bit `n` set when some name is `n` bytes long (names over 127 bytes
    /// share bit 127), so most headers are rejected by one mask test.
    lengths: u128,
}

fn canonical_byte(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

fn length_bit(len: usize) -> u128 {
    1u128 << len.min(127)
}

impl Protected {
    /// Builds the set from configured names, in any case and either of the
    /// `-`/`_` spellings.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] for the first name that is not an RFC 9110 §5.1 token.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidName> {
        let mut canonical: Vec<Box<[u8]>> = Vec::new();
        let mut lengths = 0u128;
        for name in names {
            // Reuse http's field-name grammar (RFC 9110 §5.1 token).
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| InvalidName(name.to_owned()))?;
            let c: Box<[u8]> = name.bytes().map(canonical_byte).collect();
            if !canonical.contains(&c) {
                lengths |= length_bit(c.len());
                canonical.push(c);
            }
        }
        Ok(Self {
            names: canonical,
            lengths,
        })
    }

    /// True when `name` is a protected header in any spelling: any case
    /// (`HeaderMap` already lower-cases), and with `_` in place of `-`
    /// (WSGI/CGI servers such as Django merge `X_Forwarded_User` with
    /// `X-Forwarded-User`: CGI/1.1, RFC 3875 §4.1.18, maps both to
    /// `HTTP_X_FORWARDED_USER`).
    #[must_use]
    pub fn covers(&self, name: &HeaderName) -> bool {
        let name = name.as_str().as_bytes();
        if self.lengths & length_bit(name.len()) == 0 {
            return false;
        }
        self.names.iter().any(|p| {
            p.len() == name.len()
                && p.iter()
                    .zip(name)
                    .all(|(&want, &got)| want == canonical_byte(got))
        })
    }
}

/// Removes every copy of every protected header (all spellings, repeated).
///
/// Call after [`strip_hop_by_hop`] and before setting authgate's headers.
pub fn strip_protected(headers: &mut HeaderMap, protected: &Protected) {
    // One pass over the distinct names; allocate only when there is
    // something to remove (a spoofing attempt, or a trusted proxy's copy).
    let found: Vec<HeaderName> = headers
        .keys()
        .filter(|name| protected.covers(name))
        .cloned()
        .collect();
    for name in &found {
        // `remove` drops every value stored under the name.
        headers.remove(name);
    }
}

/// Headers that are hop-by-hop whatever `Connection` says: RFC 9110 §7.6.1
/// (Connection, Proxy-Connection, Keep-Alive, TE, Transfer-Encoding,
/// Upgrade), §11.7.1/§11.7.2 (Proxy-Authenticate, Proxy-Authorization, meant
/// for this proxy only) and §6.6.2 (Trailer).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Names a client may not get removed by listing them in `Connection`:
/// DESIGN.md requires `Host` upstream exactly as sent and `Content-Length`
/// kept (no re-chunking); dropping either would change how the upstream
/// routes or frames the request. RFC 9110 §7.6.1 forbids senders to list
/// such fields, so honouring the nomination is not owed.
const NEVER_NOMINATED: [HeaderName; 2] = [header::HOST, header::CONTENT_LENGTH];

/// Splits every `Connection` value into its tokens: comma-separated, with
/// optional whitespace (RFC 9110 §7.6.1, §5.6.1), across all copies.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): Connection, Keep-Alive,
/// Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE, Trailer,
/// Transfer-Encoding, Upgrade, plus every header named in any Connection
/// header value (comma lists, several Connection headers, any case,
/// whitespace), except `Host` and `Content-Length`.
///
/// `keep_upgrade`: when the request (or a 101 response) is a
/// WebSocket/Upgrade being passed through, keep `Upgrade` and set
/// `Connection: upgrade` back (RFC 9110 §7.8 requires the pair).
///
/// Call before [`strip_protected`] and before setting authgate's headers.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if headers.contains_key(header::CONNECTION) {
        // Invalid tokens cannot name a stored header; skip them.
        let nominated: Vec<HeaderName> = connection_tokens(headers)
            .filter_map(|t| HeaderName::from_bytes(t).ok())
            .filter(|n| !NEVER_NOMINATED.contains(n))
            .collect();
        for name in &nominated {
            if keep_upgrade && name == header::UPGRADE {
                continue;
            }
            headers.remove(name);
        }
    }
    // One pass over the names present (usually none of these); removing by
    // `&str` would parse and hash each of the nine names on every request.
    let present: Vec<HeaderName> = headers
        .keys()
        .filter(|n| HOP_BY_HOP.contains(&n.as_str()) && !(keep_upgrade && *n == header::UPGRADE))
        .cloned()
        .collect();
    for name in &present {
        headers.remove(name);
    }
    if keep_upgrade && headers.contains_key(header::UPGRADE) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// True when the request asks to upgrade (RFC 9110 §7.8): a `Connection`
/// header contains the token `upgrade` (any case) and an `Upgrade` header is
/// present. Read it before [`strip_hop_by_hop`].
#[must_use]
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(b"upgrade"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults DESIGN.md lists, spelled as an operator might.
    const CONFIGURED: [&str; 9] = [
        "X-Identity-Assertion",
        "X-Forwarded-User",
        "X-Forwarded-Email",
        "X-Forwarded-Preferred-Username",
        "X-Forwarded-Groups",
        "x-forwarded-role",
        "X-FORWARDED-FOR",
        "X-Forwarded-Proto",
        "X_Forwarded_Host",
    ];

    fn protected() -> Protected {
        match Protected::new(CONFIGURED) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    fn name(s: &str) -> HeaderName {
        match HeaderName::from_bytes(s.as_bytes()) {
            Ok(n) => n,
            Err(e) => panic!("{s:?}: {e}"),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            match HeaderValue::from_str(v) {
                Ok(v) => h.append(name(n), v),
                Err(e) => panic!("{v:?}: {e}"),
            };
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<String> {
        let mut v: Vec<String> = h.keys().map(|n| n.as_str().to_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn covers_every_spelling_of_protected_names() {
        let p = protected();
        let table: &[(&str, bool)] = &[
            ("x-identity-assertion", true),
            ("X-Identity-Assertion", true),
            ("x_identity_assertion", true),
            ("X-Forwarded-User", true),
            ("x-forwarded-user", true),
            ("X-FORWARDED-USER", true),
            ("x_forwarded_user", true),
            ("X_Forwarded_User", true),
            ("X-FORWARDED_USER", true),
            ("x_forwarded-user", true),
            ("x-forwarded-email", true),
            ("x-forwarded-preferred-username", true),
            ("x_forwarded_preferred_username", true),
            ("x-forwarded-groups", true),
            ("x-forwarded-role", true),
            ("X_FORWARDED_ROLE", true),
            ("x-forwarded-for", true),
            ("x_forwarded_for", true),
            ("x-forwarded-proto", true),
            ("x-forwarded-host", true),
            ("x_forwarded_host", true),
            // neighbours left alone
            ("x-forwarded-users", false),
            ("x-forwarded-use", false),
            ("x-forwarded-port", false),
            ("x-forwarded-prefix", false),
            ("x-forwarded", false),
            ("forwarded", false),
            ("x-real-ip", false),
            ("x-identity", false),
            ("x.forwarded.user", false),
            ("authorization", false),
            ("cookie", false),
            ("host", false),
        ];
        for (n, want) in table {
            assert_eq!(p.covers(&name(n)), *want, "{n}");
        }
    }

    #[test]
    fn strip_protected_removes_all_copies_and_spellings() {
        let p = protected();
        let mut h = map(&[
            ("X-Forwarded-User", "mallory"),
            ("x-forwarded-user", "mallory2"),
            ("x_forwarded_user", "admin"),
            ("X-FORWARDED_USER", "admin2"),
            ("X_Forwarded_Email", "boss@example.com"),
            ("x-forwarded-groups", "admins"),
            ("x-forwarded-groups", "owners"),
            ("x-identity-assertion", "eyJ.forged.sig"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "https"),
            ("x_forwarded_host", "evil.example"),
            ("x-forwarded-port", "443"),
            ("x-real-ip", "1.2.3.4"),
            ("cookie", "s=1"),
            ("host", "labels.example.com"),
            ("accept", "text/html"),
        ]);
        strip_protected(&mut h, &p);
        assert_eq!(
            names(&h),
            ["accept", "cookie", "host", "x-forwarded-port", "x-real-ip"]
        );
    }

    #[test]
    fn strip_protected_leaves_clean_requests_alone() {
        let p = protected();
        let mut h = map(&[("accept", "*/*"), ("user-agent", "curl"), ("a", "b")]);
        strip_protected(&mut h, &p);
        assert_eq!(names(&h), ["a", "accept", "user-agent"]);
    }

    #[test]
    fn protected_new_rejects_invalid_names() {
        for bad in ["", "X Forwarded", "X-Forwarded-User:", "é", "a\nb"] {
            assert_eq!(
                Protected::new([bad]).map(|_| ()),
                Err(InvalidName(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn protected_handles_long_names() {
        let long = "x-".repeat(100);
        let p = match Protected::new([long.as_str()]) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert!(p.covers(&name(&long.replace('-', "_"))));
        assert!(!p.covers(&name(&"x-".repeat(99))));
        assert!(!p.covers(&name(&format!("{long}y"))));
    }

    #[test]
    fn strip_hop_by_hop_table() {
        type Case = (
            &'static str,
            &'static [(&'static str, &'static str)],
            bool,
            &'static [&'static str],
        );
        let table: &[Case] = &[
            (
                "fixed hop-by-hop names go",
                &[
                    ("connection", "close"),
                    ("keep-alive", "timeout=5"),
                    ("proxy-connection", "keep-alive"),
                    ("proxy-authorization", "Basic eA=="),
                    ("proxy-authenticate", "Basic"),
                    ("te", "trailers"),
                    ("trailer", "x-checksum"),
                    ("transfer-encoding", "chunked"),
                    ("upgrade", "websocket"),
                    ("accept", "*/*"),
                ],
                false,
                &["accept"],
            ),
            (
                "names listed in Connection go",
                &[
                    ("connection", "keep-alive, X-Foo"),
                    ("x-foo", "1"),
                    ("x-bar", "2"),
                ],
                false,
                &["x-bar"],
            ),
            (
                "several Connection headers, odd case and whitespace",
                &[
                    ("connection", "  X-One ,\tx-TWO"),
                    ("connection", ",,x-three,"),
                    ("x-one", "1"),
                    ("x-two", "2"),
                    ("x-three", "3"),
                    ("x-four", "4"),
                ],
                false,
                &["x-four"],
            ),
            (
                "invalid tokens in Connection are ignored",
                &[("connection", "a b, ,@,x-foo"), ("x-foo", "1"), ("a", "1")],
                false,
                &["a"],
            ),
            (
                "Host and Content-Length cannot be nominated",
                &[
                    ("connection", "Host, Content-Length, Cookie"),
                    ("host", "labels.example.com"),
                    ("content-length", "3"),
                    ("cookie", "s=1"),
                ],
                false,
                &["content-length", "host"],
            ),
            (
                "nominating X-Forwarded-For removes only the inbound copy",
                &[
                    ("connection", "X-Forwarded-For"),
                    ("x-forwarded-for", "1.2.3.4"),
                ],
                false,
                &[],
            ),
            (
                "TE: trailers goes",
                &[("te", "trailers"), ("accept", "*/*")],
                false,
                &["accept"],
            ),
            (
                "websocket upgrade passed through",
                &[
                    ("connection", "keep-alive, Upgrade"),
                    ("upgrade", "websocket"),
                    ("keep-alive", "timeout=5"),
                    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ],
                true,
                &["connection", "sec-websocket-key", "upgrade"],
            ),
            (
                "keep_upgrade without an Upgrade header sets no Connection",
                &[("connection", "close"), ("accept", "*/*")],
                true,
                &["accept"],
            ),
            (
                "upgrade dropped when not passing it through",
                &[
                    ("connection", "upgrade"),
                    ("upgrade", "h2c"),
                    ("http2-settings", "AAA"),
                ],
                false,
                &["http2-settings"],
            ),
        ];
        for (what, input, keep_upgrade, want) in table {
            let mut h = map(input);
            strip_hop_by_hop(&mut h, *keep_upgrade);
            assert_eq!(names(&h), *want, "{what}");
        }
    }

    #[test]
    fn upgrade_pass_through_sets_connection_upgrade_once() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("connection", "keep-alive"),
            ("upgrade", "websocket"),
        ]);
        strip_hop_by_hop(&mut h, true);
        let conn: Vec<_> = h.get_all(header::CONNECTION).iter().collect();
        assert_eq!(conn, [HeaderValue::from_static("upgrade")]);
        assert_eq!(
            h.get(header::UPGRADE),
            Some(&HeaderValue::from_static("websocket"))
        );
    }

    #[test]
    fn strip_then_set_keeps_our_values() {
        let p = protected();
        let mut h = map(&[
            ("connection", "X-Forwarded-For, x-identity-assertion"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x_forwarded_for", "6.6.6.7"),
        ]);
        strip_hop_by_hop(&mut h, false);
        strip_protected(&mut h, &p);
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        h.insert(
            "x-identity-assertion",
            HeaderValue::from_static("eyJ.ours.sig"),
        );
        assert_eq!(names(&h), ["x-forwarded-for", "x-identity-assertion"]);
        assert_eq!(
            h.get("x-forwarded-for"),
            Some(&HeaderValue::from_static("203.0.113.7"))
        );
    }

    #[test]
    fn is_upgrade_table() {
        let table: &[(&[(&str, &str)], bool)] = &[
            (&[("connection", "Upgrade"), ("upgrade", "websocket")], true),
            (
                &[
                    ("connection", "keep-alive, upgrade"),
                    ("upgrade", "websocket"),
                ],
                true,
            ),
            (
                &[
                    ("connection", "keep-alive"),
                    ("connection", " UPGRADE "),
                    ("upgrade", "websocket"),
                ],
                true,
            ),
            (&[("connection", "upgrade")], false),
            (&[("upgrade", "websocket")], false),
            (
                &[("connection", "upgraded"), ("upgrade", "websocket")],
                false,
            ),
            (
                &[("connection", "keep-alive"), ("upgrade", "websocket")],
                false,
            ),
            (&[], false),
        ];
        for (input, want) in table {
            assert_eq!(is_upgrade(&map(input)), *want, "{input:?}");
        }
    }
}
