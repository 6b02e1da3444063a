//! Session control for administrators: what a listing shows of a session
//! ([`Summary`]), which sessions a revocation names ([`Selector`]), and
//! [`list`] / [`revoke`] over any [`Store`].
//!
//! A listing never carries the session id itself (it is what the cookie
//! protects) but a short prefix of it ([`SID_PREFIX_LEN`] characters, the
//! same characters the upstream sees at the start of the identity JWT's
//! `sid` claim); a revocation by sid accepts that prefix or the whole id.
//!
//! Must not: touch HTTP, log, or return the full session id outside
//! [`Summary::id`].

use std::fmt;

use serde::Serialize;

use super::{Session, Store, StoreError};
use crate::identity::Identity;
use crate::role::Role;

/// Characters of the session id a listing shows.
pub const SID_PREFIX_LEN: usize = 12;
/// The shortest prefix a revocation by sid accepts (48 bits): shorter
/// would make a typo likely to name someone else's session.
pub const MIN_SID_PREFIX: usize = 8;

/// One live session as an administrator sees it.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    #[serde(skip)]
    id: String,
    /// The first [`SID_PREFIX_LEN`] characters of the session id.
    pub sid: String,
    /// SAML NameID or LDAP DN.
    pub subject: String,
    pub email: Option<String>,
    /// preferred_username, else email, else subject (as the user header).
    pub user: String,
    /// `ldap` or `saml`.
    pub method: &'static str,
    pub role: Option<Role>,
    /// The SAML IdP (`saml.idps` id) the session signed in with.
    pub idp: Option<String>,
    /// Unix seconds.
    pub created: u64,
    /// The last request seen with this session (Unix seconds).
    pub last_seen: u64,
    /// When the session ends unless used again: its absolute expiry, or
    /// the idle timeout from the last use when that comes first.
    pub expires: u64,
}

impl fmt::Debug for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Summary")
            .field("sid", &self.sid)
            .field("subject", &self.subject)
            .field("method", &self.method)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Summary {
    /// `idle_secs`: the store's idle timeout (`None`: none).
    pub fn new(s: &Session, last_seen: u64, idle_secs: Option<u64>) -> Summary {
        Summary::of(
            &s.id,
            &s.identity,
            s.created,
            s.expires,
            last_seen,
            idle_secs,
        )
    }

    /// From the parts a store keeps.
    pub fn of(
        id: &str,
        identity: &Identity,
        created: u64,
        expires: u64,
        last_seen: u64,
        idle_secs: Option<u64>,
    ) -> Summary {
        let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let user = non_empty(&identity.preferred_username)
            .or_else(|| non_empty(&identity.email))
            .unwrap_or_else(|| identity.subject.clone());
        let idle_end = idle_secs.map_or(u64::MAX, |i| last_seen.saturating_add(i));
        Summary {
            id: id.to_string(),
            sid: sid_prefix(id).to_string(),
            subject: identity.subject.clone(),
            email: non_empty(&identity.email),
            user,
            method: identity.method.as_str(),
            role: identity.role,
            idp: identity.saml_idp.clone(),
            created,
            last_seen,
            expires: expires.min(idle_end),
        }
    }

    /// The whole session id: for [`Store::revoke`] only, never to show.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The first [`SID_PREFIX_LEN`] characters of a session id (ids are ASCII).
pub fn sid_prefix(id: &str) -> &str {
    id.get(..SID_PREFIX_LEN).unwrap_or(id)
}

/// `identity` belongs to `user`: its email, compared case-insensitively
/// (DESIGN.md: emails are compared lowercased), or its subject exactly
/// (an LDAP DN or a SAML NameID that is not an email).
pub fn is_user(identity: &Identity, user: &str) -> bool {
    let user = user.trim();
    !user.is_empty()
        && (identity.subject == user
            || identity
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(user)))
}

/// Which sessions a revocation ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Every session of this email (or subject).
    User(String),
    /// The session with this id, or the one whose id starts with this
    /// prefix (at least [`MIN_SID_PREFIX`] characters).
    Sid(String),
    /// Every session.
    All,
}

/// Why a revocation did not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a session id prefix needs at least {MIN_SID_PREFIX} characters")]
    SidTooShort,
    #[error("no user given")]
    NoUser,
    #[error("the sid prefix matches {0} sessions; give more characters")]
    Ambiguous(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Selector {
    /// Checks the selector's own shape (before the store is asked).
    pub fn check(&self) -> Result<(), Error> {
        match self {
            Selector::Sid(s) if s.trim().len() < MIN_SID_PREFIX => Err(Error::SidTooShort),
            Selector::User(u) if u.trim().is_empty() => Err(Error::NoUser),
            _ => Ok(()),
        }
    }

    /// A short name for audit lines: `user`, `sid`, `all`.
    pub fn scope(&self) -> &'static str {
        match self {
            Selector::User(_) => "user",
            Selector::Sid(_) => "sid",
            Selector::All => "all",
        }
    }
}

/// The live sessions (of `user` when given), newest first.
pub async fn list(
    store: &dyn Store,
    user: Option<&str>,
    now: u64,
) -> Result<Vec<Summary>, StoreError> {
    let user = user.map(str::trim).filter(|u| !u.is_empty());
    let mut all = store.list(user, now).await?;
    all.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.sid.cmp(&b.sid)));
    Ok(all)
}

/// The sessions `sel` names among `live` (pure: the matching rule).
pub fn select<'a>(live: &'a [Summary], sel: &Selector) -> Result<Vec<&'a Summary>, Error> {
    sel.check()?;
    Ok(match sel {
        Selector::All => live.iter().collect(),
        Selector::User(u) => live
            .iter()
            .filter(|s| {
                s.subject == u.trim()
                    || s.email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(u.trim()))
            })
            .collect(),
        Selector::Sid(p) => {
            let p = p.trim();
            let exact: Vec<&Summary> = live.iter().filter(|s| s.id == p).collect();
            if !exact.is_empty() {
                return Ok(exact);
            }
            let hits: Vec<&Summary> = live.iter().filter(|s| s.id.starts_with(p)).collect();
            if hits.len() > 1 {
                return Err(Error::Ambiguous(hits.len()));
            }
            hits
        }
    })
}

/// Ends the sessions `sel` names; returns those that were live and are now
/// revoked (each fails on its next request, on every replica sharing the
/// store).
pub async fn revoke(store: &dyn Store, sel: &Selector, now: u64) -> Result<Vec<Summary>, Error> {
    sel.check()?;
    let user = match sel {
        Selector::User(u) => Some(u.as_str()),
        _ => None,
    };
    let live = list(store, user, now).await?;
    let chosen = select(&live, sel)?;
    let mut done = Vec::with_capacity(chosen.len());
    for s in chosen {
        if store.revoke(&s.id).await? {
            done.push(s.clone());
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Method;
    use crate::session::tests::identity;

    fn summary(id: &str, email: &str, subject: &str, created: u64) -> Summary {
        let mut i = identity(subject);
        i.email = Some(email.to_string());
        Summary::of(id, &i, created, created + 3600, created, None)
    }

    #[test]
    fn a_summary_shows_a_prefix_never_the_id() {
        let id = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde";
        let s = summary(id, "Jane@Example.com", "jane", 10);
        assert_eq!(s.sid, "AbCdEfGhIjKl");
        assert_eq!(s.id(), id);
        let json = serde_json::to_string(&s).expect("json");
        assert!(!json.contains(id), "{json}");
        assert!(json.contains("\"sid\":\"AbCdEfGhIjKl\""), "{json}");
        assert!(!format!("{s:?}").contains(id));
        assert_eq!(sid_prefix("short"), "short");
    }

    #[test]
    fn expiry_is_the_idle_end_when_that_comes_first() {
        let i = identity("jane");
        let s = Summary::of("x", &i, 100, 3700, 200, Some(300));
        assert_eq!(s.expires, 500);
        let s = Summary::of("x", &i, 100, 3700, 3600, Some(300));
        assert_eq!(s.expires, 3700);
        let s = Summary::of("x", &i, 100, 3700, 3600, None);
        assert_eq!(s.expires, 3700);
        assert_eq!(s.method, "saml");
        assert_eq!(s.user, "jane", "preferred_username first");
        let mut ldap = identity("uid=bob,dc=example,dc=com");
        ldap.method = Method::Ldap;
        ldap.preferred_username = None;
        ldap.email = Some(String::new());
        let s = Summary::of("x", &ldap, 1, 2, 1, None);
        assert_eq!(
            (s.method, s.user.as_str()),
            ("ldap", "uid=bob,dc=example,dc=com")
        );
        assert_eq!(s.email, None);
    }

    #[test]
    fn users_match_by_email_case_insensitively_or_by_subject_exactly() {
        let mut i = identity("uid=jane,dc=example,dc=com");
        i.email = Some("Jane@Example.com".into());
        let cases = [
            ("jane@example.com", true),
            ("  JANE@EXAMPLE.COM ", true),
            ("uid=jane,dc=example,dc=com", true),
            ("UID=jane,dc=example,dc=com", false),
            ("jane", false),
            ("", false),
            ("bob@example.com", false),
        ];
        for (user, want) in cases {
            assert_eq!(is_user(&i, user), want, "{user:?}");
        }
    }

    #[test]
    fn selectors_pick_by_user_sid_prefix_or_all() {
        let live = vec![
            summary(
                "AAAAAAAAAAAA-one-xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "jane@example.com",
                "j",
                1,
            ),
            summary(
                "AAAAAAAAAAAB-two-xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "JANE@example.com",
                "j2",
                2,
            ),
            summary(
                "BBBBBBBBBBBB-bob-xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "bob@example.com",
                "b",
                3,
            ),
        ];
        let ids = |sel: Selector| -> Result<Vec<String>, String> {
            select(&live, &sel)
                .map(|v| v.iter().map(|s| s.sid.clone()).collect())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            ids(Selector::User("Jane@Example.com".into())),
            Ok(vec!["AAAAAAAAAAAA".into(), "AAAAAAAAAAAB".into()])
        );
        assert_eq!(
            ids(Selector::User("b".into())),
            Ok(vec!["BBBBBBBBBBBB".into()])
        );
        assert_eq!(ids(Selector::User("nobody".into())), Ok(vec![]));
        assert_eq!(ids(Selector::All).map(|v| v.len()), Ok(3));
        assert_eq!(
            ids(Selector::Sid("AAAAAAAAAAAB".into())),
            Ok(vec!["AAAAAAAAAAAB".into()])
        );
        assert_eq!(
            ids(Selector::Sid(live[2].id().to_string())),
            Ok(vec!["BBBBBBBBBBBB".into()])
        );
        assert_eq!(ids(Selector::Sid("CCCCCCCCCCCC".into())), Ok(vec![]));
        assert!(ids(Selector::Sid("AAAAAAAAAAA".into()))
            .expect_err("two sessions start so")
            .contains("matches 2 sessions"));
        assert!(ids(Selector::Sid("AAAAAAA".into()))
            .expect_err("too short")
            .contains("at least 8"));
        assert!(ids(Selector::User("  ".into())).is_err());
    }
}
