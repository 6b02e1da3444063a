//! RFC 4514 distinguished names: parsing, normalization for equality, and
//! escaping of attribute values.
//!
//! Owns: turning a DN string (from configuration or as a directory returns
//! it) into a structured [`Dn`] and a canonical string ([`normalize`]) that
//! is equal for two spellings of the same name under caseIgnoreMatch, the
//! matching rule of `cn`, `ou`, `o`, `dc` in OpenLDAP and of every naming
//! attribute in Active Directory; and escaping user input that is placed
//! into a DN ([`escape_value`], RFC 4514 §2.4).
//!
//! Must not: do I/O, log, or know about LDAP connections, groups or roles.
//!
//! Accepted beyond strict RFC 4514, because directories and operators write
//! it: spaces around `,` `=` `+` and around the whole string (RFC 2253 §4),
//! `;` as an RDN separator and `"quoted"` values (RFC 1779), an `oid.`
//! prefix on numeric attribute types, and `\` before any ASCII punctuation.
//! Not done: the full string preparation of RFC 4518 (Unicode
//! normalization, collapsing inner spaces) and decoding `#hex` BER values;
//! a `#hex` value only equals the same `#hex` value.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a distinguished name. Positions are byte offsets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnError {
    #[error("unterminated escape at byte {0}")]
    UnterminatedEscape(usize),
    #[error("bad hex escape at byte {0} (expected two hex digits)")]
    BadHex(usize),
    #[error("invalid escape of {ch:?} at byte {pos}")]
    InvalidEscape { pos: usize, ch: char },
    #[error("missing '=' after attribute type {attr:?} at byte {pos}")]
    MissingEquals { pos: usize, attr: String },
    #[error("empty attribute type at byte {0}")]
    EmptyAttributeType(usize),
    #[error("invalid attribute type {attr:?} at byte {pos}")]
    InvalidAttributeType { pos: usize, attr: String },
    #[error("empty relative distinguished name at byte {0}")]
    EmptyRdn(usize),
    #[error("unterminated quoted value starting at byte {0}")]
    UnterminatedQuote(usize),
    #[error("unexpected {ch:?} at byte {pos}")]
    Unexpected { pos: usize, ch: char },
    #[error("invalid #hex value at byte {0}")]
    BadBer(usize),
    #[error("value at byte {0} is not valid UTF-8 once its escapes are decoded")]
    NotUtf8(usize),
}

/// A parsed distinguished name: its RDNs in the order written (most
/// specific first). Deliberately not `PartialEq`: compare
/// [`Dn::normalized`] so that equality is always the caseIgnoreMatch one.
#[derive(Debug, Clone)]
pub struct Dn(Vec<Rdn>);

/// A relative distinguished name: one or more attribute value assertions
/// (`cn=a+uid=b`), in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rdn(Vec<Ava>);

/// One `type=value` pair. The type is canonical (lowercase short name when
/// known, see [`Ava::attr`]); the value keeps its case, escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ava {
    attr: String,
    value: Value,
}

/// An attribute value: a string with escapes decoded, or a `#hex` BER
/// encoding kept as lowercase hex digits (without the `#`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Ber(String),
}

impl Dn {
    /// The RDNs, most specific first. Empty for the empty DN `""`.
    pub fn rdns(&self) -> &[Rdn] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Canonical string for equality: lowercase attribute types and values,
    /// no insignificant spaces, minimal RFC 4514 escaping, the AVAs of a
    /// multi-valued RDN sorted.
    pub fn normalized(&self) -> String {
        let rdns: Vec<String> = self
            .0
            .iter()
            .map(|rdn| {
                let mut avas: Vec<String> = rdn.0.iter().map(Ava::normalized).collect();
                avas.sort();
                avas.join("+")
            })
            .collect();
        rdns.join(",")
    }
}

/// RFC 4514 string form, value case kept.
impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            for (j, ava) in rdn.0.iter().enumerate() {
                if j > 0 {
                    f.write_str("+")?;
                }
                match &ava.value {
                    Value::Text(t) => write!(f, "{}={}", ava.attr, escape_value(t))?,
                    Value::Ber(h) => write!(f, "{}=#{}", ava.attr, h)?,
                }
            }
        }
        Ok(())
    }
}

impl FromStr for Dn {
    type Err = DnError;

    fn from_str(s: &str) -> Result<Dn, DnError> {
        parse(s)
    }
}

impl Rdn {
    pub fn avas(&self) -> &[Ava] {
        &self.0
    }
}

impl Ava {
    /// The attribute type, lowercased; `oid.` prefix dropped; the OIDs and
    /// long names of RFC 4514 §3's table (CN, L, ST, O, OU, C, STREET, DC,
    /// UID) mapped to their short names, so `2.5.4.3=x` equals `cn=x`.
    pub fn attr(&self) -> &str {
        &self.attr
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    fn normalized(&self) -> String {
        match &self.value {
            Value::Text(t) => format!("{}={}", self.attr, escape_value(&t.to_lowercase())),
            Value::Ber(h) => format!("{}=#{}", self.attr, h),
        }
    }
}

impl Value {
    /// The decoded string, or `None` for a `#hex` value.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            Value::Ber(_) => None,
        }
    }
}

/// Parse a distinguished name. The empty (or all-space) string is the
/// empty DN, with no RDNs.
pub fn parse(s: &str) -> Result<Dn, DnError> {
    let mut p = Parser { s, pos: 0 };
    p.skip_ws();
    let mut rdns = Vec::new();
    if p.peek().is_none() {
        return Ok(Dn(rdns));
    }
    loop {
        rdns.push(p.rdn()?);
        match p.peek() {
            None => return Ok(Dn(rdns)),
            Some(b',' | b';') => p.pos += 1,
            Some(_) => return Err(p.unexpected(p.pos)),
        }
    }
}

/// The canonical string of a DN (see [`Dn::normalized`]): two DNs name the
/// same entry exactly when their normalized strings are equal.
pub fn normalize(s: &str) -> Result<String, DnError> {
    parse(s).map(|dn| dn.normalized())
}

/// Escape an attribute value for use in a DN (RFC 4514 §2.4): `,` `+` `"`
/// `\` `<` `>` `;` `=` always, `#` and space when leading, space when
/// trailing, NUL as `\00`; leading or trailing tab, CR and LF as hex pairs,
/// since [`parse`] treats them as insignificant space there.
pub fn escape_value(v: &str) -> String {
    let last = v.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(v.len() + 4);
    for (i, c) in v.chars().enumerate() {
        let edge = i == 0 || i == last;
        match c {
            '\0' => out.push_str("\\00"),
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if edge => out.push_str("\\ "),
            '\t' if edge => out.push_str("\\09"),
            '\n' if edge => out.push_str("\\0a"),
            '\r' if edge => out.push_str("\\0d"),
            c => out.push(c),
        }
    }
    out
}

/// Space that is insignificant around separators and the whole string.
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// Byte-level parser. Every delimiter is ASCII, so bytes of multi-byte
/// UTF-8 characters are copied through untouched and every position where
/// the parser stops is a character boundary.
struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn peek_at(&self, pos: usize) -> Option<u8> {
        self.s.as_bytes().get(pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    fn char_at(&self, pos: usize) -> char {
        self.s
            .get(pos..)
            .and_then(|rest| rest.chars().next())
            .unwrap_or('\u{fffd}')
    }

    fn unexpected(&self, pos: usize) -> DnError {
        DnError::Unexpected {
            pos,
            ch: self.char_at(pos),
        }
    }

    /// `ava *( "+" ava )`; stops at `,`, `;` or the end.
    fn rdn(&mut self) -> Result<Rdn, DnError> {
        let mut avas = vec![self.ava()?];
        while self.peek() == Some(b'+') {
            self.pos += 1;
            avas.push(self.ava()?);
        }
        Ok(Rdn(avas))
    }

    /// `type = value`, with optional spaces around; leaves the position on
    /// a separator or the end.
    fn ava(&mut self) -> Result<Ava, DnError> {
        self.skip_ws();
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == b'=' || is_ws(b) || matches!(b, b',' | b';' | b'+') {
                break;
            }
            self.pos += 1;
        }
        let raw = self.s.get(start..self.pos).unwrap_or_default();
        if raw.is_empty() {
            return Err(match self.peek() {
                Some(b'=') => DnError::EmptyAttributeType(start),
                _ => DnError::EmptyRdn(start),
            });
        }
        self.skip_ws();
        if self.peek() != Some(b'=') {
            return Err(DnError::MissingEquals {
                pos: self.pos,
                attr: raw.to_owned(),
            });
        }
        let attr = canonical_attr(raw).ok_or_else(|| DnError::InvalidAttributeType {
            pos: start,
            attr: raw.to_owned(),
        })?;
        self.pos += 1;
        self.skip_ws();
        let value = match self.peek() {
            Some(b'#') => self.ber()?,
            Some(b'"') => self.quoted()?,
            _ => self.string()?,
        };
        self.skip_ws();
        match self.peek() {
            None | Some(b',' | b';' | b'+') => Ok(Ava { attr, value }),
            Some(_) => Err(self.unexpected(self.pos)),
        }
    }

    /// An unquoted value. Unescaped trailing space is dropped (it is the
    /// space before a separator); escaped space is kept wherever it is.
    fn string(&mut self) -> Result<Value, DnError> {
        let start = self.pos;
        let mut out = Vec::new();
        let mut keep = 0;
        while let Some(b) = self.peek() {
            match b {
                b',' | b';' | b'+' => break,
                b'\\' => {
                    self.escape(&mut out)?;
                    keep = out.len();
                }
                b'"' | 0 => return Err(self.unexpected(self.pos)),
                b if is_ws(b) => {
                    out.push(b);
                    self.pos += 1;
                }
                b => {
                    out.push(b);
                    self.pos += 1;
                    keep = out.len();
                }
            }
        }
        out.truncate(keep);
        String::from_utf8(out)
            .map(Value::Text)
            .map_err(|_| DnError::NotUtf8(start))
    }

    /// A `"quoted"` value (RFC 1779 / RFC 2253 legacy): everything up to
    /// the closing quote is significant, escapes still decoded.
    fn quoted(&mut self) -> Result<Value, DnError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(DnError::UnterminatedQuote(start)),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => self.escape(&mut out)?,
                Some(0) => return Err(self.unexpected(self.pos)),
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
        String::from_utf8(out)
            .map(Value::Text)
            .map_err(|_| DnError::NotUtf8(start))
    }

    /// `#` followed by an even, non-zero number of hex digits.
    fn ber(&mut self) -> Result<Value, DnError> {
        let start = self.pos;
        self.pos += 1;
        let digits = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let hex = self.s.get(digits..self.pos).unwrap_or_default();
        let ends = match self.peek() {
            None | Some(b',' | b';' | b'+') => true,
            Some(b) => is_ws(b),
        };
        if hex.is_empty() || hex.len() % 2 != 0 || !ends {
            return Err(DnError::BadBer(start));
        }
        Ok(Value::Ber(hex.to_ascii_lowercase()))
    }

    /// Decode one escape at the current `\` into `out`: a hex pair is one
    /// byte (several form a UTF-8 character), any ASCII punctuation or
    /// space stands for itself (RFC 4514 `special` plus harmless extras).
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), DnError> {
        let at = self.pos;
        match (self.peek_at(at + 1), self.peek_at(at + 2)) {
            (None, _) => Err(DnError::UnterminatedEscape(at)),
            (Some(hi), lo) if hi.is_ascii_hexdigit() => match lo {
                Some(lo) if lo.is_ascii_hexdigit() => {
                    out.push((hex_val(hi) << 4) | hex_val(lo));
                    self.pos = at + 3;
                    Ok(())
                }
                _ => Err(DnError::BadHex(at)),
            },
            (Some(b), _) if b.is_ascii_punctuation() || b == b' ' => {
                out.push(b);
                self.pos = at + 2;
                Ok(())
            }
            (Some(_), _) => Err(DnError::InvalidEscape {
                pos: at,
                ch: self.char_at(at + 1),
            }),
        }
    }
}

/// Canonical attribute type, or `None` when `raw` is neither a `descr`
/// (ALPHA *(ALPHA / DIGIT / "-")) nor a `numericoid` (RFC 4512 §1.4).
fn canonical_attr(raw: &str) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    let bare = match lower.strip_prefix("oid.") {
        Some(rest) if is_numericoid(rest) => rest,
        _ => lower.as_str(),
    };
    if !is_numericoid(bare) && !is_descr(bare) {
        return None;
    }
    let short = match bare {
        "2.5.4.3" | "commonname" => "cn",
        "2.5.4.6" | "countryname" => "c",
        "2.5.4.7" | "localityname" => "l",
        "2.5.4.8" | "stateorprovincename" => "st",
        "2.5.4.9" | "streetaddress" => "street",
        "2.5.4.10" | "organizationname" => "o",
        "2.5.4.11" | "organizationalunitname" => "ou",
        "0.9.2342.19200300.100.1.25" | "domaincomponent" => "dc",
        "0.9.2342.19200300.100.1.1" | "userid" => "uid",
        other => other,
    };
    Some(short.to_owned())
}

fn is_descr(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `number 1*( "." number )`, number = "0" / non-zero digit then digits.
fn is_numericoid(s: &str) -> bool {
    let mut parts = 0;
    for part in s.split('.') {
        let ok = !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'));
        if !ok {
            return false;
        }
        parts += 1;
    }
    parts >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The role DNs of the seed's `lse-example.env`, byte for byte: three of
    /// them end with a space there.
    const LSE_ROLE_DNS: [&str; 7] = [
        "cn=admins,ou=users,o=123abc,dc=example,dc=com ",
        "cn=managers,ou=users,o=123abc,dc=example,dc=com ",
        "cn=reviewers,ou=users,o=123abc,dc=example,dc=com",
        "cn=annotators,ou=users,o=123abc,dc=example,dc=com",
        "cn=guests,ou=users,o=123abc,dc=example,dc=com",
        "cn=not,ou=users,o=123abc,dc=example,dc=com ",
        "cn=deactivated,ou=users,o=123abc,dc=example,dc=com",
    ];

    #[test]
    fn spellings_of_the_same_dn_normalize_equal() {
        // (spelling a, spelling b): must normalize to the same string.
        let same: &[(&str, &str)] = &[
            // spacing
            ("cn=a,dc=example,dc=com", "cn = a , dc=example ,  dc = com"),
            ("cn=a,dc=com", "  cn=a,dc=com  "),
            ("cn=a,dc=com", "\tcn=a,dc=com\r\n"),
            ("cn=a+uid=b,dc=com", "cn=a + uid=b,dc=com"),
            // case of types and values
            (
                "cn=Admins,OU=Users,dc=Example",
                "CN=admins,ou=USERS,DC=example",
            ),
            ("cn=Émile,dc=com", "cn=émile,dc=com"),
            // escapes: \, and \2C and a quoted value are one comma
            ("cn=Smith\\, John,dc=com", "cn=Smith\\2C John,dc=com"),
            ("cn=Smith\\, John,dc=com", "cn=smith\\2c john,dc=com"),
            ("cn=Smith\\, John,dc=com", "cn=\"Smith, John\",dc=com"),
            ("cn=a\\+b,dc=com", "cn=a\\2Bb,dc=com"),
            ("cn=\\61dmins,dc=com", "cn=admins,dc=com"),
            ("cn=q\\\"uote,dc=com", "cn=q\\22uote,dc=com"),
            ("cn=back\\\\slash,dc=com", "cn=back\\5cslash,dc=com"),
            // UTF-8 written as hex pairs
            ("cn=Lu\\C4\\8Di\\C4\\87,dc=com", "cn=Lučić,dc=com"),
            ("cn=\\E6\\97\\A5\\E6\\9C\\AC,dc=com", "cn=日本,dc=com"),
            ("cn=\\e2\\82\\ac,dc=com", "cn=€,dc=com"),
            // raw `=` and a `#` that is not leading need no escape
            ("cn=a\\=b,dc=com", "cn=a=b,dc=com"),
            ("cn=a\\#1,dc=com", "cn=a#1,dc=com"),
            // leading escaped `#` or space
            ("cn=\\#1,dc=com", "cn=\\231,dc=com"),
            ("cn=\\ a,dc=com", "cn=\\20a,dc=com"),
            // multi-valued RDN order
            ("cn=a+uid=b,dc=com", "uid=b+cn=a,dc=com"),
            ("ou=x+cn=a+uid=b,dc=com", "UID=b+ou=X+cn=A,dc=com"),
            // `;` as RDN separator (RFC 1779)
            ("cn=a,ou=b,dc=com", "cn=a;ou=b; dc=com"),
            // OID and long attribute names
            (
                "cn=a,ou=b,o=c,dc=d",
                "2.5.4.3=a,2.5.4.11=b,2.5.4.10=c,0.9.2342.19200300.100.1.25=d",
            ),
            ("cn=a,dc=com", "OID.2.5.4.3=a,dc=com"),
            (
                "cn=a,uid=b,dc=com",
                "commonName=a,userid=b,domainComponent=com",
            ),
            // BER values: hex case only
            ("cn=#04024869,dc=com", "cn=#04024869 ,dc=com"),
            ("cn=#04024869,dc=com", "CN=#04024869,dc=com"),
            (
                "1.3.6.1.4.1.1466.0=#04024869,dc=com",
                "1.3.6.1.4.1.1466.0=#04024869,DC=com",
            ),
            // empty value
            ("cn=,dc=com", "cn= ,dc=com"),
            // Active Directory style
            (
                "CN=Domain Admins,CN=Users,DC=corp,DC=example,DC=com",
                "cn=domain admins,cn=users,dc=corp,dc=example,dc=com",
            ),
        ];
        for (a, b) in same {
            let na = normalize(a).unwrap_or_else(|e| panic!("{a:?}: {e}"));
            let nb = normalize(b).unwrap_or_else(|e| panic!("{b:?}: {e}"));
            assert_eq!(na, nb, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn different_dns_normalize_different() {
        let different: &[(&str, &str)] = &[
            ("cn=a,dc=com", "cn=b,dc=com"),
            ("cn=a,dc=com", "ou=a,dc=com"),
            ("cn=a,ou=b,dc=com", "ou=b,cn=a,dc=com"),
            // escaped comma is part of the value, not a separator
            ("cn=a\\,ou=b,dc=com", "cn=a,ou=b,dc=com"),
            // escaped plus is part of the value, not a multi-valued RDN
            ("cn=a\\+uid=b,dc=com", "cn=a+uid=b,dc=com"),
            // an escaped trailing space is significant
            ("cn=a\\ ,dc=com", "cn=a,dc=com"),
            ("cn=a\\20,dc=com", "cn=a ,dc=com"),
            // inner spaces are kept (no RFC 4518 space folding)
            ("cn=a  b,dc=com", "cn=a b,dc=com"),
            // a BER value is not its text
            ("cn=#04024869,dc=com", "cn=\\#04024869,dc=com"),
            ("cn=#04024869,dc=com", "cn=Hi,dc=com"),
            ("cn=a,dc=com", "cn=a,dc=com,dc=org"),
        ];
        for (a, b) in different {
            let na = normalize(a).unwrap_or_else(|e| panic!("{a:?}: {e}"));
            let nb = normalize(b).unwrap_or_else(|e| panic!("{b:?}: {e}"));
            assert_ne!(na, nb, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn normalized_form_is_canonical() {
        let cases: &[(&str, &str)] = &[
            (
                "CN = Admins , OU=Users , DC=Example,DC=com ",
                "cn=admins,ou=users,dc=example,dc=com",
            ),
            ("uid=B+cn=A,dc=com", "cn=a+uid=b,dc=com"),
            ("cn=Smith\\2C John", "cn=smith\\, john"),
            ("cn=\"a;b\"", "cn=a\\;b"),
            ("cn=\\ a\\ ", "cn=\\ a\\ "),
            ("cn=#0A0B", "cn=#0a0b"),
            ("cn=a\\0Ab", "cn=a\nb"),
            ("OID.2.5.4.3=x", "cn=x"),
            ("1.2.3=X", "1.2.3=x"),
            ("", ""),
            ("   ", ""),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), Ok(*want), "{input:?}");
        }
    }

    #[test]
    fn malformed_dns_are_refused() {
        let cases: &[(&str, DnError)] = &[
            ("cn=a\\", DnError::UnterminatedEscape(4)),
            ("cn=a\\2", DnError::BadHex(4)),
            ("cn=a\\2G,dc=com", DnError::BadHex(4)),
            ("cn=a\\q", DnError::InvalidEscape { pos: 4, ch: 'q' }),
            (
                "cn",
                DnError::MissingEquals {
                    pos: 2,
                    attr: "cn".into(),
                },
            ),
            (
                "ls-admins",
                DnError::MissingEquals {
                    pos: 9,
                    attr: "ls-admins".into(),
                },
            ),
            (
                "Team A",
                DnError::MissingEquals {
                    pos: 5,
                    attr: "Team".into(),
                },
            ),
            (
                "cn=a,dc",
                DnError::MissingEquals {
                    pos: 7,
                    attr: "dc".into(),
                },
            ),
            ("=a,dc=com", DnError::EmptyAttributeType(0)),
            ("cn=a, =b", DnError::EmptyAttributeType(6)),
            ("cn=a,,dc=com", DnError::EmptyRdn(5)),
            ("cn=a,", DnError::EmptyRdn(5)),
            ("cn=a+", DnError::EmptyRdn(5)),
            (",cn=a", DnError::EmptyRdn(0)),
            (
                "c_n=a",
                DnError::InvalidAttributeType {
                    pos: 0,
                    attr: "c_n".into(),
                },
            ),
            (
                "1cn=a",
                DnError::InvalidAttributeType {
                    pos: 0,
                    attr: "1cn".into(),
                },
            ),
            (
                "123=a",
                DnError::InvalidAttributeType {
                    pos: 0,
                    attr: "123".into(),
                },
            ),
            (
                "2.5.04.3=a",
                DnError::InvalidAttributeType {
                    pos: 0,
                    attr: "2.5.04.3".into(),
                },
            ),
            ("cn=\"a", DnError::UnterminatedQuote(3)),
            ("cn=\"a\"b", DnError::Unexpected { pos: 6, ch: 'b' }),
            ("cn=a\"b", DnError::Unexpected { pos: 4, ch: '"' }),
            ("cn=a\0b", DnError::Unexpected { pos: 4, ch: '\0' }),
            ("cn=#", DnError::BadBer(3)),
            ("cn=#123", DnError::BadBer(3)),
            ("cn=#12zz", DnError::BadBer(3)),
            ("cn=\\FF", DnError::NotUtf8(3)),
            ("cn=\\C4", DnError::NotUtf8(3)),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse(input).map(|d| d.normalized()).as_ref(),
                Err(want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn error_messages_name_the_problem() {
        let msg = |s: &str| parse(s).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(msg("cn=a\\"), "unterminated escape at byte 4");
        assert_eq!(msg("cn=a\\zz"), "invalid escape of 'z' at byte 4");
        assert_eq!(
            msg("groupname"),
            "missing '=' after attribute type \"groupname\" at byte 9"
        );
        assert_eq!(msg("=x"), "empty attribute type at byte 0");
    }

    #[test]
    fn lse_example_dns_match_what_directories_return() {
        // (seed value with its trailing space, as directories return it)
        let returned = [
            "CN=admins,OU=users,O=123abc,DC=example,DC=com",
            "cn=managers, ou=users, o=123abc, dc=example, dc=com",
            "cn=Reviewers,ou=Users,o=123abc,dc=Example,dc=COM",
            "cn=annotators,ou=users,o=123abc,dc=example,dc=com",
            "CN=guests,OU=Users,O=123ABC,DC=EXAMPLE,DC=COM",
            "cn=not,ou=users,o=123abc,dc=example,dc=com",
            "2.5.4.3=deactivated,ou=users,o=123abc,dc=example,dc=com",
        ];
        for (seed, dir) in LSE_ROLE_DNS.iter().zip(returned) {
            assert_eq!(normalize(seed), normalize(dir), "{seed:?} vs {dir:?}");
        }
        // and the trailing space is not part of the last value
        let admins = parse(LSE_ROLE_DNS[0]).expect("seed DN parses");
        let last = admins.rdns().last().and_then(|r| r.avas().first());
        assert_eq!(last.and_then(|a| a.value().as_text()), Some("com"));
    }

    #[test]
    fn parse_exposes_structure() {
        let dn = parse(" CN=Smith\\, John + UID=js ; OU=People,DC=example ").expect("parses");
        assert_eq!(dn.len(), 3);
        let first = &dn.rdns()[0];
        let pairs: Vec<(&str, Option<&str>)> = first
            .avas()
            .iter()
            .map(|a| (a.attr(), a.value().as_text()))
            .collect();
        assert_eq!(pairs, [("cn", Some("Smith, John")), ("uid", Some("js"))]);
        assert_eq!(
            dn.to_string(),
            "cn=Smith\\, John+uid=js,ou=People,dc=example"
        );
        assert!(parse("").expect("empty DN").is_empty());
        let ber = parse("cn=#0A1b").expect("parses");
        assert_eq!(ber.rdns()[0].avas()[0].value(), &Value::Ber("0a1b".into()));
        assert!("cn=a".parse::<Dn>().is_ok());
    }

    #[test]
    fn escape_value_escapes_what_rfc_4514_requires() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("Smith, John", "Smith\\, John"),
            ("a+b", "a\\+b"),
            ("say \"hi\"", "say \\\"hi\\\""),
            ("back\\slash", "back\\\\slash"),
            ("<tag>", "\\<tag\\>"),
            ("a;b", "a\\;b"),
            ("a=b", "a\\=b"),
            ("#1", "\\#1"),
            ("a#1", "a#1"),
            (" lead", "\\ lead"),
            ("trail ", "trail\\ "),
            ("in side", "in side"),
            (" ", "\\ "),
            ("  ", "\\ \\ "),
            ("nul\0", "nul\\00"),
            ("\ttab", "\\09tab"),
            ("line\n", "line\\0a"),
            ("日本", "日本"),
            ("", ""),
        ];
        for (value, want) in cases {
            assert_eq!(escape_value(value), *want, "{value:?}");
        }
    }

    #[test]
    fn escaped_values_round_trip() {
        let tricky = [
            "",
            " ",
            "   ",
            "  a  ",
            "#",
            "#hash",
            "a#",
            "Smith, John",
            "a+b=c;d",
            "\\",
            "\\\\ ",
            "\"quoted\"",
            "<>",
            "nul\0inside",
            "Émile Zola",
            "日本語 グループ",
            "\ttab\t",
            "\r\nlines\n",
            "a\\2C",
            "trailing\\",
            "=",
            "x ",
        ];
        for value in tricky {
            let dn = format!("cn={},dc=example", escape_value(value));
            let parsed = parse(&dn).unwrap_or_else(|e| panic!("{dn:?}: {e}"));
            let got = parsed.rdns()[0].avas()[0].value().as_text();
            assert_eq!(got, Some(value), "{dn:?}");
            // and through the normalized form too (it escapes the same way)
            let again = normalize(&parsed.normalized()).expect("normalized form parses");
            assert_eq!(again, parsed.normalized(), "{dn:?}");
        }
    }
}
