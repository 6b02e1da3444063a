//! A dotenv (`--env-file`) reader that remembers where each value came from.
//!
//! It follows what Docker Compose and python-dotenv accept, because operators
//! hand us the env file they already give Label Studio: `KEY=value` lines,
//! `#` comment lines, an optional `export ` prefix, single-quoted values taken
//! literally, double-quoted values with `\n` `\"` `\\` escapes, and unquoted
//! values cut at an inline ` #comment` and trimmed (the Label Studio example
//! file has trailing spaces after DNs). It owns no policy about which keys
//! matter: that is `lse_env.rs` and `mod.rs`.

use std::fmt;

/// One variable and where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

/// Where a variable came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The process environment.
    Environment,
    /// A dotenv file and the 1-based line of the assignment.
    File { path: String, line: usize },
}

impl Origin {
    /// How error messages name variable `name` set here:
    /// `environment variable X` or `variable X at lse.env:3`.
    pub fn describe(&self, name: &str) -> String {
        match self {
            Origin::Environment => format!("environment variable {name}"),
            file => format!("variable {name} at {file}"),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Environment => f.write_str("process environment"),
            Origin::File { path, line } => write!(f, "{path}:{line}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct Error {
    pub path: String,
    pub line: usize,
    pub message: String,
}

/// Parses dotenv text. `path` only labels origins and errors.
pub fn parse(text: &str, path: &str) -> Result<Vec<Entry>, Error> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((idx, raw_line)) = lines.next() {
        let line_no = idx + 1;
        let err = |message: String| Error {
            path: path.to_string(),
            line: line_no,
            message,
        };
        // Only the start: the end of a line may be inside a quoted value
        // that goes on below (unquoted values are trimmed on their own).
        let line = raw_line.trim_start_matches('\u{feff}').trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let Some((key, rest)) = line.split_once('=') else {
            return Err(err(format!(
                "expected KEY=value, found {:?}",
                truncate(line)
            )));
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(err(format!("invalid variable name {:?}", truncate(key))));
        }
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(q @ ('\'' | '"')) => {
                // A quoted value may span lines until its closing quote.
                let mut buf = rest[1..].to_string();
                loop {
                    if let Some(end) = closing_quote(&buf, q) {
                        let tail = buf[end + 1..].trim();
                        if !tail.is_empty() && !tail.starts_with('#') {
                            return Err(err(format!(
                                "unexpected text after the closing quote of {key}"
                            )));
                        }
                        buf.truncate(end);
                        break;
                    }
                    match lines.next() {
                        Some((_, next)) => {
                            buf.push('\n');
                            buf.push_str(next);
                        }
                        None => return Err(err(format!("unterminated quoted value for {key}"))),
                    }
                }
                if q == '"' {
                    unescape_double(&buf)
                } else {
                    buf
                }
            }
            _ => {
                let cut = inline_comment(rest).unwrap_or(rest.len());
                rest[..cut].trim().to_string()
            }
        };
        out.push(Entry {
            key: key.to_string(),
            value,
            origin: Origin::File {
                path: path.to_string(),
                line: line_no,
            },
        });
    }
    Ok(out)
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Index of the unescaped closing quote.
fn closing_quote(s: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if q == '"' && !escaped && c == '\\' {
            escaped = true;
            continue;
        }
        if c == q && !escaped {
            return Some(i);
        }
        escaped = false;
    }
    None
}

/// An unquoted value ends at whitespace followed by `#`.
fn inline_comment(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (1..b.len()).find(|&i| b[i] == b'#' && b[i - 1].is_ascii_whitespace())
}

fn unescape_double(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> (String, String) {
        let e = parse(text, "t.env").expect("parses");
        assert_eq!(e.len(), 1, "{text:?}");
        (e[0].key.clone(), e[0].value.clone())
    }

    #[test]
    fn values_follow_compose_and_python_dotenv() {
        let cases: &[(&str, &str, &str)] = &[
            ("A=b", "A", "b"),
            ("A = b ", "A", "b"),
            ("export A=b", "A", "b"),
            ("A=cn=x,dc=y ", "A", "cn=x,dc=y"),
            ("A=", "A", ""),
            ("A=b # comment", "A", "b"),
            ("A=b#notacomment", "A", "b#notacomment"),
            ("A='{\"k\":\"v\"}'", "A", "{\"k\":\"v\"}"),
            ("A=\"x;y=z\"", "A", "x;y=z"),
            ("A=\"a\\\"b\"", "A", "a\"b"),
            ("A=\"a\\nb\"", "A", "a\nb"),
            ("A='a\\nb'", "A", "a\\nb"),
            ("A='it''", "A", "it"),
            ("A=\"v\" # c", "A", "v"),
            ("A=a=b=c", "A", "a=b=c"),
        ];
        for (text, k, v) in cases {
            if *text == "A='it''" {
                assert!(parse(text, "t.env").is_err());
                continue;
            }
            assert_eq!(one(text), (k.to_string(), v.to_string()), "{text:?}");
        }
    }

    #[test]
    fn comments_blank_lines_and_line_numbers() {
        let e = parse("# c\n\n   \nA=1\n  # x   \nB=2\n", "f.env").expect("parses");
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[1].origin,
            Origin::File {
                path: "f.env".into(),
                line: 6
            }
        );
    }

    #[test]
    fn multi_line_quoted_value() {
        let e = parse("A=\"x\ny\"\nB=1", "f.env").expect("parses");
        assert_eq!(e[0].value, "x\ny");
        assert_eq!(
            e[1].origin,
            Origin::File {
                path: "f.env".into(),
                line: 3
            }
        );
    }

    /// Found by the `dotenv` fuzz target: the first line of a multi-line
    /// quoted value lost its trailing whitespace.
    #[test]
    fn multi_line_quoted_value_keeps_trailing_space_before_a_line_break() {
        assert_eq!(one("A='\t\n\n'\n").1, "\t\n\n");
        assert_eq!(one("A=\"x \ny\"").1, "x \ny");
        assert_eq!(one("A='x\t\n y '  # c").1, "x\t\n y ");
        assert_eq!(one("  A=b  ").1, "b");
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = parse("A=1\nnot an assignment\n", "f.env").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().starts_with("f.env:2: "));
        assert!(parse("A=\"open", "f.env").is_err());
        assert!(parse("B C=1", "f.env").is_err());
    }
}
