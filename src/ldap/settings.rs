//! `[ldap]` as the rest of authgate reads it (built by `config`).

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryField {
    Email,
    Username,
}

/// `ldap.require_cert` (`OPT_X_TLS_REQUIRE_CERT`), with OpenLDAP's meaning
/// (ldap.conf(5), TLS_REQCERT): `try`, `demand` and `hard` end the session
/// on a bad certificate; only `allow` and `never` carry on with one. A
/// directory always presents a certificate, so `try` behaves as `demand`
/// and `allow` as `never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequireCert {
    /// `never` (python-ldap `OPT_X_TLS_NEVER` = 0): not verified.
    Never,
    /// `hard` (`OPT_X_TLS_HARD` = 1): verified.
    Hard,
    /// `demand` (`OPT_X_TLS_DEMAND` = 2, the default): verified.
    Demand,
    /// `allow` (`OPT_X_TLS_ALLOW` = 3): a bad certificate is ignored.
    Allow,
    /// `try` (`OPT_X_TLS_TRY` = 4): a bad certificate ends the session.
    Try,
}

impl RequireCert {
    /// Every spelling an operator writes: `try`, `TRY`, `OPT_X_TLS_TRY`,
    /// `ldap.OPT_X_TLS_TRY` (as in a python-ldap settings file) and the
    /// python-ldap constant's value `4`. Empty means the default, `demand`.
    pub fn parse(text: &str) -> Option<RequireCert> {
        let t = text.trim();
        if t.is_empty() {
            return Some(RequireCert::Demand);
        }
        let t = t.strip_prefix("ldap.").unwrap_or(t);
        let t = t.to_ascii_lowercase();
        let t = t.strip_prefix("opt_x_tls_").unwrap_or(&t);
        Some(match t {
            "never" | "0" => RequireCert::Never,
            "hard" | "1" => RequireCert::Hard,
            "demand" | "2" => RequireCert::Demand,
            "allow" | "3" => RequireCert::Allow,
            "try" | "4" => RequireCert::Try,
            _ => return None,
        })
    }

    /// Whether the directory's certificate and host name are verified.
    pub fn verifies(self) -> bool {
        !matches!(self, RequireCert::Never | RequireCert::Allow)
    }

    /// The OpenLDAP name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequireCert::Never => "never",
            RequireCert::Hard => "hard",
            RequireCert::Demand => "demand",
            RequireCert::Allow => "allow",
            RequireCert::Try => "try",
        }
    }
}

#[derive(Debug, Clone)]
/// `[ldap]`: the directory, how users and groups are found, limits.
pub struct Settings {
    pub enabled: bool,
    /// As written (for messages).
    pub server_uri: String,
    /// Every URI of `server_uri`, in the order they are tried.
    pub server_uris: Vec<String>,
    pub bind_dn: String,
    pub bind_password: Secret<String>,
    pub start_tls: bool,
    /// `None` = search mode.
    pub user_dn_template: Option<String>,
    pub user_search_bases: Vec<String>,
    pub use_username_for_login: bool,
    pub user_query_field: QueryField,
    pub attr_first_name: String,
    pub attr_last_name: String,
    pub attr_email: String,
    pub attr_username: String,
    pub group_search_base_dn: String,
    pub group_search_filter: String,
    /// As written (`member`, `ou`, ...).
    pub group_type: String,
    /// What `group_type` means.
    pub group_kind: GroupType,
    pub organization_owner_email: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub require_cert: RequireCert,
    pub timeout: Duration,
    /// Per server, at most `timeout` over all servers.
    pub connect_timeout: Duration,
    pub failover_backoff: Duration,
    pub refresh_interval: Duration,
    pub pool_size: usize,
    pub max_group_depth: usize,
    pub max_failures: u32,
    pub max_failures_per_client: u32,
    pub throttle_window: Duration,
}

/// How group membership is stored (`ldap.group_type`, `AUTH_LDAP_GROUP_TYPE`).
/// Names follow django-auth-ldap's group type classes; every accepted
/// spelling is listed in [`GroupType::parse`] and in the README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupType {
    /// Groups whose `attr` (`member`, `uniqueMember`) holds the user's DN
    /// (groupOfNames, groupOfUniqueNames, Active Directory groups).
    /// `name_attr` is django-auth-ldap's `GroupOfNamesType(name_attr=...)`
    /// (the seed's `ou`); groups are matched by DN, so it only documents.
    MemberDn {
        attr: &'static str,
        name_attr: String,
    },
    /// posixGroup: `memberUid` holds the user's `uid`, or the user's
    /// `gidNumber` is the group's (primary group).
    Posix,
    /// The user entry's `memberOf` values (OpenLDAP memberof overlay,
    /// Active Directory), kept when under the group search base.
    MemberOf,
    /// Like `MemberDn`, then groups that contain those groups, recursively
    /// (cycle guard, `ldap.max_group_depth` levels).
    Nested { attr: &'static str },
    /// Active Directory's transitive rule `member:1.2.840.113556.1.4.1941:`
    /// (LDAP_MATCHING_RULE_IN_CHAIN): one search, resolved by the server.
    ActiveDirectoryNested,
}
impl GroupType {
    /// The accepted values, case-insensitive.
    pub fn parse(s: &str) -> Option<GroupType> {
        let member = |name_attr: &str| GroupType::MemberDn {
            attr: "member",
            name_attr: name_attr.to_string(),
        };
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "member" | "groupofnames" | "groupofnamestype" | "memberdngrouptype" => member("cn"),
            "activedirectory" | "activedirectorygrouptype" => member("cn"),
            "ou" => member("ou"),
            "cn" => member("cn"),
            "uniquemember" | "groupofuniquenames" | "groupofuniquenamestype" => {
                GroupType::MemberDn {
                    attr: "uniqueMember",
                    name_attr: "cn".into(),
                }
            }
            "memberuid" | "posixgroup" | "posixgrouptype" => GroupType::Posix,
            "memberof" => GroupType::MemberOf,
            "nested"
            | "nestedgroupofnames"
            | "nestedgroupofnamestype"
            | "nestedmemberdngrouptype" => GroupType::Nested { attr: "member" },
            "nesteduniquemember" | "nestedgroupofuniquenames" | "nestedgroupofuniquenamestype" => {
                GroupType::Nested {
                    attr: "uniqueMember",
                }
            }
            "nestedactivedirectory"
            | "nestedactivedirectorygrouptype"
            | "memberof_in_chain"
            | "1.2.840.113556.1.4.1941" => GroupType::ActiveDirectoryNested,
            _ => return None,
        })
    }
}
