//! HTML pages: login, errors, admin. Every dynamic value is HTML-escaped here;
//! pages never include secrets, and they load nothing from other origins.

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

pub fn error_page(title: &str, message: &str, request_id: &str, prefix: &str) -> String {
    frame(
        title,
        &format!(
            "<h1>{}</h1><p>{}</p><p><a href=\"{}/login\">Sign in again</a></p><p class=\"muted\">Request id: <code>{}</code></p>",
            escape(title),
            escape(message),
            escape(prefix),
            escape(request_id)
        ),
    )
}

/// The username/password form of the login page.
pub struct LoginForm<'a> {
    /// Where the form posts (`{prefix}/ldap/login`).
    pub action: &'a str,
    pub csrf: &'a str,
    pub rd: &'a str,
    /// Shown back after a failure (never the password).
    pub username: &'a str,
    /// "Username", "Email" or "Username or email".
    pub username_label: &'a str,
    /// One message for the user, announced to screen readers.
    pub error: Option<&'a str>,
}

/// The login page with the directory form.
pub fn login(f: &LoginForm<'_>) -> String {
    let error = match f.error {
        Some(e) => format!(
            "<p class=\"error\" id=\"login-error\" role=\"alert\">{}</p>",
            escape(e)
        ),
        None => String::new(),
    };
    let described = if f.error.is_some() {
        " aria-describedby=\"login-error\" aria-invalid=\"true\""
    } else {
        ""
    };
    let email_only = f.username_label == "Email";
    let autofocus_user = if f.username.is_empty() {
        " autofocus"
    } else {
        ""
    };
    let autofocus_pw = if f.username.is_empty() {
        ""
    } else {
        " autofocus"
    };
    frame(
        "Sign in",
        &format!(
            "<h1>Sign in</h1>{error}\
<form method=\"post\" action=\"{action}\" novalidate>\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"rd\" value=\"{rd}\">\
<label for=\"username\">{label}</label>\
<input id=\"username\" name=\"username\" type=\"{kind}\" autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" required{autofocus_user}{described} value=\"{username}\">\
<label for=\"password\">Password</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required{autofocus_pw}{described}>\
<button type=\"submit\">Sign in</button>\
</form><p class=\"muted\">Use your directory account.</p>",
            action = escape(f.action),
            csrf = escape(f.csrf),
            rd = escape(f.rd),
            label = escape(f.username_label),
            kind = if email_only { "email" } else { "text" },
            username = escape(f.username),
        ),
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
    fn dynamic_values_are_escaped() {
        let page = error_page("<x>", "a\"b<script>", "id'1", "/_auth");
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("id&#39;1"));
    }

    #[test]
    fn login_form_is_labelled_and_escaped() {
        let page = login(&LoginForm {
            action: "/_auth/ldap/login",
            csrf: "t\"ok",
            rd: "/a?b=<c>",
            username: "x\"><script>",
            username_label: "Username",
            error: Some("Invalid username or password."),
        });
        assert!(page.contains("<label for=\"username\">Username</label>"));
        assert!(page.contains("autocomplete=\"current-password\""));
        assert!(page.contains("role=\"alert\""));
        assert!(!page.contains("<script>"));
        assert!(page.contains("value=\"/a?b=&lt;c&gt;\""));
    }
}
