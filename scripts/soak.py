#!/usr/bin/env python3
"""Soak under faults (issue #10, item 3); run through scripts/soak.

Loopback only, bounded in time and in count. Starts, as plain processes on
free 127.0.0.1 ports in a private temp dir: the demo upstream (it echoes the
identity it receives), a private slapd with the demo users, redis-server
(append-only file, so sessions survive a kill -9), an IdP-metadata server
this script controls, and authgate (LDAP + SAML on, session.store = redis).

Then CLIENTS threads (half signed in as alice, half as bob, each through the
real LDAP login form) send authenticated requests without pause while, per
cycle: the upstream is restarted, slapd is stopped and started, redis is
killed (SIGKILL) and restarted, the metadata URL answers errors, and authgate
gets SIGHUP. Afterwards it asserts:

  * authgate never exited and its log has no panic;
  * no response carried another user's identity (the upstream's echo of
    X-Forwarded-User and of the identity assertion's `sub`);
  * every non-200 answer is authgate's documented JSON error with a status
    and code that fits the fault in force (502/504 upstream, 503 session
    store, 401 then a fresh sign-in), never a bare connection drop;
  * recovery: the first good answer after each fault ends comes within
    RECOVERY_LIMIT seconds (logins for slapd, readyz for the metadata);
  * RSS and open file descriptors, measured at a quiet moment before and
    after (clients paused, idle connections expired), are back near the
    baseline.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECOVERY_LIMIT = 10.0
# The login form's documented message while the directory is down
# (src/endpoints/ldap_login.rs UNAVAILABLE, HTML-escaped as the page shows it).
UNAVAILABLE = "The directory is unavailable right now"
# Documented error codes (src/error.rs) and the statuses they come with.
DOCUMENTED = {
    "upstream_unavailable": 502,
    "upstream_timeout": 504,
    "session_store_unavailable": 503,
    "unauthenticated": 401,
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def proc_status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# --------------------------------------------------------------------------
# The IdP metadata server: "ok" serves the metadata, "error" alternates 500,
# 404 and a truncated document.
# --------------------------------------------------------------------------
class Metadata:
    def __init__(self, xml):
        self.xml = xml
        self.mode = "ok"
        self.served = {"ok": 0, "error": 0}
        meta = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if meta.mode == "ok":
                    meta.served["ok"] += 1
                    body, status = meta.xml, 200
                else:
                    meta.served["error"] += 1
                    n = meta.served["error"] % 3
                    body, status = [(b"boom", 500), (b"gone", 404), (meta.xml[:200], 200)][n]
                self.send_response(status)
                self.send_header("Content-Type", "application/samlmetadata+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def idp_metadata(port, cert_pem):
    b64 = "".join(l for l in cert_pem.splitlines() if "-----" not in l)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="http://127.0.0.1:{port}/idp">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="http://127.0.0.1:{port}/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
""".encode()


# --------------------------------------------------------------------------
# Processes.
# --------------------------------------------------------------------------
class World:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.bin = args.authgate
        self.up_port = free_port()
        self.ldap_port = free_port()
        self.redis_port = free_port()
        self.port = free_port()
        self.upstream = None
        self.redis = None
        self.gate = None
        self.log_path = os.path.join(tmp, "authgate.log")

    def sh(self, *cmd, **kw):
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)

    # upstream
    def start_upstream(self):
        self.upstream = subprocess.Popen(
            [self.args.upstream, "--listen", f"127.0.0.1:{self.up_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_port(self.up_port), "demo upstream did not start"

    def stop_upstream(self):
        self.upstream.terminate()
        self.upstream.wait(timeout=10)

    # slapd
    def start_slapd(self):
        env = dict(os.environ, DEMO_LDAP_PORT=str(self.ldap_port))
        out = self.sh("bash", os.path.join(self.repo, "scripts/demo-ldap.sh"),
                      os.path.join(self.tmp, "ldap"), env=env, cwd=self.repo)
        return out.stdout

    def slapd_pid(self):
        with open(os.path.join(self.tmp, "ldap", "slapd.pid")) as f:
            return int(f.read().strip())

    def stop_slapd(self):
        pid = self.slapd_pid()
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                time.sleep(0.05)
            except ProcessLookupError:
                return
        raise RuntimeError("slapd did not stop")

    # redis
    def start_redis(self):
        d = os.path.join(self.tmp, "redis")
        os.makedirs(d, exist_ok=True)
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--dir", d, "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_port(self.redis_port), "redis did not start"

    def kill_redis(self):
        self.redis.send_signal(signal.SIGKILL)
        self.redis.wait(timeout=10)

    # authgate
    def write_config(self, ldap_toml, meta_port):
        keys = os.path.join(self.tmp, "keys")
        os.makedirs(keys, exist_ok=True)
        self.sh(self.bin, "keygen", f"{keys}/identity.pem", "--session-secret", f"{keys}/session.key")
        self.sh(self.bin, "keygen", "--saml", "--saml-key", f"{keys}/sp.key",
                "--saml-cert", f"{keys}/sp.crt")
        cfg = f"""
[server]
listen = "127.0.0.1:{self.port}"
public_url = "http://127.0.0.1:{self.port}"
idle_timeout = "5s"
header_read_timeout = "5s"
workers = 2
[upstream]
url = "http://127.0.0.1:{self.up_port}"
connect_timeout = "1s"
response_timeout = "5s"
pool_idle_timeout = "5s"
[session]
secret_file = "{keys}/session.key"
store = "redis"
redis_url = "redis://127.0.0.1:{self.redis_port}/0"
[identity]
signing_key = "{keys}/identity.pem"
audience = "labeling-app"
[saml]
enabled = true
idp_metadata_url = "http://127.0.0.1:{meta_port}/metadata"
metadata_refresh = "3s"
metadata_timeout = "2s"
sp_key = "{keys}/sp.key"
sp_cert = "{keys}/sp.crt"
[log]
format = "json"
level = "info"
access_log = false
{ldap_toml}
"""
        self.config = os.path.join(self.tmp, "authgate.toml")
        with open(self.config, "w") as f:
            f.write(cfg)

    def start_gate(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHGATE_", "AUTH_LDAP_"))}
        env.pop("RUST_LOG", None)
        self.log = open(self.log_path, "w")
        self.gate = subprocess.Popen([self.bin, "serve", "--config", self.config],
                                     stdout=self.log, stderr=self.log, env=env)
        assert wait_port(self.port), "authgate did not start: " + open(self.log_path).read()

    def stop_all(self):
        for p in (self.gate, self.upstream, self.redis):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        try:
            self.stop_slapd()
        except Exception:
            pass


# --------------------------------------------------------------------------
# Clients.
# --------------------------------------------------------------------------
def login(port, user, password="demo"):
    """The real LDAP login form: GET the page (CSRF token and cookie), POST
    it. Returns (status, session cookie or None, error code)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/_auth/login", headers={"Accept": "text/html"})
        r = c.getresponse()
        page = r.read().decode("utf-8", "replace")
        cookies = [h.split(";", 1)[0] for k, h in r.getheaders() if k.lower() == "set-cookie"]
        m = re.search(r'name="csrf" value="([^"]+)"', page)
        if r.status != 200 or not m:
            return r.status, None, "no login form"
        form = urllib.parse.urlencode({"username": user, "password": password,
                                       "csrf": m.group(1), "rd": "/"})
        c.request("POST", "/_auth/ldap/login", body=form, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "; ".join(cookies), "Accept": "application/json"})
        r = c.getresponse()
        body = r.read()
        session = None
        for k, h in r.getheaders():
            if k.lower() == "set-cookie":
                pair = h.split(";", 1)[0]
                name = pair.split("=", 1)[0]
                if name in ("authgate", "__Host-authgate") and pair.split("=", 1)[1]:
                    session = pair
        code = ""
        if r.status >= 400:
            try:
                code = json.loads(body).get("error", "")
            except ValueError:
                # The form answers with its page; name the documented message.
                text = body.decode("utf-8", "replace")
                code = "unavailable page" if UNAVAILABLE in text else "undocumented page"
        return r.status, session, code
    finally:
        c.close()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.total = 0
        self.ok = 0
        self.by_status = {}
        self.unclean = []          # (time, status, description)
        self.cross = []            # (user, what came back)
        self.drops = 0             # connection errors
        self.relogins = 0
        self.ok_times = []         # monotonic time of every 200 (sampled per 0.1 s)
        self.last_ok_bucket = -1

    def record(self, status, t):
        with self.lock:
            self.total += 1
            self.by_status[status] = self.by_status.get(status, 0) + 1
            if status == 200:
                self.ok += 1
                b = int(t * 10)
                if b != self.last_ok_bucket:
                    self.last_ok_bucket = b
                    self.ok_times.append(t)


def client(idx, user, port, stats, stop, pause, paused_count):
    n = 0
    conn = None
    cookie = None
    while not stop.is_set():
        if pause.is_set():
            if conn:
                conn.close()
                conn = None
            with stats.lock:
                paused_count[0] += 1
            while pause.is_set() and not stop.is_set():
                time.sleep(0.05)
            with stats.lock:
                paused_count[0] -= 1
            continue
        if cookie is None:
            status, cookie, _ = login(port, user)
            if cookie is None:
                time.sleep(0.2)
                continue
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        n += 1
        path = f"/soak/{user}/{idx}/{n}"
        try:
            conn.request("GET", path, headers={"Cookie": cookie, "Accept": "application/json"})
            r = conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException) as e:
            # A kept-alive connection closed by the server between requests
            # is normal (idle timeout); one that fails mid-request is not.
            with stats.lock:
                stats.drops += 1
            conn.close()
            conn = None
            continue
        t = time.monotonic()
        stats.record(r.status, t)
        if r.status == 200:
            try:
                echo = json.loads(body)
            except ValueError:
                with stats.lock:
                    stats.unclean.append((t, 200, "upstream answer not JSON"))
                continue
            fwd = echo.get("identity_headers", {}).get("x-forwarded-user", "")
            claims = (echo.get("identity_assertion") or {}).get("claims", {})
            line = echo.get("request_line", "")
            if fwd != user or not str(claims.get("sub", "")).startswith(f"uid={user},") \
                    or path not in line:
                with stats.lock:
                    stats.cross.append((user, path, fwd, claims.get("sub"), line))
            continue
        try:
            code = json.loads(body).get("error", "")
        except ValueError:
            code = None
        if code is None or DOCUMENTED.get(code) != r.status:
            with stats.lock:
                stats.unclean.append((t, r.status, body[:200]))
        if r.status == 401:
            with stats.lock:
                stats.relogins += 1
            cookie = None
        if r.headers.get("connection", "").lower() == "close":
            conn.close()
            conn = None


# --------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------
def first_after(times, t):
    for x in times:
        if x >= t:
            return x - t
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--authgate", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--phase", type=float, default=12.0, help="seconds of traffic between faults")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="authgate-soak-")
    w = World(args, tmp)
    failures = []
    results = []

    def check(ok, what):
        results.append(("ok  " if ok else "FAIL") + " " + what)
        if not ok:
            failures.append(what)

    try:
        cert = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "1", "-subj", "/CN=soak-idp", "-keyout", os.path.join(tmp, "idp.key"),
             "-out", "/dev/stdout"], check=True, capture_output=True, text=True).stdout
        meta = Metadata(b"")
        meta.xml = idp_metadata(meta.port, cert)
        ldap_toml = w.start_slapd()
        w.start_redis()
        w.start_upstream()
        w.write_config(ldap_toml, meta.port)
        w.start_gate()
        pid = w.gate.pid

        stats = Stats()
        stop, pause = threading.Event(), threading.Event()
        paused = [0]
        users = ["alice", "bob"]
        threads = [threading.Thread(target=client, daemon=True,
                                    args=(i, users[i % 2], w.port, stats, stop, pause, paused))
                   for i in range(args.clients)]
        started = time.monotonic()
        for t in threads:
            t.start()

        def quiet_measure(label):
            pause.set()
            deadline = time.monotonic() + 30
            while paused[0] < args.clients and time.monotonic() < deadline:
                time.sleep(0.05)
            # Idle client connections (server.idle_timeout) and the upstream
            # pool (upstream.pool_idle_timeout) expire: 5 s each, plus slack.
            time.sleep(8)
            m = (proc_status_kib(pid, "VmRSS"), open_fds(pid))
            print(f"[{time.monotonic() - started:6.1f}s] quiet {label}: RSS {m[0]} KiB, {m[1]} fds", flush=True)
            pause.clear()
            return m

        def phase(label):
            print(f"[{time.monotonic() - started:6.1f}s] {label}", flush=True)
            time.sleep(args.phase)

        phase("warm-up traffic")
        base_rss, base_fds = quiet_measure("baseline")
        phase("traffic after baseline")

        recov = {"upstream restart": [], "redis kill -9": [], "slapd stop (logins)": [],
                 "IdP metadata errors (readyz)": [], "SIGHUP reload": []}
        for cycle in range(args.cycles):
            # 1. Upstream restart.
            print(f"[{time.monotonic() - started:6.1f}s] cycle {cycle + 1}: upstream down 3 s", flush=True)
            w.stop_upstream()
            time.sleep(3)
            w.start_upstream()
            end = time.monotonic()
            phase("traffic")
            recov["upstream restart"].append(first_after(stats.ok_times, end))

            # 2. slapd stop/start: logins fail cleanly, sessions keep working.
            print(f"[{time.monotonic() - started:6.1f}s] cycle {cycle + 1}: slapd down 5 s", flush=True)
            w.stop_slapd()
            s, sess, code = login(w.port, "alice")
            check(s == 503 and code in ("directory_unavailable", "unavailable page") and sess is None,
                  f"cycle {cycle + 1}: login while slapd is down -> {s} {code!r} (want 503 and the documented 'unavailable' page)")
            ok_before = stats.ok
            time.sleep(5)
            check(stats.ok > ok_before, f"cycle {cycle + 1}: signed-in traffic kept flowing while slapd was down ({stats.ok - ok_before} OK)")
            w.start_slapd()
            end = time.monotonic()
            rec = None
            while time.monotonic() - end < 30:
                if login(w.port, "bob")[1]:
                    rec = time.monotonic() - end
                    break
                time.sleep(0.2)
            recov["slapd stop (logins)"].append(rec)
            phase("traffic")

            # 3. Redis kill -9 and restart (AOF keeps the sessions).
            print(f"[{time.monotonic() - started:6.1f}s] cycle {cycle + 1}: redis SIGKILL, down 3 s", flush=True)
            w.kill_redis()
            time.sleep(3)
            w.start_redis()
            end = time.monotonic()
            phase("traffic")
            recov["redis kill -9"].append(first_after(stats.ok_times, end))

            # 4. IdP metadata errors, with a SIGHUP while they last.
            print(f"[{time.monotonic() - started:6.1f}s] cycle {cycle + 1}: IdP metadata URL answers errors for 10 s; SIGHUP meanwhile", flush=True)
            meta.mode = "error"
            time.sleep(5)
            os.kill(pid, signal.SIGHUP)
            time.sleep(5)
            c = http.client.HTTPConnection("127.0.0.1", w.port, timeout=10)
            c.request("GET", "/_auth/readyz")
            r = c.getresponse()
            ready = json.loads(r.read())
            c.close()
            meta_state = str(ready.get("checks", {}).get("saml_metadata", ""))
            check("last good copy" in meta_state or "refused" in open(w.log_path).read(),
                  f"cycle {cycle + 1}: during metadata errors readyz says {meta_state!r}")
            meta.mode = "ok"
            end = time.monotonic()
            rec = None
            while time.monotonic() - end < 30:
                c = http.client.HTTPConnection("127.0.0.1", w.port, timeout=10)
                c.request("GET", "/_auth/readyz")
                r = c.getresponse()
                st = str(json.loads(r.read()).get("checks", {}).get("saml_metadata", ""))
                c.close()
                if "last good" not in st and "fail" not in st:
                    rec = time.monotonic() - end
                    break
                time.sleep(0.2)
            recov["IdP metadata errors (readyz)"].append(rec)
            phase("traffic")

            # 5. SIGHUP reload under traffic.
            print(f"[{time.monotonic() - started:6.1f}s] cycle {cycle + 1}: SIGHUP", flush=True)
            os.kill(pid, signal.SIGHUP)
            end = time.monotonic()
            phase("traffic")
            recov["SIGHUP reload"].append(first_after(stats.ok_times, end))

        end_rss, end_fds = quiet_measure("after the faults")
        stop.set()
        for t in threads:
            t.join(timeout=30)
        elapsed = time.monotonic() - started

        log = open(w.log_path).read()
        check(w.gate.poll() is None, "authgate never exited")
        check("panicked" not in log, "no panic in authgate's log")
        check(not stats.cross, f"no answer carried another user's identity ({len(stats.cross)} did)")
        check(stats.drops == 0, f"no connection dropped mid-request ({stats.drops} were)")
        check(not stats.unclean, f"every error was authgate's documented JSON error ({len(stats.unclean)} were not)")
        for what, recs in recov.items():
            worst = max((r for r in recs if r is not None), default=None)
            okr = all(r is not None and r <= RECOVERY_LIMIT for r in recs)
            check(okr, f"recovered within {RECOVERY_LIMIT:.0f} s after {what}: " +
                  ", ".join("never" if r is None else f"{r:.2f} s" for r in recs))
        rss_ok = end_rss <= base_rss * 1.25 + 8 * 1024
        check(rss_ok, f"RSS back near baseline: {base_rss} KiB -> {end_rss} KiB")
        check(end_fds <= base_fds + 4, f"file descriptors back to baseline: {base_fds} -> {end_fds}")
        reloads = log.count("configuration reloaded")
        refused = log.count("configuration reload refused")

        print()
        print(f"soak: {elapsed:.0f} s, {args.clients} clients (alice and bob), {args.cycles} fault cycles")
        print(f"requests: {stats.total} ({stats.total / elapsed:.0f}/s), 200: {stats.ok}, "
              f"by status: {dict(sorted(stats.by_status.items()))}")
        print(f"re-sign-ins after 401: {stats.relogins}; connections dropped mid-request: {stats.drops}")
        print(f"SIGHUP: {reloads} reloaded, {refused} refused; metadata fetches ok/error: "
              f"{meta.served['ok']}/{meta.served['error']}")
        for line in results:
            print(line)
        for u in stats.unclean[:5]:
            print("  unclean:", u)
        for c in stats.cross[:5]:
            print("  cross-identity:", c)
        print("SOAK PASSED" if not failures else f"SOAK FAILED: {len(failures)} assertion(s)")
        return 0 if not failures else 1
    finally:
        w.stop_all()
        if os.environ.get("SOAK_KEEP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
