//! The signed-out page.

use super::{escape, frame};

/// "You are signed out", with a button to sign in again. `idp_status`:
/// the IdP did not end its own session and answered this status (its last
/// part, e.g. `Responder`), so the page says the user may still be signed
/// in there.
pub fn signed_out(prefix: &str, idp_status: Option<&str>) -> String {
    let extra = match idp_status {
        Some(status) => format!(
            "<p>The identity provider answered {}: you may still be signed in there. Close the browser to end that session.</p>",
            escape(status)
        ),
        None => String::new(),
    };
    frame(
        "Signed out",
        &format!(
            "<h1>You are signed out</h1>{extra}<p><a class=\"button\" href=\"{}/login\">Sign in again</a></p>",
            escape(prefix)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_to_sign_in_and_escapes() {
        let page = signed_out("/_a\"uth", None);
        assert!(page.contains(
            "<h1>You are signed out</h1><p><a class=\"button\" href=\"/_a&quot;uth/login\">Sign in again</a></p>"
        ));
        let page = signed_out("/_auth", Some("<Responder>"));
        assert!(page.contains("The identity provider answered &lt;Responder&gt;: you may still"));
    }
}
