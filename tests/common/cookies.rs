//! What a browser keeps and sends: cookies, CSRF tokens, form bodies, and
//! the `rd` target of a login redirect.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::client::Got;

/// The `name=value` pair of a `Set-Cookie` header: what a browser sends
/// back.
pub fn pair_of(set_cookie: &http::HeaderValue) -> String {
    set_cookie
        .to_str()
        .expect("ascii cookie")
        .split(';')
        .next()
        .expect("cookie pair")
        .to_string()
}

/// The `name=value` pair a response sets for cookie `name`, unless it
/// deletes it (an empty value).
pub fn cookie_pair(got: &Got, name: &str) -> Option<String> {
    got.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_string())
        .find(|p| p.starts_with(&format!("{name}=")) && p.len() > name.len() + 1)
}

/// The value of the `csrf` form field of a page.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let i = html.find(marker).expect("csrf field") + marker.len();
    html[i..i + html[i..].find('"').expect("end")].to_string()
}

/// Percent-encodes everything but letters and digits.
pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// An `application/x-www-form-urlencoded` body.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-decodes a query value once (`+` is a space).
pub fn decode_query_value(v: &str) -> String {
    percent_encoding::percent_decode_str(&v.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// The decoded `rd` of a `Location` pointing at the login page, or `None`
/// when it has none.
pub fn rd_of(location: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    query
        .split('&')
        .find_map(|p| p.strip_prefix("rd="))
        .map(decode_query_value)
}

/// A target a browser resolves to this host: one leading `/`, then neither
/// `/` nor `\`, and nothing a browser would strip or treat as a scheme.
pub fn is_local_path(rd: &str) -> bool {
    let b = rd.as_bytes();
    b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/') | Some(b'\\'))
        && b.iter().all(|c| c.is_ascii_graphic() && *c != b'\\')
}
