//! Request-side matching primitives: path segments, HTTP methods, query parameters.
//!
//! This runs on every proxied request, so nothing here allocates: a path is split into a
//! fixed array of borrowed segments, and a segment is compared with a template literal byte by
//! byte while it is percent-decoded, ASCII case-folded and cut at its first `;`.
//!
//! Every comparison is a *superset* of what Django would route (see the header of
//! `config/label-studio-routes.toml`): a row that matches too much refuses too much, never too
//! little. The one relaxation (the invite `token` of the signup row) is matched exactly, as
//! Django reads it. This module decides nothing; `RouteTable::decide` does.

/// Longest template (in segments) a route table may use. Requests may be longer: only their first
/// `MAX_SEGMENTS` segments (and their count) matter, since no template reaches further.
pub(super) const MAX_SEGMENTS: usize = 16;

/// The segments of a normalized path: empty segments dropped (`//` and the trailing slash do not
/// count), `.` and `..` resolved, `/`, `\` and their escapes all separators. The proxy already
/// normalized the path (and refused escaped separators); doing it again costs nothing and means a
/// caller that forgot cannot open a hole.
pub(super) struct Segments<'a> {
    segs: [&'a str; MAX_SEGMENTS],
    total: usize,
}

impl<'a> Segments<'a> {
    pub(super) fn split(path: &'a str) -> Self {
        // A normalized path has no query or fragment; if one slipped in, it is not path.
        let path = match path.find(['?', '#']) {
            Some(end) => &path[..end],
            None => path,
        };
        let mut out = Segments {
            segs: [""; MAX_SEGMENTS],
            total: 0,
        };
        let bytes = path.as_bytes();
        let (mut start, mut i) = (0, 0);
        while i <= bytes.len() {
            let sep = if i == bytes.len() {
                1
            } else {
                separator_len(bytes, i)
            };
            if sep == 0 {
                i += 1;
                continue;
            }
            out.push(path.get(start..i).unwrap_or(""));
            i += sep;
            start = i;
        }
        out
    }

    fn push(&mut self, seg: &'a str) {
        // What a server that strips `;params` sees: `/;x` is an empty
        // segment and `..;x` is `..` (Tomcat and kin), so they count as such.
        let head = &seg[..param_start(seg)];
        if head.is_empty() {
            return;
        }
        match dot_segment(head) {
            1 => {}
            2 => self.total = self.total.saturating_sub(1),
            _ => {
                if let Some(slot) = self.segs.get_mut(self.total) {
                    *slot = seg;
                }
                self.total += 1;
            }
        }
    }

    /// Number of segments of the whole path.
    pub(super) fn len(&self) -> usize {
        self.total
    }

    /// Segment `i` as it appears in the path (still encoded, `;param` included); `i` must be below
    /// both `len()` and `MAX_SEGMENTS`, which every template satisfies.
    pub(super) fn get(&self, i: usize) -> &'a str {
        self.segs.get(i).copied().unwrap_or("")
    }

    pub(super) fn is_last(&self, i: usize) -> bool {
        i + 1 == self.total
    }
}

/// Length of the separator at `i`: `/`, `\`, or their escapes `%2F`, `%5C` (the proxy refuses
/// those with 400; Django would decode them into separators, so the policy splits on them too).
fn separator_len(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(b'/' | b'\\') => 1,
        Some(b'%') => match (b.get(i + 1), b.get(i + 2)) {
            (Some(b'2'), Some(b'f' | b'F')) | (Some(b'5'), Some(b'c' | b'C')) => 3,
            _ => 0,
        },
        _ => 0,
    }
}

/// Where a segment's `;param` starts (`;` or its escape `%3B`), or its length.
fn param_start(seg: &str) -> usize {
    let b = seg.as_bytes();
    (0..b.len())
        .find(|&i| {
            b[i] == b';'
                || (b[i] == b'%'
                    && b.get(i + 1) == Some(&b'3')
                    && matches!(b.get(i + 2), Some(b'b' | b'B')))
        })
        .unwrap_or(b.len())
}

/// 1 for `.`, 2 for `..` (percent-encoded dots included), 0 otherwise.
fn dot_segment(seg: &str) -> u8 {
    let mut n = 0u8;
    for b in Decoded::new(seg.as_bytes()) {
        if b != b'.' || n == 2 {
            return 0;
        }
        n += 1;
    }
    n
}

/// Percent-decoding byte iterator: `%XX` yields the byte, anything else (a stray `%` included)
/// yields itself.
struct Decoded<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Decoded<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Decoded { bytes, pos: 0 }
    }
}

impl Iterator for Decoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (
                self.bytes.get(self.pos + 1).and_then(|&h| hex(h)),
                self.bytes.get(self.pos + 2).and_then(|&l| hex(l)),
            ) {
                self.pos += 3;
                return Some(hi << 4 | lo);
            }
        }
        self.pos += 1;
        Some(b)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Does path segment `raw` name the template literal `lit` (lower-case ASCII)?
///
/// `raw` is percent-decoded, cut at its first `;` (a `;param`, encoded or not: Django would not
/// route `members;x`, another server might), and compared case-insensitively. When `raw` is the
/// last segment of the path, `lit` followed by `.anything` also matches: Django REST framework's
/// format suffixes (`/api/users.json`, `/api/users/5.json`).
pub(super) fn literal_eq(raw: &str, lit: &[u8], last: bool) -> bool {
    let mut it = Decoded::new(raw.as_bytes()).take_while(|&b| b != b';');
    for &want in lit {
        match it.next() {
            Some(got) if got.to_ascii_lowercase() == want => {}
            _ => return false,
        }
    }
    match it.next() {
        None => true,
        Some(b'.') => last,
        Some(_) => false,
    }
}

/// Method bits. HEAD has none: it is GET (a HEAD reaches the GET view).
pub(super) const GET: u16 = 1;
pub(super) const POST: u16 = 1 << 1;
pub(super) const PUT: u16 = 1 << 2;
pub(super) const PATCH: u16 = 1 << 3;
pub(super) const DELETE: u16 = 1 << 4;
pub(super) const OPTIONS: u16 = 1 << 5;
pub(super) const TRACE: u16 = 1 << 6;
pub(super) const CONNECT: u16 = 1 << 7;

const KNOWN: [(&str, u16); 9] = [
    ("GET", GET),
    ("HEAD", GET),
    ("POST", POST),
    ("PUT", PUT),
    ("PATCH", PATCH),
    ("DELETE", DELETE),
    ("OPTIONS", OPTIONS),
    ("TRACE", TRACE),
    ("CONNECT", CONNECT),
];

/// A request method as the policy sees it. Names compare case-insensitively: Django dispatches
/// on `request.method.lower()`, so a request line `patch /x HTTP/1.1` (an extension method to
/// the `http` crate) reaches the PATCH handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verb<'a> {
    Known(u16),
    Other(&'a str),
}

pub(super) fn verb(name: &str) -> Verb<'_> {
    KNOWN
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map_or(Verb::Other(name), |&(_, bit)| Verb::Known(bit))
}

/// Canonical name of a method bit (for messages).
pub(super) fn bit_name(bit: u16) -> &'static str {
    KNOWN
        .iter()
        .find(|&&(n, b)| b == bit && n != "HEAD")
        .map_or("?", |&(n, _)| n)
}

impl std::fmt::Display for Verb<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verb::Known(bit) => f.write_str(bit_name(*bit)),
            Verb::Other(name) => f.write_str(name),
        }
    }
}

/// Does the query carry parameter `name` with a non-empty value, as Django's `request.GET.get`
/// reads it (the last occurrence; keys and values percent-decoded, `+` is a space; keys compared
/// exactly)? Used only to *relax* a rule, so it is exact, not a superset.
pub(super) fn query_param_nonempty(query: Option<&str>, name: &str) -> bool {
    let Some(query) = query else {
        return false;
    };
    let mut found = false;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if form_decoded_eq(key, name.as_bytes()) {
            found = !value.is_empty();
        }
    }
    found
}

/// Does the query carry parameter `name` whose value, as Django's `request.GET.get` reads it (the
/// last occurrence; keys and values form-decoded; keys compared exactly), is one of `values`
/// (compared exactly)? Used only to *relax* a rule (a role-table row for one data manager action),
/// so any spelling Django might read differently fails to match.
pub(super) fn query_param_is(query: Option<&str>, name: &str, values: &[String]) -> bool {
    let Some(query) = query else {
        return false;
    };
    let mut last: Option<&str> = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if form_decoded_eq(key, name.as_bytes()) {
            last = Some(value);
        }
    }
    last.is_some_and(|v| {
        values
            .iter()
            .any(|want| form_decoded_eq(v, want.as_bytes()))
    })
}

/// `application/x-www-form-urlencoded` decoding of `raw` equals `want`.
fn form_decoded_eq(raw: &str, want: &[u8]) -> bool {
    // A raw `+` is a space, while `%2B` stays `+`: decide per raw byte.
    let mut it = PlusDecoded::new(raw.as_bytes());
    for &w in want {
        if it.next() != Some(w) {
            return false;
        }
    }
    it.next().is_none()
}

/// Form decoding of `raw` (`+` is a space, `%XX` a byte), for the rare callers that need the
/// bytes themselves.
pub(super) fn form_decode(raw: &str) -> Vec<u8> {
    PlusDecoded::new(raw.as_bytes()).collect()
}

/// Form decoding: `+` is a space, `%XX` a byte.
struct PlusDecoded<'a> {
    inner: Decoded<'a>,
}

impl<'a> PlusDecoded<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        PlusDecoded {
            inner: Decoded::new(bytes),
        }
    }
}

impl Iterator for PlusDecoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let raw = *self.inner.bytes.get(self.inner.pos)?;
        if raw == b'+' {
            self.inner.pos += 1;
            return Some(b' ');
        }
        self.inner.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_drop_empty_and_resolve_dots() {
        let s = Segments::split("//api/./x/%2e%2E/users//5/?q=1");
        assert_eq!(s.len(), 3);
        assert_eq!((s.get(0), s.get(1), s.get(2)), ("api", "users", "5"));
        assert!(s.is_last(2));
        let s = Segments::split("\\api\\users");
        assert_eq!((s.len(), s.get(1)), (2, "users"));
        let s = Segments::split("/api%2Fusers%5c5%2f");
        assert_eq!((s.len(), s.get(1), s.get(2)), (3, "users", "5"));
        let s = Segments::split("/api%2/users%");
        assert_eq!((s.len(), s.get(0), s.get(1)), (2, "api%2", "users%"));
        assert_eq!(Segments::split("/").len(), 0);
        // A segment that is only a `;param` is empty; `..;x` is `..`.
        let s = Segments::split("/api/users/0/;x=1");
        assert_eq!((s.len(), s.get(2)), (3, "0"));
        assert_eq!(Segments::split("/api/users/0/%3Bx/").len(), 3);
        let s = Segments::split("/api/x/..;x=1/users/.;y/0");
        assert_eq!((s.len(), s.get(1), s.get(2)), (3, "users", "0"));
        assert_eq!(Segments::split("/../..").len(), 0);
    }

    #[test]
    fn long_paths_keep_their_count() {
        let long = "/a".repeat(40);
        let s = Segments::split(&long);
        assert_eq!(s.len(), 40);
        assert_eq!(s.get(MAX_SEGMENTS - 1), "a");
        let back = format!("{long}/../../b");
        assert_eq!(Segments::split(&back).len(), 39);
    }

    #[test]
    fn literal_matching_is_a_superset() {
        assert!(literal_eq("Members", b"members", false));
        assert!(literal_eq("members;jsessionid=1", b"members", false));
        assert!(literal_eq("members%3Bx", b"members", false));
        assert!(literal_eq("%6Dembers", b"members", false));
        assert!(literal_eq("members.json", b"members", true));
        assert!(literal_eq("members.json;x", b"members", true));
        assert!(!literal_eq("members.json", b"members", false));
        assert!(!literal_eq("membersx", b"members", true));
        assert!(!literal_eq("member", b"members", true));
        assert!(!literal_eq(";members", b"members", true));
    }

    #[test]
    fn methods_fold_case_and_head_is_get() {
        assert_eq!(verb("patch"), Verb::Known(PATCH));
        assert_eq!(verb("HEAD"), Verb::Known(GET));
        assert_eq!(verb("PROPFIND"), Verb::Other("PROPFIND"));
        assert_eq!(Verb::Known(GET).to_string(), "GET");
    }

    #[test]
    fn a_query_value_is_read_as_django_reads_it() {
        let next = ["next_task".to_string()];
        assert!(query_param_is(Some("id=next_task&project=3"), "id", &next));
        assert!(query_param_is(
            Some("project=3&%69d=next%5Ftask"),
            "id",
            &next
        ));
        assert!(query_param_is(
            Some("id=delete_tasks&id=next_task"),
            "id",
            &next
        ));
        assert!(!query_param_is(
            Some("id=next_task&id=delete_tasks"),
            "id",
            &next
        ));
        assert!(!query_param_is(
            Some("id=next_task&%69d=delete_tasks"),
            "id",
            &next
        ));
        assert!(!query_param_is(
            Some("id=next_task;id=delete_tasks"),
            "id",
            &next
        ));
        assert!(!query_param_is(Some("id=Next_Task"), "id", &next));
        assert!(!query_param_is(Some("ID=next_task"), "id", &next));
        assert!(!query_param_is(Some("id=next_task+"), "id", &next));
        assert!(!query_param_is(Some("id"), "id", &next));
        assert!(!query_param_is(None, "id", &next));
    }

    #[test]
    fn invite_token_is_read_as_django_reads_it() {
        assert!(query_param_nonempty(Some("token=abc"), "token"));
        assert!(query_param_nonempty(Some("a=1&%74oken=abc"), "token"));
        assert!(!query_param_nonempty(Some("token="), "token"));
        assert!(!query_param_nonempty(Some("token"), "token"));
        assert!(!query_param_nonempty(Some("Token=abc"), "token"));
        assert!(!query_param_nonempty(Some("token=abc&token="), "token"));
        assert!(!query_param_nonempty(Some("tok+en=abc"), "token"));
        assert!(!query_param_nonempty(None, "token"));
    }
}
