//! Request path normalization: the one canonical form of a request path.
//!
//! Owns turning the path component of a request target (no query, no
//! fragment) into the single string that is BOTH matched by the policy and
//! forwarded upstream, so the two can never disagree about which resource a
//! request names (DESIGN.md, "Policy on the upstream's own API").
//!
//! Must not: look at the query, know any route, touch `http::Request`, or
//! allocate more than once for the common case. Pure and table-tested.
//!
//! The canonical form:
//! - percent-escapes of unreserved characters are decoded (RFC 3986 §2.3:
//!   "should be normalized by decoding"), every other escape is kept with
//!   upper-case hex digits (RFC 3986 §6.2.2.1);
//! - a byte outside the RFC 3986 §3.3 `pchar` set (raw non-ASCII, space,
//!   `"`, `<`, `>`, `^`, `` ` ``, `{`, `|`, `}`, `[`, `]`) is percent-encoded;
//! - ambiguous input is refused instead of guessed at: an encoded `/` or `\`
//!   (RFC 3986 §7.3: servers disagree on whether it splits segments), a
//!   literal `\` (WHATWG URL treats it as `/`, most servers do not), NUL and
//!   control characters raw or encoded, malformed escapes, a raw `?` or `#`
//!   (a caller passed a whole target instead of the path);
//! - runs of `/` are merged, then dot-segments are removed per RFC 3986
//!   §5.2.4, with `..` above the root staying at the root; a trailing `/` is
//!   kept. Decoding happens first, so `/%2e%2e/` is `/../`.
//!
//! `;params` are kept verbatim: `/a/..;x/b` keeps `..;x` as an ordinary
//! segment (RFC 3986 §3.3), which is what Python/Django upstreams do too.
//!
//! `normalize` is idempotent: its output normalizes to itself.

/// Why a path was refused; the caller answers 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `%2F`: would be a segment separator for some servers and data for others.
    #[error("encoded slash in path")]
    EncodedSlash,
    /// `%5C`: decoded to `\`, which some servers treat as a separator.
    #[error("encoded backslash in path")]
    EncodedBackslash,
    /// A literal `\`.
    #[error("backslash in path")]
    Backslash,
    /// `%` not followed by two hex digits.
    #[error("malformed percent-encoding in path")]
    BadPercentEncoding,
    /// `%00` or a raw NUL.
    #[error("nul byte in path")]
    NulByte,
    /// Another C0 control character or DEL, raw or percent-encoded.
    #[error("control character in path")]
    ControlChar,
    /// A raw `?` or `#`: the caller passed more than the path component.
    #[error("query or fragment delimiter in path")]
    QueryOrFragment,
    /// Not an origin-form path: `*`, `a/b`, an absolute URI.
    #[error("path does not start with a slash")]
    NotAbsolutePath,
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// What one byte of the input means.
enum Class {
    /// Kept as it is: unreserved, sub-delims, `:` and `@` (RFC 3986 §3.3 `pchar`).
    Keep,
    /// Percent-encoded on output.
    Encode,
    /// Refused.
    Refuse(Error),
}

/// RFC 3986 §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~".
const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Classification of a raw (not percent-encoded) byte other than `/` and `%`.
const fn classify(b: u8) -> Class {
    match b {
        0 => Class::Refuse(Error::NulByte),
        0x01..=0x1f | 0x7f => Class::Refuse(Error::ControlChar),
        b'\\' => Class::Refuse(Error::Backslash),
        b'?' | b'#' => Class::Refuse(Error::QueryOrFragment),
        // RFC 3986 §3.3 pchar = unreserved / pct-encoded / sub-delims / ":" / "@"
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':'
        | b'@' => Class::Keep,
        _ if is_unreserved(b) => Class::Keep,
        // space " < > [ ] ^ ` { | } and every non-ASCII byte
        _ => Class::Encode,
    }
}

const fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn push_encoded(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
}

/// Normalizes the path component of a request target (no query). Returns the
/// path that is BOTH checked by policy and forwarded upstream.
///
/// One scan over the input, writing into one buffer sized for the common
/// case; dot-segments are resolved as each segment completes.
///
/// # Errors
///
/// The [`Error`] variant naming the first ambiguous or malformed byte; the
/// caller answers 400 and forwards nothing.
pub fn normalize(path: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(path.len().max(1));
    normalize_into(path, &mut out)?;
    Ok(out)
}

/// [`normalize`] into a buffer the caller owns (cleared first; left empty
/// on error), so the request path needs one allocation for both the check
/// and the access log.
pub fn normalize_into(path: &str, out: &mut String) -> Result<(), Error> {
    out.clear();
    let r = normalize_buf(path, out);
    if r.is_err() {
        out.clear();
    }
    r
}

fn normalize_buf(path: &str, out: &mut String) -> Result<(), Error> {
    let bytes = path.as_bytes();
    match bytes.first() {
        // RFC 9112 §3.2.1: an empty path in origin-form is sent as "/".
        None => {
            out.push('/');
            return Ok(());
        }
        Some(b'/') => {}
        Some(_) => return Err(Error::NotAbsolutePath),
    }

    out.reserve(bytes.len());
    out.push('/');
    let mut i = 1;
    // Invariant at the top of each iteration: `out` ends with '/', and
    // `bytes[i..]` is the rest of the input after a '/'.
    loop {
        let seg_start = out.len();
        while let Some(&b) = bytes.get(i) {
            if b == b'/' {
                break;
            }
            if b == b'%' {
                let decoded = match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(&hi), Some(&lo)) => match (hex_value(hi), hex_value(lo)) {
                        (Some(hi), Some(lo)) => (hi << 4) | lo,
                        _ => return Err(Error::BadPercentEncoding),
                    },
                    _ => return Err(Error::BadPercentEncoding),
                };
                match decoded {
                    b'/' => return Err(Error::EncodedSlash),
                    b'\\' => return Err(Error::EncodedBackslash),
                    0 => return Err(Error::NulByte),
                    0x01..=0x1f | 0x7f => return Err(Error::ControlChar),
                    // RFC 3986 §6.2.2.2: decode unreserved characters.
                    d if is_unreserved(d) => out.push(char::from(d)),
                    // RFC 3986 §6.2.2.1: keep, with upper-case hex digits.
                    d => push_encoded(out, d),
                }
                i += 3;
                continue;
            }
            match classify(b) {
                Class::Keep => out.push(char::from(b)),
                Class::Encode => push_encoded(out, b),
                Class::Refuse(e) => return Err(e),
            }
            i += 1;
        }
        let at_end = i >= bytes.len();

        // RFC 3986 §5.2.4, applied one segment at a time; `out[seg_start..]`
        // is the segment just written, already decoded.
        match &out[seg_start..] {
            // "//": an empty segment merges into the previous slash.
            "" => {}
            // "/./" → "/"; a final "/." leaves the trailing "/".
            "." => out.truncate(seg_start),
            // "/a/../" → "/"; above the root stays at the root.
            ".." => {
                out.truncate(seg_start);
                if seg_start > 1 {
                    let parent_end = out[..seg_start - 1].rfind('/').map_or(1, |p| p + 1);
                    out.truncate(parent_end);
                }
            }
            _ => {
                if !at_end {
                    out.push('/');
                }
            }
        }
        if at_end {
            return Ok(());
        }
        i += 1; // the '/'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Case = (&'static str, Result<&'static str, Error>);

    const CASES: &[Case] = &[
        // already normal
        ("/", Ok("/")),
        ("", Ok("/")),
        ("/api/projects/1", Ok("/api/projects/1")),
        ("/api/projects/1/", Ok("/api/projects/1/")),
        ("/static/app.js", Ok("/static/app.js")),
        // slashes merged
        ("//", Ok("/")),
        ("///a//b", Ok("/a/b")),
        ("/a//b/", Ok("/a/b/")),
        ("/a/b//", Ok("/a/b/")),
        // dot-segments, RFC 3986 §5.2.4
        ("/./", Ok("/")),
        ("/.", Ok("/")),
        ("/..", Ok("/")),
        ("/a/./b", Ok("/a/b")),
        ("/a/b/.", Ok("/a/b/")),
        ("/a/b/..", Ok("/a/")),
        ("/a/..", Ok("/")),
        ("/a/../b", Ok("/b")),
        ("/a/b/../../c", Ok("/c")),
        ("/../../etc/passwd", Ok("/etc/passwd")),
        ("/a/../../../b/", Ok("/b/")),
        ("/a//../b", Ok("/b")),
        ("/a/.../b", Ok("/a/.../b")),
        ("/a/.b/c.", Ok("/a/.b/c.")),
        // encoded dots decode before resolution
        ("/%2e%2e/", Ok("/")),
        ("/%2E%2e/admin", Ok("/admin")),
        ("/api/.%2e/admin", Ok("/admin")),
        ("/api/%2e/users", Ok("/api/users")),
        ("/api/users/%2E%2E", Ok("/api/")),
        ("/a/%2e", Ok("/a/")),
        // unreserved decoded, reserved kept with upper-case hex
        ("/%41%62%7e%5f%2D", Ok("/Ab~_-")),
        ("/api/%75sers/", Ok("/api/users/")),
        ("/a%3ab", Ok("/a%3Ab")),
        ("/a%3Ab", Ok("/a%3Ab")),
        ("/q%3f%23", Ok("/q%3F%23")),
        ("/a%25b", Ok("/a%25b")),
        ("/a%252e%252e/", Ok("/a%252e%252e/")),
        ("/a%20b", Ok("/a%20b")),
        ("/a+b", Ok("/a+b")),
        ("/a%2bb", Ok("/a%2Bb")),
        ("/user@host:1/!$&'()*,=", Ok("/user@host:1/!$&'()*,=")),
        // raw characters outside pchar are encoded
        ("/a b", Ok("/a%20b")),
        ("/{x}|\"<>^`[]", Ok("/%7Bx%7D%7C%22%3C%3E%5E%60%5B%5D")),
        // ;params kept as they are
        ("/api/users;x/", Ok("/api/users;x/")),
        ("/a/..;/b", Ok("/a/..;/b")),
        ("/a;jsessionid=1/./b", Ok("/a;jsessionid=1/b")),
        // non-ASCII: raw is encoded, encoded is normalized
        ("/caf%C3%A9", Ok("/caf%C3%A9")),
        ("/caf%c3%a9", Ok("/caf%C3%A9")),
        ("/café", Ok("/caf%C3%A9")),
        ("/データ", Ok("/%E3%83%87%E3%83%BC%E3%82%BF")),
        // unicode dot and slash lookalikes stay encoded, never become . or /
        ("/%E2%80%A4%E2%80%A4/admin", Ok("/%E2%80%A4%E2%80%A4/admin")),
        ("/\u{2024}\u{2024}/admin", Ok("/%E2%80%A4%E2%80%A4/admin")),
        ("/%ef%bc%8e%ef%bc%8e/admin", Ok("/%EF%BC%8E%EF%BC%8E/admin")),
        ("/a\u{ff0f}b", Ok("/a%EF%BC%8Fb")),
        ("/%c0%ae%c0%ae/admin", Ok("/%C0%AE%C0%AE/admin")),
        // refused: encoded separators
        ("/a%2Fb", Err(Error::EncodedSlash)),
        ("/a%2fb", Err(Error::EncodedSlash)),
        ("/..%2f..%2fetc", Err(Error::EncodedSlash)),
        ("/a%5Cb", Err(Error::EncodedBackslash)),
        ("/a%5cb", Err(Error::EncodedBackslash)),
        ("/a\\b", Err(Error::Backslash)),
        ("/..\\admin", Err(Error::Backslash)),
        // refused: NUL and control characters
        ("/a%00b", Err(Error::NulByte)),
        ("/a\0b", Err(Error::NulByte)),
        ("/a%0Ab", Err(Error::ControlChar)),
        ("/a%0d%0aSet-Cookie:x", Err(Error::ControlChar)),
        ("/a\tb", Err(Error::ControlChar)),
        ("/a\x7fb", Err(Error::ControlChar)),
        ("/a%7Fb", Err(Error::ControlChar)),
        // refused: malformed escapes
        ("/%", Err(Error::BadPercentEncoding)),
        ("/a%4", Err(Error::BadPercentEncoding)),
        ("/%zz", Err(Error::BadPercentEncoding)),
        ("/%g1", Err(Error::BadPercentEncoding)),
        ("/%1g", Err(Error::BadPercentEncoding)),
        ("/%%41", Err(Error::BadPercentEncoding)),
        // refused: not a path
        ("*", Err(Error::NotAbsolutePath)),
        ("a/b", Err(Error::NotAbsolutePath)),
        ("%2Fa", Err(Error::NotAbsolutePath)),
        ("http://host/p", Err(Error::NotAbsolutePath)),
        ("/a?b=1", Err(Error::QueryOrFragment)),
        ("/a#frag", Err(Error::QueryOrFragment)),
    ];

    #[test]
    fn table() {
        for (input, want) in CASES {
            let got = normalize(input);
            let want = want.clone().map(str::to_owned);
            assert_eq!(got, want, "normalize({input:?})");
        }
    }

    #[test]
    fn table_has_enough_cases() {
        assert!(CASES.len() >= 40, "{} cases", CASES.len());
    }

    #[test]
    fn normalize_is_idempotent_over_the_table() {
        for (input, _) in CASES {
            if let Ok(once) = normalize(input) {
                assert_eq!(normalize(&once).as_ref(), Ok(&once), "input {input:?}");
            }
        }
    }

    #[test]
    fn output_never_contains_dot_segments_or_empty_segments() {
        for (input, _) in CASES {
            if let Ok(out) = normalize(input) {
                assert!(out.starts_with('/'), "{input:?} -> {out:?}");
                assert!(!out.contains("//"), "{input:?} -> {out:?}");
                let segments: Vec<&str> = out.split('/').collect();
                assert!(
                    !segments.iter().any(|s| *s == "." || *s == ".."),
                    "{input:?} -> {out:?}"
                );
                assert!(out.is_ascii(), "{input:?} -> {out:?}");
            }
        }
    }

    #[test]
    fn every_single_byte_escape_is_idempotent() {
        for b in 0u8..=255 {
            let input = format!("/x%{b:02x}y/%{b:02X}");
            if let Ok(once) = normalize(&input) {
                assert_eq!(normalize(&once).as_ref(), Ok(&once), "input {input:?}");
            }
        }
    }

    #[test]
    fn every_ascii_byte_raw_is_idempotent() {
        for b in 0u8..0x80 {
            let input = format!("/x{}y/", char::from(b));
            if let Ok(once) = normalize(&input) {
                assert_eq!(normalize(&once).as_ref(), Ok(&once), "input {input:?}");
            }
        }
    }

    #[test]
    fn normal_path_needs_no_reallocation() {
        let input = "/api/projects/42/tasks";
        let out = normalize(input).unwrap_or_default();
        assert_eq!(out, input);
        assert!(out.capacity() < 2 * input.len(), "grew: {}", out.capacity());
    }
}
