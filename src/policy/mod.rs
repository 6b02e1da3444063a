//! The "manual management disabled" policy on the upstream's own API.
//!
//! A route table (data: `config/label-studio-routes.toml`, embedded, replaceable with
//! `policy.routes_file`) is compiled once at start into a [`RouteTable`]; [`RouteTable::decide`]
//! then says, for one request, whether authgate answers it itself: 403 because the directory
//! manages that assignment ([`Decision::Deny`]), the upstream's own login page while authgate
//! owns login ([`Decision::Login`]), or the upstream's logout, which ends authgate's session too
//! ([`Decision::Logout`]). It applies to every caller, including requests that carry the
//! upstream's own API token, and runs before the session is looked at.
//!
//! The decision is pure and cheap: no I/O (the caller reads a replacement table and passes its
//! text), no session or identity, no other authgate module (but the leaf [`crate::role`]), and
//! no allocation when no row matches. Matching is a safe superset of how Django routes
//! (case-insensitive, `;param` cut, `.json`-style suffixes, trailing slash optional, every
//! method-override channel counted); the file header of the table documents the rules, and
//! [`RouteTable::explain`] shows them at work (`authgate explain-policy METHOD PATH`).
//!
//! What the proxy must hand over (see [`Request`]): the *normalized* path it forwards, the query,
//! the method, every override method ([`override_methods`] collects them) and whether a POST
//! carries a form body ([`is_form_content_type`]).

mod matcher;
#[cfg(test)]
mod role_tests;
mod roles;
mod routes;
mod settings;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use matcher::{Segments, Verb, DELETE, PATCH, POST, PUT};
use routes::{Action, Compiled, Governor, Via};

pub use roles::{Role, RoleDecision, RoleRule, RoleTable};
pub use routes::{Error, Problem, Rule};
pub use settings::Settings;

/// The switches that arm route rows, taken from the configuration at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switches {
    /// `policy.manual_role_management` (`MANUAL_ROLE_MANAGEMENT`): false = the directory manages
    /// organization roles, so the upstream routes that change them are refused.
    pub manual_role_management: bool,
    /// `policy.manual_workspace_management`: false = workspace memberships are the directory's.
    pub manual_workspace_management: bool,
    /// `policy.manual_project_member_management`: false = project members are the directory's.
    pub manual_project_member_management: bool,
    /// `policy.disable_signup_without_link` (`DISABLE_SIGNUP_WITHOUT_LINK`): true = the upstream's
    /// signup only with an invite link; invite links and other account creation refused.
    pub disable_signup_without_link: bool,
    /// True when LDAP or SAML login is on: the upstream's own login, signup, password reset and
    /// admin routes are refused (login pages send browsers to `/_auth/login`).
    pub native_login_disabled: bool,
    /// True when authgate owns SSO: the upstream's own SAML/SCIM settings and runtime routes are
    /// refused. The configuration should default it to `native_login_disabled`.
    pub app_sso_disabled: bool,
    /// `policy.switches`: switch name → true to carry out the action of the `policy`/`intercept`
    /// rows that name it while they are armed (policy rows: refuse; intercept rows: end the
    /// authgate session too), false to forward. Names not given keep the table's default; check
    /// the names at start with [`RouteTable::check_overrides`].
    pub overrides: BTreeMap<String, bool>,
}

impl Default for Switches {
    /// The documented configuration defaults: everything managed manually, nothing armed.
    fn default() -> Self {
        Switches {
            manual_role_management: true,
            manual_workspace_management: true,
            manual_project_member_management: true,
            disable_signup_without_link: false,
            native_login_disabled: false,
            app_sso_disabled: false,
            overrides: BTreeMap::new(),
        }
    }
}

/// One request, as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a http::Method,
    /// The normalized path, exactly as it will be forwarded (no query).
    pub path: &'a str,
    /// The raw query string (without `?`), if any.
    pub query: Option<&'a str>,
    /// Methods named by `X-HTTP-Method-Override` / `X-Method-Override` headers and `_method`
    /// query parameters (see [`override_methods`]); each is checked as if it were the method.
    pub override_methods: &'a [http::Method],
    /// A POST whose content type is a form ([`is_form_content_type`]): a `_method` field may hide
    /// in the body, so PUT, PATCH and DELETE are checked too.
    pub form_body: bool,
}

impl<'a> Request<'a> {
    /// A request with no query, no override and no form body.
    pub fn new(method: &'a http::Method, path: &'a str) -> Self {
        Request {
            method,
            path,
            query: None,
            override_methods: &[],
            form_body: false,
        }
    }
}

/// What authgate does with a request. `rule` is the deciding row's index in the table
/// (`route[i]`, 0-based in file order; [`RouteTable::rule`] gives it back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward (the rest of the pipeline still applies).
    Allow,
    /// 403 by authgate: `{"error":"managed_by_directory","reason":<reason>}` (or a page).
    /// `reason` is the armed switch: `manual_role_management`, `manual_workspace_management`,
    /// `manual_project_member_management`, `disable_signup_without_link`, `native_login`,
    /// `app_sso_settings`, `app_sso_runtime`; for a policy row armed by nothing but its own
    /// switch, the switch name (e.g. `deny_user_update`).
    Deny { reason: String, rule: usize },
    /// The upstream's own login (or signup, password reset, SSO entry) page while authgate owns
    /// login: browsers are redirected to `/_auth/login`, other clients get 403.
    Login { rule: usize },
    /// The upstream's logout: authgate ends its own session too (intercept).
    Logout { rule: usize },
}

impl Decision {
    /// Deny > Login > Logout > Allow: the outcome kept when several methods or rows disagree.
    fn severity(&self) -> u8 {
        match self {
            Decision::Allow => 0,
            Decision::Logout { .. } => 1,
            Decision::Login { .. } => 2,
            Decision::Deny { .. } => 3,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allow => f.write_str("allow: forwarded to the upstream"),
            Decision::Deny { reason, rule } => write!(
                f,
                "deny by route[{rule}]: authgate answers 403 {{\"error\":\"managed_by_directory\",\"reason\":\"{reason}\"}}"
            ),
            Decision::Login { rule } => write!(
                f,
                "login by route[{rule}]: browsers are redirected to /_auth/login, other clients get 403"
            ),
            Decision::Logout { rule } => write!(
                f,
                "logout by route[{rule}]: authgate ends its own session too"
            ),
        }
    }
}

/// Header names whose values name an override method, in lower case.
pub const OVERRIDE_HEADERS: [&str; 2] = ["x-http-method-override", "x-method-override"];

/// Query (and form) parameter naming an override method.
pub const OVERRIDE_PARAM: &str = "_method";

/// Every method a request names besides its own: all values of [`OVERRIDE_HEADERS`] (comma
/// separated lists included; `_` in the name counts as `-`) and of every `_method` query
/// parameter (key compared
/// case-insensitively). Values that are not method tokens are ignored: no framework would act on
/// them.
pub fn override_methods(headers: &http::HeaderMap, query: Option<&str>) -> Vec<http::Method> {
    let mut out = Vec::new();
    let mut push = |raw: &[u8]| {
        for part in raw.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if let Ok(m) = http::Method::from_bytes(part) {
                out.push(m);
            }
        }
    };
    // Every spelling of the names: WSGI/CGI servers turn `X_HTTP_Method_Override` into the
    // same `HTTP_X_HTTP_METHOD_OVERRIDE` variable as the dash spelling.
    for (name, value) in headers {
        if OVERRIDE_HEADERS
            .iter()
            .any(|want| same_header_name(name.as_str(), want))
        {
            push(value.as_bytes());
        }
    }
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if matcher::form_decode(key).eq_ignore_ascii_case(OVERRIDE_PARAM.as_bytes()) {
            push(&matcher::form_decode(value));
        }
    }
    out
}

/// `name` (lower case, as `http` stores it) is `want` with any `-` spelled `_`.
fn same_header_name(name: &str, want: &str) -> bool {
    name.len() == want.len()
        && name
            .bytes()
            .zip(want.bytes())
            .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
}

/// Is this `Content-Type` a form, whose body may carry a `_method` field?
pub fn is_form_content_type(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        || media.eq_ignore_ascii_case("multipart/form-data")
}

/// How one row treated one request method (for `decide` and `explain`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// None of the row's switches is armed: the row does not take part.
    NotArmed,
    /// Armed only by `disable_signup_without_link`, and the query carries the invite link.
    InviteLink,
    /// Reached only through "PATCH covers PUT", and would allow: does not take part.
    WidenedAllow,
    Outcome(Decision),
}

/// The best row so far for one method: ordered by (specificity, severity), then file order.
struct Best {
    key: ((bool, usize, usize), u8),
    index: usize,
    decision: Decision,
}

/// The compiled route table. Built once at start; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct RouteTable {
    source_name: String,
    compiled: Compiled,
}

impl RouteTable {
    /// Compiles a table. Every problem is reported at once, naming `source_name`, the route
    /// (`route[i]` and its path) and the field.
    pub fn parse(text: &str, source_name: &str) -> Result<RouteTable, Error> {
        Ok(RouteTable {
            source_name: source_name.to_string(),
            compiled: routes::compile(text, source_name)?,
        })
    }

    /// The shipped Label Studio table (`config/label-studio-routes.toml`).
    pub fn embedded() -> RouteTable {
        RouteTable::parse(
            include_str!("../../config/label-studio-routes.toml"),
            "config/label-studio-routes.toml (embedded)",
        )
        .expect("the embedded route table parses (tested)")
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.compiled.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.compiled.rules.is_empty()
    }

    /// Where the table came from, as given to [`RouteTable::parse`].
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// Row `index` (the `rule` of a [`Decision`]).
    pub fn rule(&self, index: usize) -> Option<&Rule> {
        self.compiled.rules.get(index)
    }

    /// The switch of row `index` (policy and intercept rows only): its name and the table's
    /// default, before `policy.switches` overrides it.
    pub fn rule_switch(&self, index: usize) -> Option<(&str, bool)> {
        let rule = self.compiled.rules.get(index)?;
        let def = self.compiled.switches.get(rule.switch?)?;
        Some((def.name.as_str(), def.default))
    }

    /// The switches of the policy/intercept rows: (name, default, description).
    pub fn switches(&self) -> impl Iterator<Item = (&str, bool, &str)> + '_ {
        self.compiled
            .switches
            .iter()
            .map(|s| (s.name.as_str(), s.default, s.description.as_str()))
    }

    /// Start-up check of `policy.switches`: every name must be a switch of this table.
    pub fn check_overrides(&self, overrides: &BTreeMap<String, bool>) -> Result<(), Error> {
        routes::check_overrides(&self.compiled, &self.source_name, overrides)
    }

    /// Decides one request: the strictest outcome over its method, every override method and,
    /// for a form POST, PUT/PATCH/DELETE. Allocates only to name the reason of a denial.
    pub fn decide(&self, req: &Request<'_>, sw: &Switches) -> Decision {
        let segs = Segments::split(req.path);
        let mut result = Decision::Allow;
        for_each_verb(req, |verb| {
            if let Some((_, d)) = self.decide_verb(&segs, verb, req, sw, None) {
                if d.severity() > result.severity() {
                    result = d;
                }
            }
        });
        result
    }

    /// Human explanation of [`RouteTable::decide`]: the methods checked, every row that matches
    /// the path and method (with its switches, action, source and notes), which one decides and
    /// why, and the outcome.
    pub fn explain(&self, req: &Request<'_>, sw: &Switches) -> String {
        let mut out = String::new();
        let query = req.query.map(|q| format!("?{q}")).unwrap_or_default();
        let _ = writeln!(out, "request: {} {}{query}", req.method, req.path);
        let segs = Segments::split(req.path);
        let shown: Vec<&str> = (0..segs.len().min(matcher::MAX_SEGMENTS))
            .map(|i| segs.get(i))
            .collect();
        let _ = writeln!(
            out,
            "path segments as matched: [{}]{}",
            shown.join(", "),
            if segs.len() > matcher::MAX_SEGMENTS {
                " ..."
            } else {
                ""
            }
        );
        let mut verbs = Vec::new();
        for_each_verb(req, |v| verbs.push(v));
        let names: Vec<String> = verbs.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "methods checked: {} (HEAD counts as GET; override headers, _method and form bodies add methods)",
            names.join(", ")
        );
        let armed: Vec<&str> = [
            Governor::ManualRoleManagement,
            Governor::ManualWorkspaceManagement,
            Governor::ManualProjectMemberManagement,
            Governor::DisableSignupWithoutLink,
            Governor::NativeLogin,
            Governor::AppSsoSettings,
            Governor::AppSsoRuntime,
        ]
        .into_iter()
        .filter(|g| g.active(sw))
        .map(Governor::name)
        .collect();
        let _ = writeln!(
            out,
            "armed switches: {}",
            if armed.is_empty() {
                "none".to_string()
            } else {
                armed.join(", ")
            }
        );
        let _ = writeln!(
            out,
            "route table: {} ({} routes)",
            self.source_name,
            self.len()
        );

        let mut result = Decision::Allow;
        for verb in verbs {
            let _ = writeln!(out, "\n{verb}:");
            let mut trace = Vec::new();
            let winner = self.decide_verb(&segs, verb, req, sw, Some(&mut trace));
            if trace.is_empty() {
                let _ = writeln!(out, "  no route matches {verb} on this path");
            }
            for (index, verdict) in &trace {
                self.explain_row(&mut out, *index, verdict, req, sw);
            }
            match &winner {
                Some((index, d)) => {
                    let rank = self.compiled.rules.get(*index).map_or(String::new(), |r| {
                        let (exact, segments, literals) = r.rank();
                        format!(
                            "{}, {segments} segments, {literals} literal",
                            if exact { "exact" } else { "prefix" }
                        )
                    });
                    let _ = writeln!(
                        out,
                        "  => route[{index}] ({rank}) decides, as the most specific armed route (exact over prefix, then more segments, then more literal segments; on a tie the stricter outcome): {d}"
                    );
                    if d.severity() > result.severity() {
                        result = d.clone();
                    }
                }
                None => {
                    let _ = writeln!(out, "  => no armed route: allow");
                }
            }
        }
        let _ = writeln!(
            out,
            "\ndecision: {result}{}",
            if names.len() > 1 {
                " (the strictest over the methods checked)"
            } else {
                ""
            }
        );
        out
    }

    fn explain_row(
        &self,
        out: &mut String,
        index: usize,
        verdict: &Verdict,
        req: &Request<'_>,
        sw: &Switches,
    ) {
        let Some(rule) = self.compiled.rules.get(index) else {
            return;
        };
        let _ = writeln!(out, "  route[{index}] {rule}");
        let governors: Vec<String> = rule
            .governors()
            .map(|g| {
                format!(
                    "{} ({}: {})",
                    g.name(),
                    g.state(sw),
                    if g.active(sw) { "armed" } else { "not armed" }
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "    governed by {}; family {}{}",
            governors.join(", "),
            rule.family,
            if rule.basis.is_empty() {
                String::new()
            } else {
                format!("; basis {}", rule.basis)
            }
        );
        if let Some(def) = rule.switch.and_then(|s| self.compiled.switches.get(s)) {
            let value = sw.overrides.get(&def.name).copied();
            let _ = writeln!(
                out,
                "    switch {} = {} ({}): {}",
                def.name,
                value.unwrap_or(def.default),
                if value.is_some() {
                    "set in policy.switches"
                } else {
                    "table default"
                },
                def.description
            );
        }
        if !rule.source.is_empty() {
            let _ = writeln!(out, "    source: {}", excerpt(&rule.source));
        }
        if !rule.notes.is_empty() {
            let _ = writeln!(out, "    notes: {}", excerpt(&rule.notes));
        }
        let why = match verdict {
            Verdict::NotArmed => "not armed: takes no part".to_string(),
            Verdict::InviteLink => format!(
                "armed only by disable_signup_without_link and the query carries a non-empty `{}` (invite link): takes no part",
                rule.invite_param.as_deref().unwrap_or("")
            ),
            Verdict::WidenedAllow => {
                "reached only as PUT-for-PATCH and would allow: takes no part".to_string()
            }
            Verdict::Outcome(d) => {
                let mut s = format!("armed: {}", d);
                if rule.login_page && !matches!(d, Decision::Login { .. }) && d != &Decision::Allow
                {
                    s.push_str(" (a login page, but authgate does not own login: 403)");
                }
                if rule.invite_param.is_some() && matches!(d, Decision::Deny { .. } | Decision::Login { .. }) {
                    let _ = write!(
                        s,
                        " (invite link in the query: {})",
                        if matcher::query_param_nonempty(
                            req.query,
                            rule.invite_param.as_deref().unwrap_or("")
                        ) {
                            "present, but another armed switch refuses signup"
                        } else {
                            "absent"
                        }
                    );
                }
                s
            }
        };
        let _ = writeln!(out, "    -> {why}");
    }

    /// Rows indexed under the path's first two segments, then the rows starting with a parameter.
    /// A segment may match several keys (`users.json` matches `users`, and `users.json` if some
    /// template spells it), so every matching key is walked.
    fn candidates<'s>(&'s self, segs: &'s Segments<'_>) -> impl Iterator<Item = usize> + 's {
        let first: Option<&'s str> = (segs.len() > 0).then(|| segs.get(0));
        let second: Option<&'s str> = (segs.len() > 1).then(|| segs.get(1));
        self.compiled
            .buckets
            .iter()
            .filter(move |b| first.is_some_and(|f| matcher::literal_eq(f, &b.key, segs.is_last(0))))
            .flat_map(move |b| {
                b.by_second
                    .iter()
                    .filter(move |(key, _)| {
                        second.is_some_and(|s| matcher::literal_eq(s, key, segs.is_last(1)))
                    })
                    .flat_map(|(_, list)| list.iter().copied())
                    .chain(b.rest.iter().copied())
            })
            .chain(self.compiled.wildcard.iter().copied())
    }

    /// The winning row for one method: among the armed rows matching path and method, the most
    /// specific; on a tie the stricter outcome, then file order.
    fn decide_verb(
        &self,
        segs: &Segments<'_>,
        verb: Verb<'_>,
        req: &Request<'_>,
        sw: &Switches,
        mut trace: Option<&mut Vec<(usize, Verdict)>>,
    ) -> Option<(usize, Decision)> {
        let mut best: Option<Best> = None;
        for index in self.candidates(segs) {
            let Some(rule) = self.compiled.rules.get(index) else {
                continue;
            };
            // The method first: a bit test rules out most rows before any byte is compared.
            let Some(via) = rule.methods.matches(verb) else {
                continue;
            };
            if !rule.path_matches(segs) {
                continue;
            }
            let verdict = self.verdict(index, rule, via, req, sw);
            if let Some(t) = trace.as_deref_mut() {
                t.push((index, verdict.clone()));
            }
            let Verdict::Outcome(decision) = verdict else {
                continue;
            };
            let candidate = Best {
                key: (rule.rank(), decision.severity()),
                index,
                decision,
            };
            let better = best.as_ref().is_none_or(|b| {
                candidate.key > b.key || (candidate.key == b.key && candidate.index < b.index)
            });
            if better {
                best = Some(candidate);
            }
        }
        best.map(|b| (b.index, b.decision))
    }

    fn verdict(
        &self,
        index: usize,
        rule: &Rule,
        via: Via,
        req: &Request<'_>,
        sw: &Switches,
    ) -> Verdict {
        let Some(first_armed) = rule.governors().find(|g| g.active(sw)) else {
            return Verdict::NotArmed;
        };
        let enforce = match rule.action {
            Action::Allow => false,
            Action::Deny => true,
            Action::Policy | Action::Intercept => self.switch_on(rule, sw),
        };
        let decision = if !enforce {
            Decision::Allow
        } else if rule.action == Action::Intercept {
            Decision::Logout { rule: index }
        } else if self.invite_link_exempts(rule, req, sw) {
            return Verdict::InviteLink;
        } else if rule.login_page && sw.native_login_disabled {
            Decision::Login { rule: index }
        } else {
            let reason = match first_armed {
                Governor::None => rule
                    .switch
                    .and_then(|s| self.compiled.switches.get(s))
                    .map_or("policy", |s| s.name.as_str()),
                g => g.name(),
            };
            Decision::Deny {
                reason: reason.to_string(),
                rule: index,
            }
        };
        if via == Via::Widened && decision == Decision::Allow {
            return Verdict::WidenedAllow;
        }
        Verdict::Outcome(decision)
    }

    fn switch_on(&self, rule: &Rule, sw: &Switches) -> bool {
        match rule.switch.and_then(|s| self.compiled.switches.get(s)) {
            Some(def) => sw.overrides.get(&def.name).copied().unwrap_or(def.default),
            // Compilation guarantees a switch on every policy/intercept row; refuse if not.
            None => true,
        }
    }

    /// The signup row lets an invite link through only while `disable_signup_without_link` is
    /// its one armed switch (with LDAP/SAML on, accounts come from the directory).
    fn invite_link_exempts(&self, rule: &Rule, req: &Request<'_>, sw: &Switches) -> bool {
        let Some(param) = rule.invite_param.as_deref() else {
            return false;
        };
        rule.governors()
            .filter(|g| g.active(sw))
            .all(|g| g == Governor::DisableSignupWithoutLink)
            && matcher::query_param_nonempty(req.query, param)
    }
}

/// The request's method, every override method, and PUT/PATCH/DELETE for a form POST.
fn for_each_verb<'r>(req: &Request<'r>, mut f: impl FnMut(Verb<'r>)) {
    let base = matcher::verb(req.method.as_str());
    let mut post = base == Verb::Known(POST);
    f(base);
    for m in req.override_methods {
        let v = matcher::verb(m.as_str());
        post |= v == Verb::Known(POST);
        f(v);
    }
    if req.form_body && post {
        for bit in [PUT, PATCH, DELETE] {
            f(Verb::Known(bit));
        }
    }
}

/// The first 160 characters of a long field.
fn excerpt(s: &str) -> String {
    const MAX: usize = 160;
    match s.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}
