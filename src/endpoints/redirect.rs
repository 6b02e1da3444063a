//! The post-login target check for `rd` and SAML `RelayState`.
//!
//! Owns deciding whether a caller-supplied target is a path on this host
//! (DESIGN.md, "Endpoints": "`rd` and `RelayState` only ever lead to a path on
//! this host"). Everything else becomes `/`, so an attacker cannot turn the
//! login flow into an open redirect.
//!
//! Must not: build URLs, read configuration, or normalize the target it
//! returns (the target is returned unchanged or replaced by `/`). Pure and
//! table-tested.
//!
//! The input is the value after the query or form decoding that the
//! handler already did (`rd=%2Fprojects` arrives here as `/projects`). The
//! rules, each for a way a browser or an application turns a harmless-looking
//! string into another origin:
//! - only visible ASCII, no `\` (WHATWG URL "basic URL parser" strips tab,
//!   CR and LF and leading C0/space, and reads `\` as `/` in http(s) URLs,
//!   so `/\t/evil.com` and `/\evil.com` are `//evil.com`);
//! - a relative reference starting with exactly one `/` (RFC 3986 §4.2: a
//!   leading `//` starts an authority; a scheme such as `https:` or
//!   `javascript:` cannot start with `/`);
//! - the same after removing dot-segments (RFC 3986 §5.2.4:
//!   `/..//evil.com` resolves to `//evil.com`);
//! - the same after percent-decoding the path once (RFC 3986 §2.1), since
//!   applications and frameworks decode before redirecting: `/%2F%2Fevil.com`,
//!   `/%5Cevil.com`, `/%09/evil.com`, `/%2e%2e//evil.com`; and no decoded
//!   slash lookalike (`／` U+FF0F and kin, which NFKC/IDNA map to `/` or `\`);
//! - at most [`MAX_LEN`] bytes.
//!
//! The accepted value is visible ASCII, so it is always a valid
//! `Location` header value.

use percent_encoding::percent_decode;

/// Longest accepted target, in bytes; longer ones fall back to `/`.
pub const MAX_LEN: usize = 2048;

/// Returns `rd` when it is a local path on this host (a relative reference
/// starting with exactly one `/`, no scheme, no authority), otherwise "/".
#[must_use]
pub fn local_target(rd: &str) -> &str {
    if is_local(rd) {
        rd
    } else {
        "/"
    }
}

fn is_local(rd: &str) -> bool {
    let raw = rd.as_bytes();
    if raw.is_empty() || raw.len() > MAX_LEN {
        return false;
    }
    // Visible ASCII only: no whitespace, no controls, no raw non-ASCII.
    if !raw.iter().all(|&b| b.is_ascii_graphic() && b != b'\\') {
        return false;
    }
    // The path ends at the first `?` or `#` (RFC 3986 §3.3); a `//` in the
    // query or fragment cannot become an authority.
    let path_end = raw
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(raw.len());
    let path = &raw[..path_end];
    if !is_single_slash_path(path) {
        return false;
    }

    let decoded: Vec<u8> = percent_decode(path).collect();
    if decoded.iter().any(|&b| b.is_ascii_control() || b == b'\\') {
        return false;
    }
    if !is_single_slash_path(&decoded) {
        return false;
    }
    // Invalid UTF-8 after decoding is no path of ours.
    // Nor control characters of any kind once decoded: C1 controls
    // (U+0080..U+009F, `%C2%80`..`%C2%9F`) too, as the C0 ones above.
    match std::str::from_utf8(&decoded) {
        Ok(text) => !text
            .chars()
            .any(|c| is_slash_lookalike(c) || c.is_control()),
        Err(_) => false,
    }
}

/// Starts with exactly one `/`, and still does after RFC 3986 §5.2.4.
fn is_single_slash_path(path: &[u8]) -> bool {
    starts_with_single_slash(path) && starts_with_single_slash(&remove_dot_segments(path))
}

fn starts_with_single_slash(path: &[u8]) -> bool {
    path.first() == Some(&b'/') && path.get(1) != Some(&b'/')
}

/// RFC 3986 §5.2.4 for a path starting with `/`, without merging `//`
/// (browsers do not merge them either). Only the start of the result matters
/// to the caller.
fn remove_dot_segments(path: &[u8]) -> Vec<u8> {
    let mut out: Vec<&[u8]> = Vec::new();
    let mut segments = path.split(|&b| b == b'/').skip(1).peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        match seg {
            b"." => {
                if last {
                    out.push(b"");
                }
            }
            b".." => {
                out.pop();
                if last {
                    out.push(b"");
                }
            }
            s => out.push(s),
        }
    }
    let mut result = Vec::with_capacity(path.len());
    for seg in out {
        result.push(b'/');
        result.extend_from_slice(seg);
    }
    if result.is_empty() {
        result.push(b'/');
    }
    result
}

/// Characters that Unicode compatibility mapping (NFKC, UTS #46 IDNA) or
/// common fonts present as `/` or `\`.
fn is_slash_lookalike(c: char) -> bool {
    matches!(
        c,
        '\u{FF0F}' // FULLWIDTH SOLIDUS
            | '\u{FF3C}' // FULLWIDTH REVERSE SOLIDUS
            | '\u{FE68}' // SMALL REVERSE SOLIDUS
            | '\u{2215}' // DIVISION SLASH
            | '\u{2044}' // FRACTION SLASH
            | '\u{29F8}' // BIG SOLIDUS
            | '\u{29F9}' // BIG REVERSE SOLIDUS
            | '\u{2216}' // SET MINUS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCEPTED: &[&str] = &[
        "/",
        "/projects",
        "/projects/1?x=1#frag",
        "/projects/1/",
        "/a%20b",
        "/data?next=//x",
        "/data?next=https://evil.com",
        "/p#//evil.com",
        "/caf%C3%A9",
        "/api/users;x/",
        "/a/../b",
        "/./a",
        "/..",
        "/..%2F",
        "/a/%2e%2e/b",
        "/user@example.com",
        "/a:b",
        "/%252F%252Fevil.com",
        "/?",
        "/#",
    ];

    const REFUSED: &[&str] = &[
        "",
        "//evil.com",
        "///evil.com",
        "/\\evil.com",
        "\\/evil.com",
        "\\\\evil.com",
        "/a\\b",
        "https:evil.com",
        "https://evil.com",
        "http://evil.com/",
        "HTTPS://evil.com",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "evil.com",
        "projects/1",
        "?x=1",
        "#frag",
        "/%2F%2Fevil.com",
        "/%2f%2fevil.com",
        "/%2Fevil.com",
        "/%5Cevil.com",
        "/%5cevil.com",
        "%2F%2Fevil.com",
        "%2Fprojects",
        "/\t/evil.com",
        "/\r/evil.com",
        "/\n/evil.com",
        "/%09/evil.com",
        "/%0d%0aSet-Cookie:x=1",
        "/%00",
        " /projects",
        "\t/projects",
        "/projects ",
        "/a b",
        "/..//evil.com",
        "/.//evil.com",
        "/a/../..//evil.com",
        "/%2e%2e//evil.com",
        "/.%2e/%2Fevil.com",
        "/\u{FF0F}evil.com",
        "\u{FF0F}\u{FF0F}evil.com",
        "/%EF%BC%8F%EF%BC%8Fevil.com",
        "/%ef%bc%bcevil.com",
        "/caf\u{e9}",
        "/%FF",
        "/\x7f",
        // C1 controls once decoded (found by the redirect_target fuzz target).
        "/%C2%8F",
        "/..%/%C2%8FvFBeil.c%CF%B8Fvc/E/%CF%B8c%CF%B8FviE/[E%CF%B8Fvim%CF%B8[E%CF%B8Fvil.c/m%CF%B8Fm",
        "/a%c2%85b",
    ];

    #[test]
    fn accepted_targets_are_returned_unchanged() {
        for rd in ACCEPTED {
            assert_eq!(local_target(rd), *rd, "{rd:?}");
        }
    }

    #[test]
    fn refused_targets_fall_back_to_root() {
        for rd in REFUSED {
            assert_eq!(local_target(rd), "/", "{rd:?}");
        }
    }

    #[test]
    fn table_has_enough_cases() {
        assert!(ACCEPTED.len() + REFUSED.len() >= 25);
    }

    #[test]
    fn length_limit() {
        let at_limit = format!("/{}", "a".repeat(MAX_LEN - 1));
        assert_eq!(local_target(&at_limit), at_limit);
        let over = format!("/{}", "a".repeat(MAX_LEN));
        assert_eq!(local_target(&over), "/");
    }

    #[test]
    fn accepted_targets_are_valid_header_values() {
        for rd in ACCEPTED {
            assert!(
                http::HeaderValue::from_str(local_target(rd)).is_ok(),
                "{rd:?}"
            );
        }
    }

    #[test]
    fn remove_dot_segments_follows_rfc_3986_examples() {
        // RFC 3986 §5.4.1 / §5.4.2 results, as absolute paths.
        let table: &[(&str, &str)] = &[
            ("/a/b/c/./../../g", "/a/g"),
            ("/mid/content=5/../6", "/mid/6"),
            ("/a/b/c/../../../g", "/g"),
            ("/a/b/c/../../../../g", "/g"),
            ("/a/b/c/.", "/a/b/c/"),
            ("/a/b/c/..", "/a/b/"),
            ("/..", "/"),
            ("/", "/"),
            ("/..//x", "//x"),
        ];
        for (input, want) in table {
            assert_eq!(
                remove_dot_segments(input.as_bytes()),
                want.as_bytes(),
                "{input:?}"
            );
        }
    }
}
