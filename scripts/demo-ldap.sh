#!/usr/bin/env bash
# A demo OpenLDAP for `scripts/demo`: a private slapd (never the system one)
# with the users of scripts/demo-ldap.ldif, on 127.0.0.1:${DEMO_LDAP_PORT:-3389}.
#
#   scripts/demo-ldap.sh DIR     # DIR: a scratch directory (created)
#
# Starts slapd in the background (pid in DIR/slapd.pid), loads the demo
# users, and prints the [ldap]/[mapping] TOML authgate needs. Stop it with
# `kill "$(cat DIR/slapd.pid)"`. Demo users (password "demo"): alice
# (administrator), carol (reviewer, "Demo workspace"), bob (annotator,
# "Demo workspace"), dave (pending activation).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: scripts/demo-ldap.sh DIR}
port=${DEMO_LDAP_PORT:-3389}
mkdir -p "$dir/db"
dir=$(cd "$dir" && pwd)
cat > "$dir/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $dir/slapd.pid
database mdb
maxsize 16777216
suffix "dc=demo,dc=local"
rootdn "cn=admin,dc=demo,dc=local"
rootpw demo-root
directory $dir/db
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
CONF
/usr/sbin/slapd -h "ldap://127.0.0.1:$port/" -f "$dir/slapd.conf"
for _ in $(seq 1 100); do
  ldapwhoami -x -H "ldap://127.0.0.1:$port" >/dev/null 2>&1 && break
  sleep 0.1
done
if ! ldapsearch -x -H "ldap://127.0.0.1:$port" -b "uid=alice,ou=people,dc=demo,dc=local" -s base dn >/dev/null 2>&1; then
  ldapadd -x -H "ldap://127.0.0.1:$port" -D "cn=admin,dc=demo,dc=local" -w demo-root \
    -f scripts/demo-ldap.ldif >/dev/null
fi
cat <<TOML
[ldap]
enabled = true
server_uri = "ldap://127.0.0.1:$port"   # loopback demo only: use ldaps:// or start_tls elsewhere
user_dn_template = "uid=%(user)s,ou=people,dc=demo,dc=local"
attr_username = "uid"
group_search_base_dn = "ou=groups,dc=demo,dc=local"
group_type = "member"

[mapping.roles]
administrator = ["cn=administrators,ou=groups,dc=demo,dc=local"]
reviewer = ["cn=reviewers,ou=groups,dc=demo,dc=local"]
annotator = ["cn=annotators,ou=groups,dc=demo,dc=local"]
not_activated = ["cn=pending,ou=groups,dc=demo,dc=local"]

[mapping.workspaces]
"Demo workspace" = ["cn=team-demo,ou=groups,dc=demo,dc=local"]
TOML
