//! LDAP filter escaping (`ldap3::ldap_escape`, RFC 4515 §3) as the ldap
//! module uses it: the escaped value has no filter metacharacter left
//! unescaped, unescaping gives the input back, and the membership filters
//! built from it keep their parentheses balanced, so a value can never
//! close the assertion it sits in.
#![no_main]

use authgate::fuzzing::{ldap_in_chain_filter, ldap_member_filter};
use libfuzzer_sys::fuzz_target;

const GROUP_FILTER: &str = "(objectClass=groupOfNames)";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let values: Vec<&str> = text.split('\u{1}').collect();
    let filter = ldap_member_filter(GROUP_FILTER, "member", &values);
    let inner = filter
        .strip_prefix("(&(objectClass=groupOfNames)")
        .and_then(|f| f.strip_suffix(')'))
        .expect("the group filter is kept as given");
    let terms: Vec<&str> = if values.len() == 1 {
        vec![inner]
    } else {
        let list = inner
            .strip_prefix("(|")
            .and_then(|f| f.strip_suffix(')'))
            .expect("an OR of the terms");
        split_terms(list)
    };
    assert_eq!(terms.len(), values.len(), "{filter:?}");
    for (term, value) in terms.iter().zip(&values) {
        let v = term
            .strip_prefix("(member=")
            .and_then(|t| t.strip_suffix(')'))
            .unwrap_or_else(|| panic!("term {term:?} of {filter:?}"));
        assert_eq!(unescape(v).as_deref(), Some(value.as_bytes()), "{v:?}");
    }
    let chain = ldap_in_chain_filter(GROUP_FILTER, text);
    let v = chain
        .strip_prefix("(&(objectClass=groupOfNames)(member:1.2.840.113556.1.4.1941:=")
        .and_then(|t| t.strip_suffix("))"))
        .expect("in-chain shape");
    assert_eq!(unescape(v).as_deref(), Some(text.as_bytes()));
});

/// Splits `(a)(b)(c)` at top-level parentheses; panics on an unbalanced or
/// unescaped metacharacter in a value.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => {
                depth += 1;
                assert_eq!(depth, 1, "nested parenthesis in {s:?}");
                start = i;
            }
            ')' => {
                assert_eq!(depth, 1, "unbalanced parenthesis in {s:?}");
                depth = 0;
                out.push(&s[start..=i]);
            }
            _ => assert_eq!(depth, 1, "text between terms in {s:?}"),
        }
    }
    assert_eq!(depth, 0);
    out
}

/// RFC 4515 §3 value decoding; None when a metacharacter is unescaped.
fn unescape(v: &str) -> Option<Vec<u8>> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let hex = b.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'(' | b')' | b'*' | 0 => return None,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}
