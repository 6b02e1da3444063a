//! SAML pages: the HTTP-POST binding form that carries an AuthnRequest to
//! the IdP, and the report of a test sign-in.

use super::{escape, frame};
use crate::identity::Principal;
use crate::mapping::explain::Explanation;

/// The script that submits the HTTP-POST binding form (allowed by its
/// hash in the page's Content-Security-Policy, [`post_form_csp`]).
const AUTO_SUBMIT: &str = "document.forms[0].submit()";

/// HTTP-POST binding (SAML bindings §3.5.4): a page whose form posts
/// `SAMLRequest` and `RelayState` to the IdP at `action`, submitted by a
/// script the CSP allows by hash (a button without script).
pub fn post_form(action: &str, saml_request: &str, relay: &str) -> String {
    let body = format!(
        "<h1>Signing in</h1><form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"SAMLRequest\" value=\"{}\"/><input type=\"hidden\" name=\"RelayState\" value=\"{}\"/><noscript><button type=\"submit\">Continue</button></noscript></form><script>{AUTO_SUBMIT}</script>",
        escape(action),
        escape(saml_request),
        escape(relay)
    );
    frame("Signing in", &body)
}

/// The Content-Security-Policy of [`post_form`]: its one script by hash,
/// the form may go to `form_origin` (the IdP's `scheme://authority`) only.
pub fn post_form_csp(form_origin: &str) -> String {
    use base64::Engine as _;
    let hash = openssl::sha::sha256(AUTO_SUBMIT.as_bytes());
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{}'; form-action {form_origin}; frame-ancestors 'none'",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// The answer to a test sign-in: what the assertion said (`p`) and what
/// the mapping in force makes of it (`grant`). Nobody is signed in.
pub fn test_report(p: &Principal, grant: &Explanation, prefix: &str) -> String {
    let row = |k: &str, v: &str| {
        format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
            escape(k),
            escape(v)
        )
    };
    let none = || "(none)".to_string();
    let mut b = String::from("<h1>Test sign-in: the identity provider answered</h1><p>Nobody was signed in; your own session is unchanged.</p><h2>Assertion</h2><table id=\"assertion\">");
    b.push_str(&row("NameID (subject)", &p.subject));
    b.push_str(&row("Email", &p.email.clone().unwrap_or_else(none)));
    b.push_str(&row(
        "First name",
        &p.given_name.clone().unwrap_or_else(none),
    ));
    b.push_str(&row(
        "Last name",
        &p.family_name.clone().unwrap_or_else(none),
    ));
    b.push_str(&row("Name", &p.name.clone().unwrap_or_else(none)));
    b.push_str(&row(
        "Username",
        &p.preferred_username.clone().unwrap_or_else(none),
    ));
    b.push_str(&row(
        "Session index",
        &p.session_index.clone().unwrap_or_else(none),
    ));
    b.push_str(&row(
        "Groups",
        &if p.groups.is_empty() {
            none()
        } else {
            p.groups.join("; ")
        },
    ));
    b.push_str("</table><h2>What this user gets</h2>");
    b.push_str(&super::sso::explanation(grant));
    b.push_str(&format!(
        "<p><a href=\"{}/admin/sso\">Back to the SSO settings</a></p>",
        escape(prefix)
    ));
    frame("Test sign-in", &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_post_form_escapes_and_its_script_is_the_one_the_csp_allows() {
        let page = post_form(
            "https://idp.example.com/sso?a=1&b=\"2\"",
            "PHNhbWw+",
            "/x?<y>",
        );
        assert!(page.contains("action=\"https://idp.example.com/sso?a=1&amp;b=&quot;2&quot;\""));
        assert!(page.contains("name=\"RelayState\" value=\"/x?&lt;y&gt;\""));
        assert!(page.contains("<script>document.forms[0].submit()</script>"));
        let csp = post_form_csp("https://idp.example.com");
        // printf %s 'document.forms[0].submit()' | openssl sha256 -binary | base64
        assert_eq!(
            csp,
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-ePniVEkSivX/c7XWBGafqh8tSpiRrKiqYeqbG7N1TOE='; form-action https://idp.example.com; frame-ancestors 'none'"
        );
    }
}
