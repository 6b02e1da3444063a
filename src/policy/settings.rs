//! `[policy]` as the rest of authgate reads it (built by `config`).

use super::{RoleTable, RouteTable};

#[derive(Debug)]
/// `[policy]`: the route and role tables and the management switches.
pub struct Settings {
    pub public_paths: Vec<String>,
    pub allow_upstream_tokens: bool,
    pub manual_role_management: bool,
    pub manual_workspace_management: bool,
    pub manual_project_member_management: bool,
    pub disable_signup_without_link: bool,
    pub routes: RouteTable,
    pub switches: std::collections::BTreeMap<String, bool>,
    /// `policy.enforce_roles`, its default resolved: on when `manual_role_management` is false.
    pub enforce_roles: bool,
    /// The role table (`policy.role_routes_file`, or the embedded one).
    pub role_routes: RoleTable,
}
