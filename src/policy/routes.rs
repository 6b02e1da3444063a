//! The route table file: reading its TOML, validating every row, compiling templates into
//! segment matchers and an index by first segment.
//!
//! Owns the file format (documented in the header of `config/label-studio-routes.toml`) and
//! its error messages; every problem in a file is reported at once, each with the file name, the
//! route (`route[i]`, 0-based in file order) and the field. It does no I/O: the caller reads the
//! file and passes its text. It decides nothing: see `RouteTable::decide`.

use std::collections::BTreeMap;
use std::fmt;

use super::matcher::{self, Verb, GET, MAX_SEGMENTS, OPTIONS, PATCH, PUT};
use super::Switches;

/// Why a route table (or a `policy.switches` setting) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text is not TOML; the message carries the line and column.
    #[error("{source_name}: not a valid TOML route table: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    /// The TOML is well formed but some rows or switches are wrong; all of them are listed.
    #[error("{source_name}: {}", join(.problems))]
    Invalid {
        source_name: String,
        problems: Vec<Problem>,
    },
    /// `policy.switches` names switches the route table does not define.
    #[error("policy.switches: unknown switch {} (the route table {source_name} defines: {known})", .names.join(", "))]
    UnknownSwitch {
        source_name: String,
        names: Vec<String>,
        known: String,
    },
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One problem in a route table: where (route index and path, or switch name), which field, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `route[i]` (0-based, file order) with its path, `switches.<name>`, or the top level.
    pub location: String,
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.location, self.message)
        } else {
            write!(
                f,
                "{}: field `{}`: {}",
                self.location, self.field, self.message
            )
        }
    }
}

/// What arms a row: one of the switches of [`Switches`], or nothing (always armed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Governor {
    ManualRoleManagement,
    ManualWorkspaceManagement,
    ManualProjectMemberManagement,
    DisableSignupWithoutLink,
    NativeLogin,
    AppSsoSettings,
    AppSsoRuntime,
    None,
}

const GOVERNORS: [Governor; 8] = [
    Governor::ManualRoleManagement,
    Governor::ManualWorkspaceManagement,
    Governor::ManualProjectMemberManagement,
    Governor::DisableSignupWithoutLink,
    Governor::NativeLogin,
    Governor::AppSsoSettings,
    Governor::AppSsoRuntime,
    Governor::None,
];

impl Governor {
    pub(super) fn name(self) -> &'static str {
        match self {
            Governor::ManualRoleManagement => "manual_role_management",
            Governor::ManualWorkspaceManagement => "manual_workspace_management",
            Governor::ManualProjectMemberManagement => "manual_project_member_management",
            Governor::DisableSignupWithoutLink => "disable_signup_without_link",
            Governor::NativeLogin => "native_login",
            Governor::AppSsoSettings => "app_sso_settings",
            Governor::AppSsoRuntime => "app_sso_runtime",
            Governor::None => "none",
        }
    }

    fn parse(s: &str) -> Option<Governor> {
        GOVERNORS.iter().copied().find(|g| g.name() == s)
    }

    /// Is the switch in the state that arms the rows it governs?
    pub(super) fn active(self, sw: &Switches) -> bool {
        match self {
            Governor::ManualRoleManagement => !sw.manual_role_management,
            Governor::ManualWorkspaceManagement => !sw.manual_workspace_management,
            Governor::ManualProjectMemberManagement => !sw.manual_project_member_management,
            Governor::DisableSignupWithoutLink => sw.disable_signup_without_link,
            Governor::NativeLogin => sw.native_login_disabled,
            Governor::AppSsoSettings | Governor::AppSsoRuntime => sw.app_sso_disabled,
            Governor::None => true,
        }
    }

    /// The configuration state behind `active`, for explanations.
    pub(super) fn state(self, sw: &Switches) -> String {
        match self {
            Governor::ManualRoleManagement => {
                format!("manual_role_management = {}", sw.manual_role_management)
            }
            Governor::ManualWorkspaceManagement => format!(
                "manual_workspace_management = {}",
                sw.manual_workspace_management
            ),
            Governor::ManualProjectMemberManagement => format!(
                "manual_project_member_management = {}",
                sw.manual_project_member_management
            ),
            Governor::DisableSignupWithoutLink => format!(
                "disable_signup_without_link = {}",
                sw.disable_signup_without_link
            ),
            Governor::NativeLogin => {
                format!("native_login_disabled = {}", sw.native_login_disabled)
            }
            Governor::AppSsoSettings | Governor::AppSsoRuntime => {
                format!("app_sso_disabled = {}", sw.app_sso_disabled)
            }
            Governor::None => "always".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Deny,
    Allow,
    Policy,
    Intercept,
}

impl Action {
    pub(super) fn name(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Allow => "allow",
            Action::Policy => "policy",
            Action::Intercept => "intercept",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MatchKind {
    Exact,
    Prefix,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    /// Lower-case ASCII literal.
    Literal(Box<[u8]>),
    /// `{name}`: exactly one non-empty segment.
    Param,
}

/// How a method reached a row: named by it, or only through "a non-allow row naming PATCH also
/// covers PUT".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    Direct,
    Widened,
}

/// The methods a row applies to, compiled to bits (plus extension method names, upper-case).
#[derive(Debug, Clone, Default)]
pub(super) struct MethodSet {
    any: bool,
    known: u16,
    other: Vec<Box<str>>,
    except_known: u16,
    except_other: Vec<Box<str>>,
    widened: u16,
}

impl MethodSet {
    pub(super) fn matches(&self, v: Verb<'_>) -> Option<Via> {
        match v {
            Verb::Known(bit) => {
                if self.any {
                    (self.except_known & bit == 0).then_some(Via::Direct)
                } else if self.known & bit != 0 {
                    Some(Via::Direct)
                } else if self.widened & bit != 0 {
                    Some(Via::Widened)
                } else {
                    None
                }
            }
            Verb::Other(name) => {
                let named = |list: &[Box<str>]| list.iter().any(|m| m.eq_ignore_ascii_case(name));
                let hit = if self.any {
                    !named(&self.except_other)
                } else {
                    named(&self.other)
                };
                hit.then_some(Via::Direct)
            }
        }
    }

    fn only_reads(&self) -> bool {
        !self.any && self.other.is_empty() && self.known & !(GET | OPTIONS) == 0
    }

    pub(super) fn describe(&self) -> String {
        fn list(bits: u16, other: &[Box<str>]) -> Vec<String> {
            (0..16)
                .map(|i| 1u16 << i)
                .filter(|b| bits & b != 0)
                .map(|b| matcher::bit_name(b).to_string())
                .chain(other.iter().map(ToString::to_string))
                .collect()
        }
        if self.any {
            let except = list(self.except_known, &self.except_other);
            if except.is_empty() {
                "*".to_string()
            } else {
                format!("* except {}", except.join(" "))
            }
        } else {
            let mut s = list(self.known, &self.other).join(" ");
            if self.widened != 0 {
                s.push_str(" (+PUT)");
            }
            s
        }
    }
}

/// One compiled `[[route]]` row. The accessors give what logs and explanations need.
#[derive(Debug, Clone)]
pub struct Rule {
    pub(super) path: String,
    pub(super) segments: Vec<Segment>,
    pub(super) kind: MatchKind,
    pub(super) methods: MethodSet,
    pub(super) governed_by: Governor,
    pub(super) also_governed_by: Vec<Governor>,
    pub(super) action: Action,
    pub(super) switch: Option<usize>,
    pub(super) login_page: bool,
    pub(super) invite_param: Option<String>,
    pub(super) family: String,
    pub(super) edition: String,
    pub(super) basis: String,
    pub(super) source: String,
    pub(super) notes: String,
    pub(super) rank: (bool, usize, usize),
}

impl Rule {
    /// The path template as the file spells it.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `"exact"` or `"prefix"`.
    pub fn match_kind(&self) -> &'static str {
        match self.kind {
            MatchKind::Exact => "exact",
            MatchKind::Prefix => "prefix",
        }
    }

    /// The methods, e.g. `"POST DELETE"` or `"* except GET OPTIONS"`.
    pub fn methods(&self) -> String {
        self.methods.describe()
    }

    /// `"deny"`, `"allow"`, `"policy"` or `"intercept"`.
    pub fn action(&self) -> &'static str {
        self.action.name()
    }

    /// The governing switch and the `also_governed_by` ones, in file order.
    pub fn governed_by(&self) -> Vec<&'static str> {
        self.governors().map(Governor::name).collect()
    }

    pub fn family(&self) -> &str {
        &self.family
    }

    pub fn edition(&self) -> &str {
        &self.edition
    }

    pub fn basis(&self) -> &str {
        &self.basis
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn notes(&self) -> &str {
        &self.notes
    }

    pub(super) fn governors(&self) -> impl Iterator<Item = Governor> + '_ {
        std::iter::once(self.governed_by).chain(self.also_governed_by.iter().copied())
    }

    /// Specificity: exact over prefix, then more segments, then more literal segments.
    pub(super) fn rank(&self) -> (bool, usize, usize) {
        self.rank
    }

    pub(super) fn path_matches(&self, segs: &matcher::Segments<'_>) -> bool {
        path_matches(&self.segments, self.kind, segs)
    }
}

/// Does a compiled template match the request's segments?
pub(super) fn path_matches(
    segments: &[Segment],
    kind: MatchKind,
    segs: &matcher::Segments<'_>,
) -> bool {
    let n = segments.len();
    let fits = match kind {
        MatchKind::Exact => segs.len() == n,
        MatchKind::Prefix => segs.len() >= n,
    };
    fits && segments.iter().enumerate().all(|(i, seg)| match seg {
        Segment::Literal(lit) => matcher::literal_eq(segs.get(i), lit, segs.is_last(i)),
        Segment::Param => true,
    })
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} [{}] {}",
            self.match_kind(),
            self.path,
            self.methods.describe(),
            self.action.name()
        )
    }
}

/// A switch of the policy/intercept rows, as declared under `[switches.<name>]`.
#[derive(Debug, Clone)]
pub(super) struct SwitchDef {
    pub(super) name: String,
    pub(super) default: bool,
    pub(super) description: String,
}

/// The compiled table: rows, switches, and the index the matcher walks.
#[derive(Debug, Clone)]
pub(super) struct Compiled {
    pub(super) rules: Vec<Rule>,
    pub(super) switches: Vec<SwitchDef>,
    /// Rows by their first literal segment (lower case).
    pub(super) buckets: Vec<Bucket>,
    /// Rows whose template starts with a parameter, or has no segment at all.
    pub(super) wildcard: Vec<usize>,
}

/// The rows whose first segment is `key`, split again by their second segment when it is a
/// literal (most requests start with `/api/`: the second level keeps the scan short).
#[derive(Debug, Clone)]
pub(super) struct Bucket {
    pub(super) key: Box<[u8]>,
    pub(super) by_second: Vec<(Box<[u8]>, Vec<usize>)>,
    /// Rows with one segment only, or a parameter second.
    pub(super) rest: Vec<usize>,
}

fn index_rows(rules: &[Rule]) -> (Vec<Bucket>, Vec<usize>) {
    let mut buckets: Vec<Bucket> = Vec::new();
    let mut wildcard = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let Some(Segment::Literal(first)) = rule.segments.first() else {
            wildcard.push(i);
            continue;
        };
        let at = match buckets.iter().position(|b| &b.key == first) {
            Some(at) => at,
            None => {
                buckets.push(Bucket {
                    key: first.clone(),
                    by_second: Vec::new(),
                    rest: Vec::new(),
                });
                buckets.len() - 1
            }
        };
        let Some(bucket) = buckets.get_mut(at) else {
            continue;
        };
        match rule.segments.get(1) {
            Some(Segment::Literal(second)) => {
                match bucket.by_second.iter_mut().find(|(k, _)| k == second) {
                    Some((_, list)) => list.push(i),
                    None => bucket.by_second.push((second.clone(), vec![i])),
                }
            }
            _ => bucket.rest.push(i),
        }
    }
    (buckets, wildcard)
}

const ROUTE_KEYS: [&str; 15] = [
    "methods",
    "except_methods",
    "path",
    "match",
    "governed_by",
    "also_governed_by",
    "action",
    "family",
    "edition",
    "basis",
    "source",
    "notes",
    "switch",
    "login_page",
    "invite_param",
];

/// Collects problems while one table is read.
pub(super) struct Check {
    pub(super) problems: Vec<Problem>,
}

impl Check {
    pub(super) fn push(&mut self, location: &str, field: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            location: location.to_string(),
            field: field.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn string(
        &mut self,
        t: &toml::Table,
        loc: &str,
        key: &str,
        required: bool,
    ) -> Option<String> {
        match t.get(key) {
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.push(
                    loc,
                    key,
                    format!("must be a string, not {}", other.type_str()),
                );
                None
            }
            None if required => {
                self.push(loc, key, "missing");
                None
            }
            None => None,
        }
    }

    pub(super) fn strings(&mut self, t: &toml::Table, loc: &str, key: &str) -> Option<Vec<String>> {
        match t.get(key) {
            None => Some(Vec::new()),
            Some(toml::Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        toml::Value::String(s) => out.push(s.clone()),
                        other => {
                            self.push(
                                loc,
                                key,
                                format!("must list strings, not {}", other.type_str()),
                            );
                            return None;
                        }
                    }
                }
                Some(out)
            }
            Some(other) => {
                self.push(
                    loc,
                    key,
                    format!("must be an array of strings, not {}", other.type_str()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, t: &toml::Table, loc: &str, key: &str) -> Option<bool> {
        match t.get(key) {
            None => Some(false),
            Some(toml::Value::Boolean(b)) => Some(*b),
            Some(other) => {
                self.push(
                    loc,
                    key,
                    format!("must be true or false, not {}", other.type_str()),
                );
                None
            }
        }
    }
}

pub(super) fn compile(text: &str, source_name: &str) -> Result<Compiled, Error> {
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Syntax {
        source_name: source_name.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let mut check = Check {
        problems: Vec::new(),
    };
    for key in doc.keys() {
        if key != "route" && key != "switches" {
            check.push(
                "top level",
                key,
                "unknown key (expected [[route]] rows and [switches.<name>] tables)",
            );
        }
    }

    let switches = read_switches(&doc, &mut check);
    let mut used = vec![false; switches.len()];
    let mut rules = Vec::new();
    match doc.get("route") {
        Some(toml::Value::Array(rows)) => {
            for (i, row) in rows.iter().enumerate() {
                if let Some(rule) = read_route(i, row, &switches, &mut check) {
                    if let Some(s) = rule.switch {
                        if let Some(flag) = used.get_mut(s) {
                            *flag = true;
                        }
                    }
                    rules.push(rule);
                }
            }
        }
        Some(other) => check.push(
            "top level",
            "route",
            format!("must be [[route]] tables, not {}", other.type_str()),
        ),
        None => check.push("top level", "route", "the table has no [[route]] rows"),
    }
    for (def, used) in switches.iter().zip(&used) {
        if !*used {
            check.push(
                &format!("switches.{}", def.name),
                "",
                "declared but no route uses it",
            );
        }
    }
    if !check.problems.is_empty() {
        return Err(Error::Invalid {
            source_name: source_name.to_string(),
            problems: check.problems,
        });
    }

    let (buckets, wildcard) = index_rows(&rules);
    Ok(Compiled {
        rules,
        switches,
        buckets,
        wildcard,
    })
}

fn valid_switch_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn read_switches(doc: &toml::Table, check: &mut Check) -> Vec<SwitchDef> {
    let mut out = Vec::new();
    let table = match doc.get("switches") {
        None => return out,
        Some(toml::Value::Table(t)) => t,
        Some(other) => {
            check.push(
                "top level",
                "switches",
                format!(
                    "must be a table of [switches.<name>], not {}",
                    other.type_str()
                ),
            );
            return out;
        }
    };
    for (name, value) in table {
        let loc = format!("switches.{name}");
        if !valid_switch_name(name) {
            check.push(
                &loc,
                "",
                "a switch name is lower-case letters, digits and `_` (it becomes policy.switches.<name>)",
            );
        }
        let toml::Value::Table(t) = value else {
            check.push(
                &loc,
                "",
                format!("must be a table, not {}", value.type_str()),
            );
            continue;
        };
        for key in t.keys() {
            if key != "default" && key != "description" {
                check.push(&loc, key, "unknown key (expected default, description)");
            }
        }
        let default = match t.get("default") {
            Some(toml::Value::Boolean(b)) => *b,
            Some(other) => {
                check.push(
                    &loc,
                    "default",
                    format!("must be true or false, not {}", other.type_str()),
                );
                continue;
            }
            None => {
                check.push(
                    &loc,
                    "default",
                    "missing (true = carry out the row's action)",
                );
                continue;
            }
        };
        let description = check
            .string(t, &loc, "description", false)
            .unwrap_or_default();
        out.push(SwitchDef {
            name: name.clone(),
            default,
            description,
        });
    }
    out
}

fn read_route(
    i: usize,
    row: &toml::Value,
    switches: &[SwitchDef],
    check: &mut Check,
) -> Option<Rule> {
    let (t, shown) = row_table(i, row, &ROUTE_KEYS, check)?;
    let loc = shown.as_str();
    let before = check.problems.len();

    let path = check.string(t, loc, "path", true);
    let segments = path.as_deref().and_then(|p| match compile_path(p) {
        Ok(s) => Some(s),
        Err(message) => {
            check.push(loc, "path", message);
            None
        }
    });

    let kind = match check.string(t, loc, "match", true).as_deref() {
        Some("exact") => Some(MatchKind::Exact),
        Some("prefix") => Some(MatchKind::Prefix),
        Some(other) => {
            check.push(
                loc,
                "match",
                format!("`{other}`: expected \"exact\" or \"prefix\""),
            );
            None
        }
        None => None,
    };

    let action = match check.string(t, loc, "action", true).as_deref() {
        Some("deny") => Some(Action::Deny),
        Some("allow") => Some(Action::Allow),
        Some("policy") => Some(Action::Policy),
        Some("intercept") => Some(Action::Intercept),
        Some(other) => {
            check.push(
                loc,
                "action",
                format!("`{other}`: expected deny, allow, policy or intercept"),
            );
            None
        }
        None => None,
    };

    let governor_names = || {
        GOVERNORS
            .iter()
            .map(|g| g.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let governed_by =
        check
            .string(t, loc, "governed_by", true)
            .and_then(|g| match Governor::parse(&g) {
                Some(g) => Some(g),
                None => {
                    check.push(
                        loc,
                        "governed_by",
                        format!("`{g}`: expected one of {}", governor_names()),
                    );
                    None
                }
            });
    let mut also_governed_by = Vec::new();
    for g in check
        .strings(t, loc, "also_governed_by")
        .unwrap_or_default()
    {
        match Governor::parse(&g) {
            Some(Governor::None) | None => check.push(
                loc,
                "also_governed_by",
                format!(
                    "`{g}`: expected switches among {}, without none",
                    governor_names()
                ),
            ),
            Some(g) => also_governed_by.push(g),
        }
    }
    if governed_by == Some(Governor::None) && !also_governed_by.is_empty() {
        check.push(
            loc,
            "also_governed_by",
            "a row governed by none is always armed; also_governed_by would change nothing",
        );
    }

    let methods = read_methods(t, loc, action, check);

    let family = check.string(t, loc, "family", true);
    if let Some(f) = family.as_deref() {
        if f.is_empty() {
            check.push(loc, "family", "must not be empty");
        }
        let read_only = f == "r" || f.starts_with("r_");
        if read_only && action.is_some_and(|a| a != Action::Allow) {
            check.push(
                loc,
                "action",
                "a read-only row (family r) must be an allow row",
            );
        }
        if read_only && methods.as_ref().is_some_and(|m| !m.only_reads()) {
            check.push(
                loc,
                "methods",
                "a read-only row (family r) may list only GET, HEAD, OPTIONS",
            );
        }
    }

    let switch = match (check.string(t, loc, "switch", false), action) {
        (Some(name), Some(Action::Policy | Action::Intercept)) => {
            match switches.iter().position(|s| s.name == name) {
                Some(s) => Some(s),
                None => {
                    check.push(
                        loc,
                        "switch",
                        format!("`{name}` is not declared under [switches.{name}]"),
                    );
                    None
                }
            }
        }
        (Some(_), Some(_)) => {
            check.push(
                loc,
                "switch",
                "only policy and intercept rows have a switch",
            );
            None
        }
        (None, Some(a @ (Action::Policy | Action::Intercept))) => {
            check.push(
                loc,
                "switch",
                format!(
                    "missing: a {} row needs a switch (declared under [switches.<name>], set with policy.switches.<name>)",
                    a.name()
                ),
            );
            None
        }
        _ => None,
    };

    let login_page = check.boolean(t, loc, "login_page").unwrap_or(false);
    if login_page && !matches!(action, Some(Action::Deny | Action::Policy) | None) {
        check.push(
            loc,
            "login_page",
            "only deny and policy rows can be login pages",
        );
    }

    let invite_param = check.string(t, loc, "invite_param", false);
    if let Some(p) = invite_param.as_deref() {
        if p.is_empty() {
            check.push(loc, "invite_param", "must not be empty");
        }
        let signup = governed_by == Some(Governor::DisableSignupWithoutLink)
            || also_governed_by.contains(&Governor::DisableSignupWithoutLink);
        if !signup {
            check.push(
                loc,
                "invite_param",
                "only rows armed by disable_signup_without_link can let an invite link through",
            );
        }
    }

    let edition = check.string(t, loc, "edition", false).unwrap_or_default();
    let basis = check.string(t, loc, "basis", false).unwrap_or_default();
    let source = check.string(t, loc, "source", false).unwrap_or_default();
    let notes = check.string(t, loc, "notes", false).unwrap_or_default();

    if check.problems.len() != before {
        return None;
    }
    let segments = segments?;
    let kind = kind?;
    let literals = segments
        .iter()
        .filter(|s| matches!(s, Segment::Literal(_)))
        .count();
    Some(Rule {
        path: path?,
        rank: (kind == MatchKind::Exact, segments.len(), literals),
        segments,
        kind,
        methods: methods?,
        governed_by: governed_by?,
        also_governed_by,
        action: action?,
        switch,
        login_page,
        invite_param,
        family: family?,
        edition,
        basis,
        source,
        notes,
    })
}

/// RFC 9110 `token` characters (a method name).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub(super) fn read_methods(
    t: &toml::Table,
    loc: &str,
    action: Option<Action>,
    check: &mut Check,
) -> Option<MethodSet> {
    let names = check.strings(t, loc, "methods")?;
    let except = check.strings(t, loc, "except_methods")?;
    if !t.contains_key("methods") {
        check.push(loc, "methods", "missing");
        return None;
    }
    if names.is_empty() {
        check.push(loc, "methods", "must not be empty");
        return None;
    }
    let mut set = MethodSet::default();
    let mut ok = true;
    for name in &names {
        if name == "*" {
            set.any = true;
        } else if !is_token(name) {
            check.push(
                loc,
                "methods",
                format!("`{name}` is not a method name (or \"*\")"),
            );
            ok = false;
        } else {
            match matcher::verb(name) {
                Verb::Known(bit) => set.known |= bit,
                Verb::Other(_) => set.other.push(name.to_ascii_uppercase().into()),
            }
        }
    }
    if set.any && names.len() > 1 {
        check.push(
            loc,
            "methods",
            "\"*\" stands alone (use except_methods to leave some out)",
        );
        ok = false;
    }
    if !except.is_empty() && !set.any {
        check.push(
            loc,
            "except_methods",
            "only meaningful with methods = [\"*\"]",
        );
        ok = false;
    }
    for name in &except {
        if !is_token(name) || name == "*" {
            check.push(
                loc,
                "except_methods",
                format!("`{name}` is not a method name"),
            );
            ok = false;
            continue;
        }
        match matcher::verb(name) {
            Verb::Known(bit) => set.except_known |= bit,
            Verb::Other(_) => set.except_other.push(name.to_ascii_uppercase().into()),
        }
    }
    // Django REST framework's UpdateAPIView routes PUT and PATCH to the same update: a row that
    // refuses PATCH refuses PUT too (never an allow row: that would widen an exception).
    if action != Some(Action::Allow) && set.known & PATCH != 0 && set.known & PUT == 0 {
        set.widened = PUT;
    }
    ok.then_some(set)
}

/// `/api/projects/{id}/members/` → [api, projects, {id}, members]; errors say what is wrong.
pub(super) fn compile_path(path: &str) -> Result<Vec<Segment>, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` must start with `/`"));
    }
    if let Some(c) = path
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | ';' | '%' | '\\'))
    {
        return Err(format!(
            "`{path}` contains {c:?}: a template is a plain decoded path (query, `;param` and escapes are handled by the matcher)"
        ));
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let mut out = Vec::new();
    for seg in trimmed.split('/').skip(1) {
        if seg.is_empty() {
            return Err(format!("`{path}` has an empty segment (`//`)"));
        }
        if seg == "." || seg == ".." {
            return Err(format!("`{path}` has a dot segment"));
        }
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("`{path}`: `{seg}` is not a parameter like {{id}}"));
            }
            out.push(Segment::Param);
        } else if seg.contains(['{', '}']) {
            return Err(format!(
                "`{path}`: `{seg}` mixes a parameter with text; {{x}} must be a whole segment"
            ));
        } else if !seg.is_ascii() {
            return Err(format!("`{path}`: `{seg}` is not ASCII"));
        } else {
            out.push(Segment::Literal(
                seg.to_ascii_lowercase().into_bytes().into(),
            ));
        }
    }
    if out.len() > MAX_SEGMENTS {
        return Err(format!(
            "`{path}` has {} segments; at most {MAX_SEGMENTS} are supported",
            out.len()
        ));
    }
    Ok(out)
}

/// Checks `policy.switches` against the table's switches: every name must exist.
pub(super) fn check_overrides(
    compiled: &Compiled,
    source_name: &str,
    overrides: &BTreeMap<String, bool>,
) -> Result<(), Error> {
    let names: Vec<String> = overrides
        .keys()
        .filter(|k| !compiled.switches.iter().any(|s| &s.name == *k))
        .cloned()
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    Err(Error::UnknownSwitch {
        source_name: source_name.to_string(),
        names,
        known: compiled
            .switches
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Row `i` of a route table (this one or the role table) as a TOML table,
/// and how problems name it (`route[i] (path)`); unknown keys are reported.
pub(crate) fn row_table<'a>(
    i: usize,
    row: &'a toml::Value,
    keys: &[&str],
    check: &mut Check,
) -> Option<(&'a toml::map::Map<String, toml::Value>, String)> {
    let toml::Value::Table(t) = row else {
        check.push(
            &format!("route[{i}]"),
            "",
            format!("must be a table, not {}", row.type_str()),
        );
        return None;
    };
    let shown = match t.get("path") {
        Some(toml::Value::String(p)) => format!("route[{i}] ({p})"),
        _ => format!("route[{i}]"),
    };
    for key in t.keys() {
        if !keys.contains(&key.as_str()) {
            check.push(
                &shown,
                key,
                format!("unknown field (expected one of {})", keys.join(", ")),
            );
        }
    }
    Some((t, shown))
}
