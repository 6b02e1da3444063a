"""A real Label Studio (the one in this Python environment) started with the
integration switched on exactly as ``label-studio.env`` says, on a free
loopback port with a private data directory; stopped at the end.

Run with the Python of Label Studio's environment:
``$LS_VENV/bin/python -m pytest integrations/label-studio/tests``.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

HERE = Path(__file__).resolve().parent
ENV_FILE = HERE.parent / "label-studio.env"
ISSUER = "http://authgate.test"
AUDIENCE = "labeling-app"
KID = "test-key-1"
ADMIN_EMAIL = "admin@example.com"
ADMIN_TOKEN = "admintoken0123456789"


def env_file(path: Path) -> Dict[str, str]:
    """The KEY=VALUE lines of an env file (comments and blanks skipped)."""
    out: Dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def jwk_of(key: Any, kid: str) -> Dict[str, Any]:
    doc = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    doc.update(kid=kid, use="sig", alg="ES256")
    return doc


@dataclass
class LabelStudio:
    url: str
    data: Path
    key: Any
    proc: "subprocess.Popen[bytes]"
    log: Path

    def claims(self, **over: Any) -> Dict[str, Any]:
        now = int(time.time())
        sub = over.pop("sub", None) or f"uid={uuid.uuid4().hex[:10]},ou=people,dc=example,dc=com"
        short = sub.split(",")[0].split("=")[-1]
        c: Dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "email": f"{short}@example.com",
            "name": f"{short.title()} Tester",
            "given_name": short.title(),
            "family_name": "Tester",
            "preferred_username": short,
            "groups": [],
            "role": "annotator",
            "workspaces": [],
            "projects": {},
            "amr": ["ldap"],
            "sid": uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
        c.update(over)
        return c

    def token(self, claims: Dict[str, Any], key: Any = None, kid: str = KID) -> str:
        return jwt.encode(claims, pem(key or self.key), algorithm="ES256", headers={"kid": kid})

    def request(
        self, path: str, headers: Optional[Dict[str, str]] = None, method: str = "GET", body: Optional[bytes] = None
    ) -> "tuple[int, bytes]":
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=60) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def as_person(self, path: str, claims: Dict[str, Any], **kw: Any) -> "tuple[int, bytes]":
        headers = dict(kw.pop("headers", {}))
        headers["X-Identity-Assertion"] = self.token(claims)
        return self.request(path, headers=headers, **kw)

    def admin(self, path: str, method: str = "GET", payload: Any = None) -> "tuple[int, Any]":
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Authorization": f"Token {ADMIN_TOKEN}", "Content-Type": "application/json"}
        status, raw = self.request(path, headers=headers, method=method, body=body)
        return status, (json.loads(raw) if raw else None)

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.data / "label_studio.sqlite3", timeout=30)
        conn.row_factory = sqlite3.Row
        return conn

    def rows(self, sql: str, *args: Any) -> "list[sqlite3.Row]":
        with self.db() as conn:
            return list(conn.execute(sql, args))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@pytest.fixture(scope="session")
def ls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudio]:
    base = tmp_path_factory.mktemp("label-studio")
    key = ec.generate_private_key(ec.SECP256R1())
    jwks = base / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk_of(key, KID)]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env.update(env_file(ENV_FILE))
    # The file names the sidecar's JWKS URL; here the same keys come from a file.
    env.pop("AUTHGATE_JWKS_URL", None)
    env.update(
        AUTHGATE_JWKS_FILE=str(jwks),
        AUTHGATE_ISSUER=ISSUER,
        LABEL_STUDIO_BASE_DATA_DIR=str(base / "data"),
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        LOG_LEVEL="INFO",
    )
    port = free_port()
    log = base / "label-studio.log"
    exe = str(Path(sys.executable).with_name("label-studio"))
    args = [exe, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)]
    args += ["--username", ADMIN_EMAIL, "--password", "admin-password-1", "--user-token", ADMIN_TOKEN]
    args += ["--enable-legacy-api-token"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=base)
    app = LabelStudio(url=f"http://127.0.0.1:{port}", data=base / "data", key=key, proc=proc, log=log)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Label Studio exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(app.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Label Studio did not answer /health in 300 s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield app
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
