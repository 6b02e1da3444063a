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
pub mod secret;
pub mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::Format;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

pub use secret::Secret;
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(f, "{} (from {}): {}", self.key, self.source, self.message)
        }
    }
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
#[derive(Debug, Default)]
pub struct Origins {
    file_label: String,
    file: Option<toml_edit::ImDocument<String>>,
    /// key → "environment variable X" / "X (lse.env:3)"
    vars: BTreeMap<String, String>,
}

impl Origins {
    /// The most specific known origin of `key` (or of its closest parent).
    pub fn of(&self, key: &str) -> String {
        let mut k = key;
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

    fn file_line(&self, key: &str) -> Option<usize> {
        let doc = self.file.as_ref()?;
        let mut table: &dyn toml_edit::TableLike = doc.as_table();
        let parts: Vec<&str> = key.split('.').collect();
        let mut span = None;
        for (i, part) in parts.iter().enumerate() {
            let item = table.get(part)?;
            span = table
                .get_key_value(part)
                .and_then(|(k, _)| k.span())
                .or_else(|| item.span());
            if i + 1 < parts.len() {
                table = item.as_table_like()?;
            }
        }
        let start = span?.start;
        let text = doc.raw();
        Some(text[..start.min(text.len())].matches('\n').count() + 1)
    }
}

/// Reads every source and returns the typed configuration, or every problem.
pub fn load(src: &Sources) -> Result<Config, Errors> {
    let (figment, origins) = assemble(src)?;
    let raw: raw::Raw = extract(&figment, &origins)?;
    validate::validate(raw, &origins)
}

/// Merges the sources into one figment (also used by tests).
pub fn assemble(src: &Sources) -> Result<(Figment, Origins), Errors> {
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
                return Err(Errors::one("", format!("{label}:{line}"), msg));
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
    let mut latest: BTreeMap<&str, &dotenv::Entry> = BTreeMap::new();
    for e in &entries {
        if e.key.starts_with(ENV_PREFIX) {
            latest.insert(&e.key, e);
        }
    }
    let mut env_dict = Dict::new();
    for (name, entry) in latest {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(|p| p.to_ascii_lowercase())
            .collect();
        if path.iter().any(|p| p.is_empty()) {
            problems.push(Problem {
                key: name.to_string(),
                source: describe_var(name, &entry.origin),
                message: "expected AUTHGATE_SECTION__KEY".into(),
            });
            continue;
        }
        let key = path.join(".");
        origins
            .vars
            .insert(key.clone(), describe_var(name, &entry.origin));
        let value = env_value(&entry.value, defaults.find_ref(&key));
        insert_value(&mut env_dict, &path, value);
    }
    figment = figment.merge(DictLayer {
        name: "AUTHGATE_ variables",
        values: env_dict,
    });

    if problems.is_empty() {
        Ok((figment, origins))
    } else {
        Err(Errors(problems))
    }
}

fn describe_var(name: &str, origin: &dotenv::Origin) -> String {
    match origin {
        dotenv::Origin::Environment => format!("environment variable {name}"),
        file => format!("variable {name} at {file}"),
    }
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

fn extract<T: serde::de::DeserializeOwned>(
    figment: &Figment,
    origins: &Origins,
) -> Result<T, Errors> {
    figment.extract::<T>().map_err(|err| {
        Errors(
            err.into_iter()
                .map(|e| {
                    let mut path = e.path.clone();
                    if let figment::error::Kind::UnknownField(f, _) = &e.kind {
                        path.push(f.clone());
                    }
                    let key = path.join(".");
                    let message = match &e.kind {
                        figment::error::Kind::UnknownField(f, expected) => format!(
                            "unknown key `{f}` (expected one of: {})",
                            expected.join(", ")
                        ),
                        kind => kind.to_string(),
                    };
                    Problem {
                        source: origins.of(&key),
                        key,
                        message,
                    }
                })
                .collect(),
        )
    })
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
