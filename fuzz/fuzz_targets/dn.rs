//! `mapping::dn`: parse and normalize never panic; normalization is
//! idempotent and agrees with parse; escape_value round-trips
//! (parse(escape_value(x)) gives x back), alone and inside a longer DN.
#![no_main]

use authgate::mapping::dn::{escape_value, normalize, parse, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(dn) = parse(text) {
        let n = dn.normalized();
        assert_eq!(normalize(text).as_ref(), Ok(&n));
        // The canonical string is itself a DN with the same canonical form.
        assert_eq!(normalize(&n).as_ref(), Ok(&n), "{text:?}");
        // Display (value case kept) parses back to the same name.
        let shown = dn.to_string();
        assert_eq!(
            normalize(&shown).as_ref(),
            Ok(&n),
            "{text:?} shown as {shown:?}"
        );
    }
    if text.is_empty() {
        return;
    }
    let escaped = escape_value(text);
    let want = Value::Text(text.to_owned());
    for (dn, ava) in [
        (format!("cn={escaped}"), 0),
        (format!(" uid = {escaped} , ou=users,dc=example,dc=com"), 0),
        (format!("cn=a+uid={escaped};o=x"), 1),
    ] {
        let parsed = parse(&dn).unwrap_or_else(|e| panic!("{dn:?}: {e}"));
        let got = parsed
            .rdns()
            .first()
            .and_then(|r| r.avas().get(ava))
            .map(|a| a.value());
        assert_eq!(got, Some(&want), "{dn:?}");
    }
});
