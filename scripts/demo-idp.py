#!/usr/bin/env python3
"""A demo SAML 2.0 IdP for `scripts/demo`, on this machine only.

    demo-idp.py WORKDIR PORT SP_METADATA_URL

It is the test suite's IdP (tests/idp/idp.py: pysaml2, signing with the
xmlsec1 program) with the demo directory's people and a sign-in page in
front: a browser sent here by authgate's "Sign in with SSO" button
signs in as alice, carol, bob or dave (password "demo", as in the demo
directory), and the IdP posts a signed assertion to authgate's ACS with the
person's email, names and groups (the same group DNs the demo directory
has, so one [mapping] serves both ways in). authgate's SP metadata is read
from SP_METADATA_URL when the first sign-in arrives. Single Logout from
authgate is answered (tests/idp/idp.py's /slo/redirect).

Binds 127.0.0.1:PORT, writes its keys into WORKDIR, serves until killed.
"""

import html
import os
import sys
import urllib.parse
import urllib.request
from http.server import ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "idp"))

import idp as base  # noqa: E402  (tests/idp/idp.py)

PASSWORD = "demo"
GROUPS = "ou=groups,dc=demo,dc=local"

# As scripts/demo-ldap.ldif has them: (email, first, last, groups).
PEOPLE = {
    "alice": ("alice@demo.local", "Alice", "Admin", ["administrators"]),
    "carol": ("carol@demo.local", "Carol", "Reviewer", ["reviewers", "team-demo"]),
    "bob": ("bob@demo.local", "Bob", "Annotator", ["annotators", "team-demo"]),
    "dave": ("dave@demo.local", "Dave", "Pending", ["pending"]),
}

base.USERS.clear()
for uid, (mail, first, last, groups) in PEOPLE.items():
    base.USERS[uid] = (mail, base.NAMEID_FORMAT_EMAILADDRESS, [
        ("Email", [mail]),
        ("FirstName", [first]),
        ("LastName", [last]),
        ("Groups", [f"cn={g},{GROUPS}" for g in groups]),
    ])

# What a sign-in form carries through: the AuthnRequest as it arrived.
CARRIED = ("SAMLRequest", "RelayState", "SigAlg", "Signature", "binding")


def sign_in_page(fields, error=""):
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
        for k, v in fields.items() if k in CARRIED
    )
    who = ", ".join(f"<code>{u}</code>" for u in PEOPLE)
    err = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo IdP: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}}
label,input,button{{display:block;width:100%;box-sizing:border-box;margin:.3rem 0}}
input,button{{padding:.5rem;font-size:1rem}}.error{{color:#b00020}}</style></head>
<body><h1>Demo IdP</h1>
<p>A SAML identity provider for the authgate demo (pysaml2). People: {who}; password <code>demo</code>.</p>
{err}<form method="post" action="/demo/sign-in">{hidden}
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form></body></html>""".encode()


def make_handler(idp, sp_metadata_url):
    parent = base.make_handler(idp)

    def ensure_sp():
        # authgate's SP metadata, read once (again after a failure).
        if idp.sp_paths:
            return
        with urllib.request.urlopen(sp_metadata_url, timeout=10) as r:
            idp.register_sp(r.read())

    class Handler(parent):
        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/sso/redirect":
                q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
                q["binding"] = "redirect"
                return self.reply(200, sign_in_page(q))
            return super().do_GET()

        def do_POST(self):
            if self.path not in ("/sso/post", "/demo/sign-in"):
                return super().do_POST()
            length = int(self.headers.get("Content-Length", "0") or 0)
            if length > 1 << 20:
                return self.reply(413, b"too large", "text/plain")
            q = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode("utf-8", "replace"),
                                            keep_blank_values=True))
            if self.path == "/sso/post":
                q["binding"] = "post"
                return self.reply(200, sign_in_page(q))
            user = q.get("username", "").strip()
            if user not in PEOPLE or q.get("password") != PASSWORD:
                return self.reply(200, sign_in_page(q, "Unknown username or wrong password."))
            try:
                ensure_sp()
            except Exception as e:
                return self.reply(502, f"cannot read authgate's SP metadata at {sp_metadata_url}: {e}".encode(),
                                  "text/plain")
            binding = base.BINDING_HTTP_POST if q.get("binding") == "post" else base.BINDING_HTTP_REDIRECT
            q["user"] = user
            try:
                return self.sso(q, binding)
            except Exception as e:
                return self.reply(500, f"{type(e).__name__}: {e}".encode(), "text/plain")

    return Handler


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: demo-idp.py WORKDIR PORT SP_METADATA_URL")
    workdir, port, sp_metadata_url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(workdir, exist_ok=True)
    httpd = ThreadingHTTPServer(("127.0.0.1", port), None)
    idp = base.Idp(workdir, port)
    httpd.RequestHandlerClass = make_handler(idp, sp_metadata_url)
    print(f"demo IdP on http://127.0.0.1:{port} (metadata: /metadata)", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
