//! The role table: which organization role a route of the upstream needs.
//!
//! A second table of the same shape as the route table (`config/label-studio-role-routes.toml`,
//! embedded, replaceable with `policy.role_routes_file`), compiled once at start into a
//! [`RoleTable`]. [`RoleTable::decide`] says, for one request and the role the session gives,
//! whether that role is enough; it uses the route table's path matcher and method rules
//! (overrides, form bodies, PATCH covers PUT), so both tables see a request the same way.
//!
//! Pure: no I/O, no session, no other authgate module but the leaf [`crate::role`]. The gate
//! calls it after the session has given the role; the gate and `error.rs` turn a refusal into
//! the 403 that names the role.

use std::fmt::{self, Write as _};

use super::matcher::{self, Segments, Verb};
use super::routes::{self, Check, Error, MatchKind, MethodSet, Segment};
use super::{for_each_verb, Request};
pub use crate::role::Role;

/// A role a row can require: one of [`Role::ALL`], in the claim's spelling.
fn required_role(s: &str) -> Option<Role> {
    Role::from_claim(s).filter(|r| r.is_active())
}

/// The outcome for one request and role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleDecision {
    /// No row matches, or the role is at least the deciding row's.
    Allow,
    /// The role is below `needed`, required by row `rule` (`route[i]`, 0-based in file order).
    Refuse { needed: Role, rule: usize },
}

/// One compiled `[[route]]` row of the role table.
#[derive(Debug, Clone)]
pub struct RoleRule {
    path: String,
    segments: Vec<Segment>,
    kind: MatchKind,
    methods: MethodSet,
    role: Role,
    family: String,
    edition: String,
    basis: String,
    source: String,
    notes: String,
    /// `query_param` and `query_values`: the row applies only when the query's parameter (as
    /// Django reads it) has one of the values.
    query: Option<(String, Vec<String>)>,
    rank: (bool, usize, usize),
}

impl RoleRule {
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
    /// The methods, e.g. `"POST DELETE"` or `"*"`.
    pub fn methods(&self) -> String {
        self.methods.describe()
    }
    /// The least role that may use the route.
    pub fn role(&self) -> Role {
        self.role
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
    /// The query condition, if any: (parameter, values).
    pub fn query_condition(&self) -> Option<(&str, &[String])> {
        self.query.as_ref().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
    fn matches(&self, segs: &Segments<'_>, verb: Verb<'_>, query: Option<&str>) -> bool {
        self.methods.matches(verb).is_some()
            && routes::path_matches(&self.segments, self.kind, segs)
            && self
                .query
                .as_ref()
                .is_none_or(|(k, v)| matcher::query_param_is(query, k, v))
    }
}

impl fmt::Display for RoleRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let query = self
            .query
            .as_ref()
            .map(|(k, v)| format!("?{k}={}", v.join("|")))
            .unwrap_or_default();
        write!(
            f,
            "{} {}{query} [{}] needs {}",
            self.match_kind(),
            self.path,
            self.methods.describe(),
            self.role
        )
    }
}

/// The compiled role table.
#[derive(Debug, Clone)]
pub struct RoleTable {
    source_name: String,
    rules: Vec<RoleRule>,
}

const KEYS: [&str; 12] = [
    "methods",
    "except_methods",
    "path",
    "match",
    "role",
    "family",
    "edition",
    "basis",
    "source",
    "notes",
    "query_param",
    "query_values",
];

const BASES: [&str; 3] = ["documented", "inferred", "source"];

impl RoleTable {
    /// Compiles a role table; every problem is reported at once, each with the file name, the
    /// row (`route[i]` and its path) and the field.
    pub fn parse(text: &str, source_name: &str) -> Result<RoleTable, Error> {
        let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Syntax {
            source_name: source_name.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let mut check = Check {
            problems: Vec::new(),
        };
        for key in doc.keys().filter(|k| *k != "route") {
            check.push("top level", key, "unknown key (expected [[route]] rows)");
        }
        let mut rules = Vec::new();
        match doc.get("route") {
            Some(toml::Value::Array(rows)) => {
                for (i, row) in rows.iter().enumerate() {
                    if let Some(rule) = read_row(i, row, &mut check) {
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
        if !check.problems.is_empty() {
            return Err(Error::Invalid {
                source_name: source_name.to_string(),
                problems: check.problems,
            });
        }
        Ok(RoleTable {
            source_name: source_name.to_string(),
            rules,
        })
    }

    /// The shipped Label Studio table (`config/label-studio-role-routes.toml`).
    pub fn embedded() -> RoleTable {
        RoleTable::parse(
            include_str!("../../config/label-studio-role-routes.toml"),
            "config/label-studio-role-routes.toml (embedded)",
        )
        .expect("the embedded role table parses (tested)")
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// Row `index` (the `rule` of a refusal).
    pub fn rule(&self, index: usize) -> Option<&RoleRule> {
        self.rules.get(index)
    }

    /// Every row, in file order.
    pub fn rules(&self) -> impl Iterator<Item = &RoleRule> + '_ {
        self.rules.iter()
    }

    /// The role the request needs: over its method, every override method and (form POST)
    /// PUT/PATCH/DELETE, the highest role of the deciding rows, with that row. `None`: no row
    /// matches, any role passes. Allocates nothing.
    pub fn required(&self, req: &Request<'_>) -> Option<(Role, usize)> {
        let segs = Segments::split(req.path);
        let mut out: Option<(Role, usize)> = None;
        for_each_verb(req, |verb| {
            if let Some((index, rule)) = self.winner(&segs, verb, req.query) {
                if out.is_none_or(|(r, _)| rule.role > r) {
                    out = Some((rule.role, index));
                }
            }
        });
        out
    }

    /// Is `role` (the session's; `None`, `not_activated` and `deactivated` are below every
    /// role) enough for the request?
    pub fn decide(&self, req: &Request<'_>, role: Option<Role>) -> RoleDecision {
        let have = role.filter(|r| r.is_active());
        match self.required(req) {
            Some((needed, rule)) if have.is_none_or(|h| h < needed) => {
                RoleDecision::Refuse { needed, rule }
            }
            _ => RoleDecision::Allow,
        }
    }

    /// Human explanation of [`RoleTable::decide`] for a role claim as typed
    /// (`authgate explain-policy --role`; an unknown spelling is no role): the rows that match
    /// per method checked, the one that decides, and the outcome.
    pub fn explain(&self, req: &Request<'_>, role: Option<&str>) -> String {
        let have = role.and_then(Role::from_claim);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "role table: {} ({} routes)",
            self.source_name,
            self.len()
        );
        let _ = writeln!(
            out,
            "role: {}{}",
            role.unwrap_or("(none)"),
            if have.filter(|r| r.is_active()).is_none() {
                " (no role the table knows: below annotator)"
            } else {
                ""
            }
        );
        let segs = Segments::split(req.path);
        let mut verbs = Vec::new();
        for_each_verb(req, |v| verbs.push(v));
        for verb in verbs {
            let _ = writeln!(out, "\n{verb}:");
            let mut any = false;
            for (index, rule) in self.rules.iter().enumerate() {
                if rule.matches(&segs, verb, req.query) {
                    any = true;
                    let _ = writeln!(out, "  route[{index}] {rule}");
                    let _ = writeln!(
                        out,
                        "    family {}; edition {}; basis {}",
                        rule.family, rule.edition, rule.basis
                    );
                    if !rule.source.is_empty() {
                        let _ = writeln!(out, "    source: {}", super::excerpt(&rule.source));
                    }
                    if !rule.notes.is_empty() {
                        let _ = writeln!(out, "    notes: {}", super::excerpt(&rule.notes));
                    }
                }
            }
            if !any {
                let _ = writeln!(out, "  no role row matches {verb} on this path");
            }
            match self.winner(&segs, verb, req.query) {
                Some((index, rule)) => {
                    let _ = writeln!(
                        out,
                        "  => route[{index}] decides (the most specific; on a tie the higher role): needs {}",
                        rule.role
                    );
                }
                None => {
                    let _ = writeln!(out, "  => no row: any signed-in role");
                }
            }
        }
        let decision = match self.decide(req, have) {
            RoleDecision::Allow => match self.required(req) {
                Some((needed, rule)) => {
                    format!("allow: route[{rule}] needs {needed}, and {} is enough", role.unwrap_or("(none)"))
                }
                None => "allow: no row applies".to_string(),
            },
            RoleDecision::Refuse { needed, rule } => format!(
                "refuse by route[{rule}]: authgate answers 403 {{\"error\":\"role_required\",\"required_role\":\"{needed}\"}}"
            ),
        };
        let _ = writeln!(out, "\nrole decision: {decision}");
        out
    }

    /// The most specific row matching `verb` on the path; on a tie the higher role, then file
    /// order.
    fn winner(
        &self,
        segs: &Segments<'_>,
        verb: Verb<'_>,
        query: Option<&str>,
    ) -> Option<(usize, &RoleRule)> {
        let mut best: Option<(usize, &RoleRule)> = None;
        for (index, rule) in self.rules.iter().enumerate() {
            if !rule.matches(segs, verb, query) {
                continue;
            }
            let better = best.is_none_or(|(_, b)| (rule.rank, rule.role) > (b.rank, b.role));
            if better {
                best = Some((index, rule));
            }
        }
        best
    }
}

fn read_row(i: usize, row: &toml::Value, check: &mut Check) -> Option<RoleRule> {
    let (t, shown) = routes::row_table(i, row, &KEYS, check)?;
    let loc = shown.as_str();
    let before = check.problems.len();
    let path = check.string(t, loc, "path", true);
    let segments = path.as_deref().and_then(|p| match routes::compile_path(p) {
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
    let role = check
        .string(t, loc, "role", true)
        .and_then(|r| match required_role(&r) {
            Some(role) => Some(role),
            None => {
                check.push(
                    loc,
                    "role",
                    format!(
                        "`{r}`: expected one of {}",
                        Role::ALL.map(Role::as_str).join(", ")
                    ),
                );
                None
            }
        });
    // The widening rule of the route table (PATCH also covers PUT) applies: pass a refusing action.
    let methods = routes::read_methods(t, loc, Some(routes::Action::Deny), check);
    let family = check.string(t, loc, "family", true);
    if family.as_deref().is_some_and(str::is_empty) {
        check.push(loc, "family", "must not be empty");
    }
    let basis = check.string(t, loc, "basis", true);
    if let Some(b) = basis.as_deref() {
        if !BASES.contains(&b) {
            check.push(
                loc,
                "basis",
                format!("`{b}`: expected one of {}", BASES.join(", ")),
            );
        }
    }
    let edition = check.string(t, loc, "edition", false).unwrap_or_default();
    let source = check.string(t, loc, "source", false).unwrap_or_default();
    let notes = check.string(t, loc, "notes", false).unwrap_or_default();
    let query_param = check.string(t, loc, "query_param", false);
    let query_values = check.strings(t, loc, "query_values").unwrap_or_default();
    let query = match (query_param, query_values.is_empty()) {
        (None, true) => None,
        (Some(k), false) if !k.is_empty() => Some((k, query_values)),
        (Some(k), true) if !k.is_empty() => {
            check.push(
                loc,
                "query_values",
                "missing: the values query_param must have",
            );
            None
        }
        (Some(_), _) => {
            check.push(loc, "query_param", "must not be empty");
            None
        }
        (None, false) => {
            check.push(
                loc,
                "query_param",
                "missing: query_values needs the parameter's name",
            );
            None
        }
    };
    if query.is_some() && role == Some(Role::Owner) {
        check.push(
            loc,
            "query_param",
            "a query condition narrows a row to open an exception; an owner row opens nothing",
        );
    }
    if check.problems.len() != before {
        return None;
    }
    let segments = segments?;
    let kind = kind?;
    let literals = segments
        .iter()
        .filter(|s| matches!(s, Segment::Literal(_)))
        .count();
    Some(RoleRule {
        path: path?,
        rank: (kind == MatchKind::Exact, segments.len(), literals),
        segments,
        kind,
        methods: methods?,
        role: role?,
        family: family?,
        edition,
        basis: basis?,
        source,
        notes,
        query,
    })
}
