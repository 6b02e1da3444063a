//! The CSRF token of the SSO page's forms: the session's id (hashed)
//! sealed with the session keys as an [`AdminCsrf`] (a purpose of its
//! own), so a token works only with the session it was made for, and for
//! [`AdminCsrf::TTL`].

use std::time::Duration;

use crate::app::State;
use crate::clock::now_unix;
use crate::session::sealed::{ad, text_payload};
use crate::session::{Expiring, Sealable, Sealed, Session};

/// The session a token is made for: a hash of its id (the id itself is
/// never sealed into a page).
fn session_tag(s: &Session) -> String {
    let h = openssl::sha::sha256(s.id.as_bytes());
    h[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// What the page's CSRF token seals: the session it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AdminCsrf {
    /// [`session_tag`] of that session.
    pub(crate) session_tag: String,
}

impl Sealable for AdminCsrf {
    const AD: &'static [u8] = ad::ADMIN_CSRF;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.session_tag.as_bytes());
    }
    fn decode(payload: &[u8]) -> Option<Self> {
        text_payload(payload).map(|session_tag| AdminCsrf { session_tag })
    }
}

impl Expiring for AdminCsrf {
    /// A page left open this long must be reloaded before its forms work.
    const TTL: Duration = Duration::from_secs(12 * 3600);
}

/// A new token for the forms of a page shown to `s`.
pub(super) fn token(state: &State, s: &Session) -> String {
    let csrf = AdminCsrf {
        session_tag: session_tag(s),
    };
    Sealed::seal(&state.keys, &csrf, now_unix()).into_string()
}

/// Whether `token` was made for `s`, by these keys, within
/// [`AdminCsrf::TTL`].
pub(super) fn ok(state: &State, s: &Session, token: Option<&str>) -> bool {
    let Some(csrf) = token.and_then(|t| Sealed::<AdminCsrf>::open(&state.keys, t, now_unix()))
    else {
        return false;
    };
    let want = session_tag(s);
    aws_lc_rs::constant_time::verify_slices_are_equal(csrf.session_tag.as_bytes(), want.as_bytes())
        .is_ok()
}
