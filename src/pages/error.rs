//! Error and refusal pages.

use super::{escape, frame};

/// The page of an error answer: its title, what the user can do, a link to
/// sign in again, and the request id (the log line has the cause).
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

/// A 403 page: the heading and one sentence.
pub fn forbidden(message: &str) -> String {
    frame(
        "Forbidden",
        &format!("<h1>Forbidden</h1><p>{}</p>", escape(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_values_are_escaped() {
        let page = error_page("<x>", "a\"b<script>", "id'1", "/_auth");
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("id&#39;1"));
        let page = forbidden("no <b>entry</b>");
        assert!(page.contains("<h1>Forbidden</h1><p>no &lt;b&gt;entry&lt;/b&gt;</p>"));
    }
}
