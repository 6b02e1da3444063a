//! The groups each user last signed in with (by email, lowercased), so the
//! SSO page can explain a user's grant from their email alone. In memory,
//! per replica, bounded; kept across reloads.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// How many users are remembered (the oldest is forgotten first).
pub const CAPACITY: usize = 2000;

/// email → groups, and the emails oldest first.
type Table = (HashMap<String, Vec<String>>, VecDeque<String>);

#[derive(Debug, Default)]
pub struct Seen {
    inner: Mutex<Table>,
}

impl Seen {
    pub fn record(&self, email: Option<&str>, groups: &[String]) {
        let Some(email) = email
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty())
        else {
            return;
        };
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *g;
        if map.insert(email.clone(), groups.to_vec()).is_none() {
            order.push_back(email);
            while order.len() > CAPACITY {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }

    pub fn groups_of(&self, email: &str) -> Option<Vec<String>> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0.get(&email.trim().to_lowercase()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_groups_are_kept_and_the_oldest_user_forgotten() {
        let s = Seen::default();
        s.record(Some("A@Example.com"), &["x".into()]);
        s.record(Some("a@example.com "), &["y".into()]);
        s.record(None, &["z".into()]);
        assert_eq!(s.groups_of("a@EXAMPLE.com"), Some(vec!["y".to_string()]));
        for i in 0..CAPACITY {
            s.record(Some(&format!("u{i}@x")), &[]);
        }
        assert_eq!(s.groups_of("a@example.com"), None);
        assert!(s.groups_of(&format!("u{}@x", CAPACITY - 1)).is_some());
    }
}
