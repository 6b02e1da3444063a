//! The sign-in page: the directory (LDAP) form, the "Sign in with SSO"
//! buttons, or both; and the page shown when no sign-in method is on.

use super::{escape, frame};

/// One "Sign in with ..." button: an IdP and where its button goes
/// (`{prefix}/saml/login`, with `idp` and `rd` as needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoButton<'a> {
    /// The IdP's id (`saml.idps`).
    pub id: &'a str,
    /// Its display name.
    pub name: &'a str,
    pub href: String,
}

/// The SSO block: one button per IdP; the first one's is `id="sso"`.
fn sso_block(buttons: &[SsoButton<'_>]) -> String {
    let mut out = String::from("<p>Sign in with your organization's account.</p>");
    for (i, b) in buttons.iter().enumerate() {
        let (id, label) = match (i, buttons.len()) {
            (0, 1) => ("sso".to_string(), "Sign in with SSO".to_string()),
            (0, _) => ("sso".to_string(), format!("Sign in with {}", b.name)),
            _ => (format!("sso-{}", b.id), format!("Sign in with {}", b.name)),
        };
        out.push_str(&format!(
            "<a class=\"button\" id=\"{}\" href=\"{}\">{}</a>",
            escape(&id),
            escape(&b.href),
            escape(&label)
        ));
    }
    out
}

/// The login page when SAML is the only sign-in method.
pub fn sso_only(buttons: &[SsoButton<'_>]) -> String {
    frame(
        "Sign in",
        &format!("<h1>Sign in</h1>{}", sso_block(buttons)),
    )
}

/// The login page when neither LDAP nor SAML is on.
pub fn no_method() -> String {
    frame(
        "Sign in",
        "<h1>Sign in</h1><p>No sign-in method is configured. An administrator must enable LDAP (<code>[ldap]</code>) or SAML SSO (<code>[saml]</code>) in authgate's configuration.</p>",
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
    /// The SSO buttons above the form (`None`: SAML is off).
    pub sso: Option<&'a [SsoButton<'a>]>,
}

/// The login page with the directory form.
pub fn login(f: &LoginForm<'_>) -> String {
    let sso = match f.sso {
        Some(buttons) => format!("{}<hr>", sso_block(buttons)),
        None => String::new(),
    };
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
            "<h1>Sign in</h1>{sso}{error}\
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

    fn form<'a>(sso: Option<&'a [SsoButton<'a>]>) -> LoginForm<'a> {
        LoginForm {
            action: "/_auth/ldap/login",
            csrf: "t\"ok",
            rd: "/a?b=<c>",
            username: "x\"><script>",
            username_label: "Username",
            error: Some("Invalid username or password."),
            sso,
        }
    }

    #[test]
    fn login_form_is_labelled_and_escaped() {
        let page = login(&form(None));
        assert!(page.contains("<label for=\"username\">Username</label>"));
        assert!(page.contains("autocomplete=\"current-password\""));
        assert!(page.contains("role=\"alert\""));
        assert!(!page.contains("<script>"));
        assert!(page.contains("value=\"/a?b=&lt;c&gt;\""));
        assert!(!page.contains("<hr>"), "no SSO block without SAML");
    }

    #[test]
    fn sso_buttons_come_first_and_are_escaped() {
        let one = [SsoButton {
            id: "default",
            name: "Okta",
            href: "/_auth/saml/login?rd=%2Fx".into(),
        }];
        let page = login(&form(Some(&one)));
        assert!(page.contains(
            "<h1>Sign in</h1><p>Sign in with your organization's account.</p><a class=\"button\" id=\"sso\" href=\"/_auth/saml/login?rd=%2Fx\">Sign in with SSO</a><hr><p class=\"error\""
        ));
        let two = [
            SsoButton {
                id: "okta",
                name: "Okta <corp>",
                href: "/a?idp=okta&rd=\"".into(),
            },
            SsoButton {
                id: "en\"tra",
                name: "Entra",
                href: "/b".into(),
            },
        ];
        let page = sso_only(&two);
        assert!(page.contains(
            "<a class=\"button\" id=\"sso\" href=\"/a?idp=okta&amp;rd=&quot;\">Sign in with Okta &lt;corp&gt;</a>"
        ));
        assert!(page.contains(
            "<a class=\"button\" id=\"sso-en&quot;tra\" href=\"/b\">Sign in with Entra</a>"
        ));
        assert!(!sso_only(&[]).contains("<a "));
        assert!(no_method().contains("No sign-in method is configured"));
    }
}
