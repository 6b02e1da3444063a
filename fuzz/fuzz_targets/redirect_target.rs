//! `endpoints::redirect::local_target` (`rd`, SAML RelayState): anything it
//! accepts is a local path: one leading `/`, never `//` or `/\`, not even
//! after one more percent-decode or dot-segment removal; a valid header
//! value; returned unchanged.
#![no_main]

use authgate::endpoints::redirect::{local_target, MAX_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rd) = std::str::from_utf8(data) else {
        return;
    };
    check(rd);
    check(&format!("/{rd}"));
});

fn check(rd: &str) {
    let out = local_target(rd);
    if out == "/" {
        return;
    }
    assert_eq!(out, rd, "an accepted target is returned unchanged");
    assert!(out.len() <= MAX_LEN);
    assert!(http::HeaderValue::from_str(out).is_ok(), "{rd:?}");
    let path = &out[..out.find(['?', '#']).unwrap_or(out.len())];
    assert_local(path, rd);
    let decoded = percent_decode(path);
    let decoded = String::from_utf8(decoded).expect("accepted targets decode to UTF-8");
    assert_local(&decoded, rd);
    // What a browser resolves against the origin: dot segments removed.
    assert_local(&remove_dots(path), rd);
    assert_local(&remove_dots(&decoded), rd);
}

fn assert_local(p: &str, rd: &str) {
    assert!(p.starts_with('/'), "{rd:?}: {p:?}");
    assert!(
        !p.starts_with("//") && !p.starts_with("/\\"),
        "{rd:?}: {p:?}"
    );
    assert!(!p.contains('\\'), "{rd:?}: {p:?}");
    assert!(!p.chars().any(|c| c.is_control()), "{rd:?}: {p:?}");
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = &b[i + 1..i + 3];
            if hex.iter().all(u8::is_ascii_hexdigit) {
                let hex = std::str::from_utf8(hex).expect("hex digits are ASCII");
                let v = u8::from_str_radix(hex, 16).expect("two hex digits");
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// RFC 3986 §5.2.4 (without merging `//`, as browsers do).
fn remove_dots(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segs: Vec<&str> = p.split('/').skip(1).collect();
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    if out.is_empty() {
        return "/".into();
    }
    out.iter().map(|s| format!("/{s}")).collect()
}
