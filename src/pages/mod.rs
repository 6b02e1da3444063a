//! Every HTML page and fragment authgate serves, one module per family:
//! [`login`] (the sign-in page: directory form, SSO buttons), [`saml`] (the
//! HTTP-POST binding form, the test sign-in report), [`logout`] (signed
//! out), [`error`] (error and refusal pages), [`sso`] (the SSO & SAML
//! settings page). Endpoints gather what a page shows and set status and
//! headers; the markup is made here only.
//!
//! Every dynamic value is HTML-escaped ([`escape`]); pages never include
//! secrets, and they load nothing from other origins.

pub mod error;
pub mod login;
pub mod logout;
pub mod saml;
pub mod sso;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC), for tables of times.
pub fn utc(t: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f5f6f8;color:#1d2330;margin:0}\
main{max-width:28rem;margin:10vh auto;background:#fff;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.12);padding:2rem}\
h1{font-size:1.35rem;margin:0 0 1rem}p{line-height:1.5}.muted{color:#5b6372;font-size:.85rem}\
label{display:block;margin:.75rem 0 .25rem;font-weight:600}input{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #b8bfcc;border-radius:4px;font-size:1rem}\
button,.button{display:block;width:100%;margin-top:1.25rem;padding:.65rem;border:0;border-radius:4px;background:#2457d6;color:#fff;font-size:1rem;text-align:center;text-decoration:none;cursor:pointer}\
.error{background:#fdecec;border:1px solid #f3b4b4;color:#8a1c1c;padding:.6rem;border-radius:4px}\
hr{border:0;border-top:1px solid #e3e6eb;margin:1.5rem 0}";

/// The common page frame.
pub fn frame(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        t = escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_utc_to_the_second() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
    }

    #[test]
    fn escape_covers_markup_and_both_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
