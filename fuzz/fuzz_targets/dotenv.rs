//! `config::dotenv::parse`: never panics; every key it returns is a valid
//! name; a value written single- or double-quoted reads back unchanged;
//! its entries then go through the LSE translation without panicking.
#![no_main]

use authgate::config::{dotenv, lse_env};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(entries) = dotenv::parse(text, "fuzz.env") {
        for e in &entries {
            assert!(!e.key.is_empty());
            assert!(e
                .key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'));
        }
        let _ = lse_env::translate(&entries);
    }
    // Round trip of a value through the two quoting styles.
    let value = text;
    if !value.contains('\'') && !value.contains("\r\n") && !value.ends_with('\r') {
        let line = format!("KEY='{value}'\n");
        let got = dotenv::parse(&line, "fuzz.env").expect("single-quoted value parses");
        assert_eq!(got.len(), 1, "{line:?}");
        assert_eq!(got[0].value, value, "{line:?}");
    }
    if !value.contains("\r\n") && !value.ends_with('\r') {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        let line = format!("export KEY=\"{escaped}\"  # comment\n");
        let got = dotenv::parse(&line, "fuzz.env").expect("double-quoted value parses");
        assert_eq!(got.len(), 1, "{line:?}");
        assert_eq!(got[0].value, value, "{line:?}");
    }
});
