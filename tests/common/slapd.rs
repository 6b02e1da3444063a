//! A private OpenLDAP server (Debian `slapd`): its own slapd.conf, mdb
//! database and TLS material (`pki::write_ca_and_server`: a CA, a server
//! certificate for IP 127.0.0.1, and a wrong CA) under a temp dir, on free
//! loopback ports, with `ldap://` (StartTLS offered) and `ldaps://`. Never
//! touches the system slapd. The directory: `directory_ldif` (see
//! `tests/ldap.rs` for who is in which group).
//!
//! slapd runs under a small shell watchdog that kills it when the test
//! process goes away, so a server shared through a `static` does not
//! outlive the test binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::pki::write_ca_and_server;
use super::ports::free_port;
use super::process::{run, wait_port, Proc};

pub const SUFFIX: &str = "dc=com";
pub const ROOT_DN: &str = "cn=root,dc=com";
pub const ROOT_PW: &str = "root-secret";
pub const USERS: &str = "ou=users,o=123abc,dc=example,dc=com";
pub const SVC_DN: &str = "uid=svc,ou=sysadmins,o=123abc,dc=example,dc=com";
pub const SVC_PW: &str = "svc-secret";
pub const PASSWORD: &str = "Passw0rd!";
pub const TEAMS: &str = "ou=users,o=60cbc901ec2e8e387a3b2d3e,dc=jumpcloud,dc=com";

pub struct Slapd {
    pub dir: tempfile::TempDir,
    pub ldap_port: u16,
    pub ldaps_port: u16,
    /// The CA that signed the server certificate.
    pub ca: PathBuf,
    /// A CA that did not.
    pub wrong_ca: PathBuf,
    proc: Mutex<Option<Proc>>,
}

impl Slapd {
    /// Generates TLS material, writes the configuration, starts slapd,
    /// waits until it answers, and loads [`directory_ldif`].
    pub fn start() -> Slapd {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        write_ca_and_server(d);
        std::fs::create_dir_all(d.join("db")).expect("db dir");
        let conf = format!(
            r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload refint
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
TLSCACertificateFile {d}/ca.pem
TLSCertificateFile {d}/server.pem
TLSCertificateKeyFile {d}/server.key
database mdb
maxsize 67108864
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {d}/db
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
overlay refint
refint_attributes member uniqueMember
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"#,
            d = d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).expect("conf");
        let s = Slapd {
            ldap_port: free_port(),
            ldaps_port: free_port(),
            ca: d.join("ca.pem"),
            wrong_ca: d.join("wrong-ca.pem"),
            dir,
            proc: Mutex::new(None),
        };
        s.spawn();
        s.ldapmodify(&directory_ldif());
        s
    }

    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    fn spawn(&self) {
        let d = self.dir.path();
        let urls = format!(
            "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
            self.ldap_port, self.ldaps_port
        );
        let watchdog = r#"p=$1; shift; "$@" & c=$!; trap 'kill $c 2>/dev/null; wait $c; exit 0' TERM INT; while kill -0 "$p" 2>/dev/null && kill -0 "$c" 2>/dev/null; do sleep 0.2; done; kill $c 2>/dev/null; wait $c"#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(watchdog)
            .arg("slapd-watchdog")
            .arg(std::process::id().to_string())
            .arg("/usr/sbin/slapd")
            .arg("-d")
            .arg("0")
            .arg("-h")
            .arg(&urls)
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("slapd.log")).expect("log"));
        // SIGTERM on drop: the watchdog then stops slapd and waits for it.
        let proc = Proc::spawn(&mut cmd, "start slapd (Debian package slapd)").terminate_on_drop();
        *self.proc.lock().expect("lock") = Some(proc);
        self.wait_until(true);
    }

    /// Waits (bounded) until the ldap port accepts (`up`) or refuses connections.
    fn wait_until(&self, up: bool) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ldap_port));
        if !wait_port(addr, up, Duration::from_secs(20)) {
            let log =
                std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default();
            panic!(
                "slapd did not become {}: {log}",
                if up { "ready" } else { "stopped" }
            );
        }
    }

    /// Stops slapd (the database stays).
    pub fn stop(&self) {
        if let Some(mut p) = self.proc.lock().expect("lock").take() {
            p.terminate(Duration::from_secs(10));
        }
        self.wait_until(false);
    }

    /// Starts it again on the same ports with the same data.
    pub fn restart(&self) {
        self.spawn();
    }

    /// `ldapmodify -a` as the root DN (LDIF may mix adds and changes).
    pub fn ldapmodify(&self, ldif: &str) {
        let path = self
            .dir
            .path()
            .join(format!("change-{}.ldif", rand_suffix()));
        std::fs::write(&path, ldif).expect("ldif");
        run(Command::new("ldapmodify")
            .arg("-a")
            .arg("-x")
            .arg("-H")
            .arg(self.ldap_url())
            .arg("-D")
            .arg(ROOT_DN)
            .arg("-w")
            .arg(ROOT_PW)
            .arg("-f")
            .arg(&path));
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn person(uid_rdn: &str, uid: &str, given: &str, sn: &str, mail: &str) -> String {
    format!(
        "dn: uid={uid_rdn},{USERS}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {given} {sn}\ngivenName: {given}\nsn: {sn}\nmail: {mail}\nuserPassword: {PASSWORD}\n\n"
    )
}

fn group(cn: &str, base: &str, members: &[String]) -> String {
    let mut s =
        format!("dn: cn={cn},{base}\nchangetype: add\nobjectClass: groupOfNames\ncn: {cn}\n");
    for m in members {
        s.push_str(&format!("member: {m}\n"));
    }
    s.push('\n');
    s
}

pub fn user_dn(uid_rdn: &str) -> String {
    format!("uid={uid_rdn},{USERS}")
}

pub fn group_dn(cn: &str) -> String {
    format!("cn={cn},{USERS}")
}

/// The test directory (see `tests/ldap.rs` for who is in which group).
pub fn directory_ldif() -> String {
    let mut l = format!(
        "dn: {SUFFIX}\nchangetype: add\nobjectClass: dcObject\nobjectClass: organization\ndc: com\no: com\n\n\
dn: dc=example,dc=com\nchangetype: add\nobjectClass: domain\ndc: example\n\n\
dn: o=123abc,dc=example,dc=com\nchangetype: add\nobjectClass: organization\no: 123abc\n\n\
dn: {USERS}\nchangetype: add\nobjectClass: organizationalUnit\nou: users\n\n\
dn: ou=sysadmins,o=123abc,dc=example,dc=com\nchangetype: add\nobjectClass: organizationalUnit\nou: sysadmins\n\n\
dn: {SVC_DN}\nchangetype: add\nobjectClass: account\nobjectClass: simpleSecurityObject\nuid: svc\nuserPassword: {SVC_PW}\n\n\
dn: dc=jumpcloud,dc=com\nchangetype: add\nobjectClass: domain\ndc: jumpcloud\n\n\
dn: o=60cbc901ec2e8e387a3b2d3e,dc=jumpcloud,dc=com\nchangetype: add\nobjectClass: organization\no: 60cbc901ec2e8e387a3b2d3e\n\n\
dn: {TEAMS}\nchangetype: add\nobjectClass: organizationalUnit\nou: users\n\n"
    );
    for u in [
        "admin1",
        "manager1",
        "reviewer1",
        "annotator1",
        "guest1",
        "multi",
        "deact",
        "nogroup",
        "notact",
        "nested1",
        "uniq1",
        "owner",
        "mover",
        "deleteme",
    ] {
        let mail = if u == "owner" {
            "heartex@heartex.net".to_string()
        } else {
            format!("{u}@example.com")
        };
        l.push_str(&person(u, u, &format!("{u}-given"), "Tester", &mail));
    }
    // Values that need escaping in DNs (RFC 4514) and filters (RFC 4515).
    l.push_str(&person(
        "o'brien",
        "o'brien",
        "Conan",
        "O'Brien",
        "obrien@example.com",
    ));
    l.push_str(&person(
        "a*b",
        "a*b",
        "Asterisk",
        "Star",
        "astar@example.com",
    ));
    l.push_str(&person(
        "x(y)",
        "x(y)",
        "Paren",
        "Thesis",
        "paren@example.com",
    ));
    l.push_str(&person(
        "juergen",
        "juergen",
        "Jürgen",
        "Müller",
        "juergen@example.com",
    ));
    // A posix account in a posixGroup.
    l.push_str(&format!(
        "dn: uid=posix1,{USERS}\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: posix1\ncn: Posix One\ngivenName: Posix\nsn: One\nmail: posix1@example.com\nuidNumber: 5001\ngidNumber: 6000\nhomeDirectory: /home/posix1\nuserPassword: {PASSWORD}\n\n\
dn: cn=posix-reviewers,{USERS}\nchangetype: add\nobjectClass: posixGroup\ncn: posix-reviewers\ngidNumber: 5000\nmemberUid: posix1\n\n"
    ));
    let u = |x: &str| user_dn(x);
    l.push_str(&group("admins", USERS, &[u("admin1"), u("deact")]));
    l.push_str(&group(
        "managers",
        USERS,
        &[u("manager1"), u("multi"), u("mover")],
    ));
    l.push_str(&group("reviewers", USERS, &[u("reviewer1"), u("multi")]));
    l.push_str(&group(
        "annotators",
        USERS,
        &[
            u("annotator1"),
            u("owner"),
            u("o'brien"),
            u("a*b"),
            u("x(y)"),
            u("juergen"),
            u("deleteme"),
        ],
    ));
    l.push_str(&group("guests", USERS, &[u("guest1")]));
    l.push_str(&group("not", USERS, &[u("notact")]));
    l.push_str(&group("deactivated", USERS, &[u("deact")]));
    l.push_str(&group(
        "team1",
        TEAMS,
        &[u("admin1"), u("mover"), u("juergen")],
    ));
    l.push_str(&group("team2", TEAMS, &[u("admin1"), u("reviewer1")]));
    // Nested: nested1 ∈ inner ∈ outer ∈ cyclic ∈ outer (a cycle).
    l.push_str(&group("inner", USERS, &[u("nested1")]));
    l.push_str(&group("outer", USERS, &[group_dn("inner")]));
    l.push_str(&group("cyclic", USERS, &[group_dn("outer")]));
    l.push_str(&format!(
        "dn: cn=outer,{USERS}\nchangetype: modify\nadd: member\nmember: cn=cyclic,{USERS}\n\n"
    ));
    l.push_str(&format!(
        "dn: cn=unique-admins,{USERS}\nchangetype: add\nobjectClass: groupOfUniqueNames\ncn: unique-admins\nuniqueMember: uid=uniq1,{USERS}\n\n"
    ));
    l
}
