//! `request::path::normalize`: never panics; idempotent; the output is one
//! canonical absolute path with no empty or dot segments and no encoded
//! separator.
#![no_main]

use authgate::request::path::normalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    check(input);
    // Most interesting inputs are paths: also try the input as one.
    check(&format!("/{input}"));
});

fn check(input: &str) {
    let Ok(out) = normalize(input) else {
        return;
    };
    assert_eq!(
        normalize(&out).as_ref(),
        Ok(&out),
        "not idempotent: {input:?}"
    );
    assert!(out.starts_with('/'), "{input:?} -> {out:?}");
    assert!(out.is_ascii(), "{input:?} -> {out:?}");
    for bad in ["//", "/./", "/../"] {
        assert!(!out.contains(bad), "{input:?} -> {out:?}");
    }
    assert!(
        !out.ends_with("/.") && !out.ends_with("/.."),
        "{input:?} -> {out:?}"
    );
    let upper = out.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%00", "\\", "?", "#"] {
        assert!(!upper.contains(bad), "{input:?} -> {out:?}");
    }
    // Every remaining escape is upper-case hex of a byte that is not
    // unreserved (RFC 3986 §6.2.2).
    let b = out.as_bytes();
    for (i, _) in out.match_indices('%') {
        let hex = &b[i + 1..i + 3];
        assert!(
            hex.iter()
                .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c)),
            "{input:?} -> {out:?}"
        );
        let byte = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("zz"), 16)
            .expect("two hex digits");
        assert!(
            !(byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)),
            "unreserved byte left encoded: {input:?} -> {out:?}"
        );
    }
}
