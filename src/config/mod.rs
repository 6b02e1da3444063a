//! Configuration: where settings come from, and the one typed `Config`.
//!
//! Sources, lowest to highest precedence: built-in defaults (`raw.rs`), the
//! TOML file (`--config`), the Label Studio Enterprise variables
//! (`lse_env.rs`), and `AUTHGATE_SECTION__KEY` variables. Variables come from
//! the process environment and, below it, an optional dotenv file
//! (`--env-file`). Every error names the key and where its value came from
//! (file and line, or variable), all errors are reported at once, and all of
//! this happens at start: the request path never sees a configuration string.
//! Tests pass the environment in explicitly; nothing here reads
//! `std::env` itself.

pub mod dotenv;
pub mod lse_env;
pub mod raw;
pub mod saml;

pub mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::Format;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

pub use crate::secret::Secret;
pub use validate::Config;

/// Where to read configuration from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The TOML file. `None` means the default path, which may be absent.
    pub config_file: Option<PathBuf>,
    /// TOML given as text instead of a file (tests): (label, text).
    pub config_text: Option<(String, String)>,
    /// The process environment (main passes `std::env::vars()`).
    pub env: Vec<(String, String)>,
    /// A dotenv file whose variables sit below the process environment.
    pub env_file: Option<PathBuf>,
}

pub const DEFAULT_CONFIG_FILE: &str = "config/authgate.toml";
const ENV_PREFIX: &str = "AUTHGATE_";

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key (`server.listen`) or variable name.
    pub key: String,
    /// `config/authgate.toml:12`, `environment variable AUTHGATE_X`, `default`...
    pub source: String,
    pub message: String,
}

impl fmt::Display for Problem {
    /// Always one line: messages from parsers (TOML, JSON, PEM) may carry
    /// line breaks, which would split one problem over several log lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = one_line(&self.message);
        if self.key.is_empty() {
            write!(f, "{}: {message}", self.source)
        } else {
            write!(f, "{} (from {}): {message}", self.key, self.source)
        }
    }
}

fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every problem found; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Errors(pub Vec<Problem>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "configuration error: {p}")?;
        }
        Ok(())
    }
}

impl Errors {
    fn one(key: &str, source: impl Into<String>, message: impl Into<String>) -> Errors {
        Errors(vec![Problem {
            key: key.into(),
            source: source.into(),
            message: message.into(),
        }])
    }
}

/// Tells, for a dotted key, where its effective value came from.
#[derive(Debug, Default, Clone)]
pub struct Origins {
    file_label: String,
    file: Option<toml_edit::ImDocument<String>>,
    /// key → "environment variable X" / "variable X at lse.env:3"
    vars: BTreeMap<String, String>,
    /// Keys of `vars` set by [`Origins::record`].
    recorded: std::collections::BTreeSet<String>,
}

impl Origins {
    /// The most specific known origin of `key` (or of its closest parent).
    /// List items may be written `a.b[0]` or `a.b.0`.
    pub fn of(&self, key: &str) -> String {
        let key = key.replace('[', ".").replace(']', "");
        let mut k = key.as_str();
        loop {
            if let Some(v) = self.vars.get(k) {
                return v.clone();
            }
            if let Some(line) = self.file_line(k) {
                return format!("{}:{line}", self.file_label);
            }
            match k.rfind('.') {
                Some(i) => k = &k[..i],
                None => return "default".into(),
            }
        }
    }

    /// Where `key` itself (or something under it) was set by the file or a
    /// variable with a non-empty value; `None` when it has its default (an
    /// empty table such as the example's `[mapping.roles]` counts as unset).
    /// Values recorded with [`Origins::record`] do not count.
    pub fn explicit(&self, key: &str) -> Option<String> {
        let under = format!("{key}.");
        if let Some((_, v)) = self.vars.iter().find(|(k, v)| {
            (*k == key || k.starts_with(&under)) && !self.recorded.contains(*k) && !v.is_empty()
        }) {
            return Some(v.clone());
        }
        let doc = self.file.as_ref()?;
        let mut item: &toml_edit::Item = doc.as_item();
        for part in key.split('.') {
            item = item.as_table_like()?.get(part)?;
        }
        let empty = match item {
            toml_edit::Item::None => true,
            toml_edit::Item::Value(toml_edit::Value::String(s)) => s.value().trim().is_empty(),
            toml_edit::Item::Value(toml_edit::Value::Array(a)) => a.is_empty(),
            toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => t.is_empty(),
            toml_edit::Item::Table(t) => t.is_empty(),
            toml_edit::Item::ArrayOfTables(a) => a.is_empty(),
            toml_edit::Item::Value(_) => false,
        };
        if empty {
            return None;
        }
        Some(self.of(key))
    }

    /// Records that `key` got its value from somewhere other than the file
    /// or the environment (the SSO settings page), for [`Origins::of`].
    pub fn record(&mut self, key: &str, source: &str) {
        self.vars.insert(key.to_string(), source.to_string());
        self.recorded.insert(key.to_string());
    }

    /// The 1-based line of `key` in the TOML file, if the file sets it.
    fn file_line(&self, key: &str) -> Option<usize> {
        let doc = self.file.as_ref()?;
        let mut item: &toml_edit::Item = doc.as_item();
        let mut span = None;
        for part in key.split('.') {
            let (next, key_span) = if item.is_array() || item.is_array_of_tables() {
                (item.get(part.parse::<usize>().ok()?)?, None)
            } else {
                let (k, v) = item.as_table_like()?.get_key_value(part)?;
                (v, k.span())
            };
            span = key_span.or_else(|| next.span()).or(span);
            item = next;
        }
        let start = span?.start;
        let text = doc.raw();
        Some(text[..start.min(text.len())].matches('\n').count() + 1)
    }
}

/// Reads every source and returns the typed configuration, or every problem
/// found in all of them (unknown keys, wrong types, bad values), each naming
/// its key and source.
pub fn load(src: &Sources) -> Result<Config, Errors> {
    let (figment, origins, mut problems) = gather(src)?;
    let Some(raw) = extract(&figment, &origins, &mut problems) else {
        return Err(Errors(problems));
    };
    match validate::validate(raw, origins) {
        Ok(cfg) if problems.is_empty() => Ok(cfg),
        Ok(_) => Err(Errors(problems)),
        Err(Errors(more)) => {
            // A key already reported (a wrong type, say) fell back to its
            // default; what validation then says about it would be noise.
            let reported: Vec<String> = problems.iter().map(|p| p.key.clone()).collect();
            problems.extend(
                more.into_iter()
                    .filter(|p| !reported.iter().any(|k| is_same_or_under(&p.key, k))),
            );
            Err(Errors(problems))
        }
    }
}

fn is_same_or_under(key: &str, parent: &str) -> bool {
    key.strip_prefix(parent)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// Merges the sources into one figment (also used by tests).
pub fn assemble(src: &Sources) -> Result<(Figment, Origins), Errors> {
    let (figment, origins, problems) = gather(src)?;
    if problems.is_empty() {
        Ok((figment, origins))
    } else {
        Err(Errors(problems))
    }
}

/// Merges the sources. Fails at once only when a file cannot be read or
/// parsed at all; problems with single variables are returned alongside so
/// that they are reported together with everything else.
fn gather(src: &Sources) -> Result<(Figment, Origins, Vec<Problem>), Errors> {
    let mut origins = Origins::default();
    let mut problems = Vec::new();

    // 1. The TOML file.
    let (label, text) = match (&src.config_text, &src.config_file) {
        (Some((label, text)), _) => (label.clone(), Some(text.clone())),
        (None, Some(path)) => (
            path.display().to_string(),
            Some(read_file(path, "--config")?),
        ),
        (None, None) => {
            let path = Path::new(DEFAULT_CONFIG_FILE);
            let text = if path.exists() {
                Some(read_file(path, "--config")?)
            } else {
                None
            };
            (DEFAULT_CONFIG_FILE.to_string(), text)
        }
    };
    origins.file_label = label.clone();
    let mut figment = Figment::new();
    if let Some(text) = text {
        match toml_edit::ImDocument::parse(text.clone()) {
            Ok(doc) => origins.file = Some(doc),
            Err(e) => {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                    .unwrap_or(1);
                let msg = e.message().trim().to_string();
                return Err(Errors::one(
                    "",
                    format!("{label}:{line}"),
                    format!("invalid TOML: {msg}"),
                ));
            }
        }
        figment = figment.merge(figment::providers::Toml::string(&text));
    }

    // 2. Variables: the env file below the process environment.
    let mut entries: Vec<dotenv::Entry> = Vec::new();
    if let Some(path) = &src.env_file {
        let text = read_file(path, "--env-file")?;
        match dotenv::parse(&text, &path.display().to_string()) {
            Ok(e) => entries.extend(e),
            Err(e) => return Err(Errors::one("", format!("{}:{}", e.path, e.line), e.message)),
        }
    }
    entries.extend(src.env.iter().map(|(k, v)| dotenv::Entry {
        key: k.clone(),
        value: v.clone(),
        origin: dotenv::Origin::Environment,
    }));

    // 3. The Label Studio variables.
    match lse_env::translate(&entries) {
        Ok(layer) => {
            origins.vars.extend(layer.origins);
            figment = figment.merge(JsonLayer {
                name: "Label Studio variables",
                values: layer.values,
            });
        }
        Err(errs) => problems.extend(errs.into_iter().map(|e| Problem {
            key: e.var.clone(),
            source: e.origin.to_string(),
            message: e.message,
        })),
    }

    // 4. AUTHGATE_SECTION__KEY variables.
    let defaults = Value::serialize(raw::Raw::default()).unwrap_or(Value::from(Dict::new()));
    let sections: Vec<String> = defaults
        .as_dict()
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default();
    let mut latest: BTreeMap<&str, &dotenv::Entry> = BTreeMap::new();
    for e in &entries {
        if e.key.starts_with(ENV_PREFIX) {
            latest.insert(&e.key, e);
        }
    }
    let mut env_dict = Dict::new();
    for (name, entry) in latest {
        let rest = &name[ENV_PREFIX.len()..];
        if !rest.contains("__") {
            // `AUTHGATE_SERVER_LISTEN` is a typo worth an error; other
            // AUTHGATE_* variables (a test harness's, a wrapper script's) are
            // not configuration keys and are left alone.
            let lower = rest.to_ascii_lowercase();
            if let Some(section) = sections
                .iter()
                .find(|s| lower == **s || lower.starts_with(&format!("{s}_")))
            {
                let key = &rest[section.len()..].trim_start_matches('_');
                let hint = if key.is_empty() {
                    format!("AUTHGATE_{}__KEY", section.to_ascii_uppercase())
                } else {
                    format!("AUTHGATE_{}__{key}", section.to_ascii_uppercase())
                };
                problems.push(Problem {
                    key: name.to_string(),
                    source: entry.origin.describe(name),
                    message: format!(
                        "not a configuration variable: sections and keys are separated by two underscores (did you mean {hint}?)"
                    ),
                });
            }
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        if path.iter().any(|p| p.is_empty()) {
            problems.push(Problem {
                key: name.to_string(),
                source: entry.origin.describe(name),
                message: "expected AUTHGATE_SECTION__KEY".into(),
            });
            continue;
        }
        let key = path.join(".");
        origins
            .vars
            .insert(key.clone(), entry.origin.describe(name));
        let value = env_value(&entry.value, defaults.find_ref(&key));
        insert_value(&mut env_dict, &path, value);
    }
    figment = figment.merge(DictLayer {
        name: "AUTHGATE_ variables",
        values: env_dict,
    });

    Ok((figment, origins, problems))
}

/// Parses a variable's text as the type its default has, so that a numeric
/// password stays a string and `a,b` becomes a list.
fn env_value(text: &str, default: Option<&Value>) -> Value {
    match default {
        Some(Value::String(..)) => Value::from(text.to_string()),
        Some(Value::Array(..)) if !text.trim_start().starts_with('[') => Value::from(
            text.split(',')
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| Value::from(s.to_string()))
                .collect::<Vec<_>>(),
        ),
        _ => text
            .parse::<Value>()
            .unwrap_or_else(|_| Value::from(text.to_string())),
    }
}

fn insert_value(dict: &mut Dict, path: &[String], value: Value) {
    let Some((last, init)) = path.split_last() else {
        return;
    };
    let mut cur = dict;
    for p in init {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| Value::from(Dict::new()));
        if entry.as_dict().is_none() {
            *entry = Value::from(Dict::new());
        }
        match entry {
            Value::Dict(_, d) => cur = d,
            _ => return,
        }
    }
    cur.insert(last.clone(), value);
}

fn read_file(path: &Path, what: &str) -> Result<String, Errors> {
    std::fs::read_to_string(path).map_err(|e| {
        Errors::one(
            what,
            "command line",
            format!("cannot read {}: {e}", path.display()),
        )
    })
}

/// Keys whose values must not appear even in an error message.
const SECRET_KEYS: &[&str] = &["ldap.bind_password", "session.secret"];

/// Deserializes the merged values into `Raw`, collecting every problem:
/// serde stops at the first one, so each offending key is reported, dropped
/// (its default applies) and extraction retried. `None` when no `Raw` could
/// be produced at all.
fn extract(figment: &Figment, origins: &Origins, problems: &mut Vec<Problem>) -> Option<raw::Raw> {
    let mut data: Dict = match figment.extract::<Dict>() {
        Ok(d) => d,
        Err(e) => {
            problems.push(Problem {
                key: String::new(),
                source: "configuration".into(),
                message: e.to_string(),
            });
            return None;
        }
    };
    // Each round removes at least one key, so this ends; the bound is a guard.
    for _ in 0..256 {
        let layer = DictLayer {
            name: "configuration",
            values: data.clone(),
        };
        let err = match Figment::from(layer).extract::<raw::Raw>() {
            Ok(raw) => return Some(raw),
            Err(err) => err,
        };
        let mut progressed = false;
        for e in err {
            let mut path = e.path.clone();
            if let figment::error::Kind::UnknownField(f, _) = &e.kind {
                if path.last() != Some(f) {
                    path.push(f.clone());
                }
            }
            let key = path.join(".");
            let secret = SECRET_KEYS.iter().any(|s| is_same_or_under(&key, s));
            let message = match &e.kind {
                figment::error::Kind::UnknownField(f, expected) => format!(
                    "unknown key `{f}` (expected one of: {})",
                    expected.join(", ")
                ),
                figment::error::Kind::InvalidType(_, expected)
                | figment::error::Kind::InvalidValue(_, expected)
                    if secret =>
                {
                    format!("invalid value (not shown: the key is secret); expected {expected}")
                }
                kind => kind.to_string(),
            };
            problems.push(Problem {
                source: origins.of(&key),
                key,
                message,
            });
            progressed |= remove_path(&mut data, &path);
        }
        if !progressed {
            return None;
        }
    }
    None
}

/// Removes the value at `path`, or the deepest enclosing table entry that
/// holds it (a list, say), so that its default applies. False when nothing
/// could be removed.
fn remove_path(dict: &mut Dict, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    if !rest.is_empty() {
        if let Some(Value::Dict(_, inner)) = dict.get_mut(first) {
            if remove_path(inner, rest) {
                return true;
            }
        }
    }
    dict.remove(first).is_some()
}

/// A provider over already-built values, named for error messages.
struct JsonLayer {
    name: &'static str,
    values: serde_json::Map<String, serde_json::Value>,
}

impl Provider for JsonLayer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let value = Value::serialize(&self.values)?;
        let dict = value.into_dict().unwrap_or_default();
        Ok(Profile::Default.collect(dict))
    }
}

struct DictLayer {
    name: &'static str,
    values: Dict,
}

impl Provider for DictLayer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(toml: &str) -> Origins {
        Origins {
            file_label: "a.toml".into(),
            file: Some(toml_edit::ImDocument::parse(toml.to_string()).expect("toml")),
            vars: BTreeMap::from([(
                "mapping.roles.reviewer".to_string(),
                "environment variable AUTH_LDAP_ORGANIZATION_ROLE_REVIEWER".to_string(),
            )]),
            recorded: Default::default(),
        }
    }

    #[test]
    fn origins_name_the_line_of_keys_list_items_and_array_tables() {
        let o = origins(
            "[server]\nlisten = \"x\"\ntrusted_proxies = [\n  \"a\",\n  \"b\",\n]\n\n[[mapping.projects]]\nproject = \"1\"\n\n[[mapping.projects]]\nproject = \"2\"\ngroup = \"g\"\n",
        );
        let cases = [
            ("server", "a.toml:1"),
            ("server.listen", "a.toml:2"),
            ("server.trusted_proxies.1", "a.toml:5"),
            ("server.trusted_proxies[0]", "a.toml:4"),
            ("server.nothing", "a.toml:1"),
            ("mapping.projects[1].group", "a.toml:13"),
            ("mapping.projects[0].group", "a.toml:8"),
            (
                "mapping.roles.reviewer[2]",
                "environment variable AUTH_LDAP_ORGANIZATION_ROLE_REVIEWER",
            ),
            ("ldap.enabled", "default"),
        ];
        for (key, want) in cases {
            assert_eq!(o.of(key), want, "{key}");
        }
    }

    #[test]
    fn every_extraction_problem_is_reported_once() {
        let src = Sources {
            config_text: Some((
                "a.toml".into(),
                "[server]\nlisten = 1\nlistn = 2\n[upstream]\nmax_body = \"big\"\n[ldap]\nenabled = \"maybe\"\n".into(),
            )),
            ..Sources::default()
        };
        let (figment, origins, mut problems) = gather(&src).expect("gathered");
        assert!(extract(&figment, &origins, &mut problems).is_some());
        let keys: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.source.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("ldap.enabled", "a.toml:7"),
                ("server.listen", "a.toml:2"),
                ("server.listn", "a.toml:3"),
                ("upstream.max_body", "a.toml:5"),
            ]
        );
    }

    #[test]
    fn problems_are_one_line() {
        let p = Problem {
            key: "k".into(),
            source: "s".into(),
            message: "first\n  second\r\n".into(),
        };
        assert_eq!(p.to_string(), "k (from s): first; second");
    }
}
