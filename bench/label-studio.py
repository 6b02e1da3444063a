"""What the authgate middleware adds to a Label Studio request.

Run inside Label Studio's environment with the integration installed
(``bench/label-studio`` does that): Label Studio's real settings, a real
migrated sqlite database in a temporary directory, the real middleware
object. Each sample times one request object through the middleware with a
trivial view behind it, against the same view called directly, so the
difference is the middleware alone (Django's other middleware and the view
cost the same with or without it).

Readings, each N requests after a warm-up:
- warm: the same assertion again (authgate sends one token per session for
  most of its lifetime): a cache hit plus loading the user row;
- fresh token: a new token of the same session and grant each request (an
  ECDSA P-256 verification, no sync);
- no assertion: the anonymous path.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

N = int(os.environ.get("N", "5000"))

base = Path(tempfile.mkdtemp(prefix="authgate-ls-bench-"))
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
import jwt  # noqa: E402

key = ec.generate_private_key(ec.SECP256R1())
jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
jwk.update(kid="bench", use="sig", alg="ES256")
(base / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

os.environ.update(
    DJANGO_SETTINGS_MODULE="authgate_label_studio.settings",
    AUTHGATE_JWKS_FILE=str(base / "jwks.json"),
    LABEL_STUDIO_BASE_DATA_DIR=str(base / "data"),
    SENTRY_DSN="",
    FRONTEND_SENTRY_DSN="",
    LOG_LEVEL="ERROR",
)
import django  # noqa: E402

django.setup()
from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)
from django.http import HttpResponse  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from organizations.models import Organization  # noqa: E402
from users.models import User  # noqa: E402

from authgate_label_studio.middleware import AuthgateMiddleware  # noqa: E402

admin = User.objects.create_user(email="admin@example.com", password="x")
Organization.create_organization(created_by=admin, title="Bench")


def view(request: object) -> HttpResponse:
    return HttpResponse(b"ok")


middleware = AuthgateMiddleware(view)
factory = RequestFactory()
now = int(time.time())
claims = {
    "iss": "http://127.0.0.1:8080", "aud": "labeling-app", "sub": "uid=bench,ou=people,dc=example,dc=com",
    "email": "bench@example.com", "given_name": "Bench", "family_name": "Mark", "preferred_username": "bench",
    "groups": [], "role": "annotator", "workspaces": [], "projects": {}, "amr": ["ldap"], "sid": "s1",
    "iat": now, "nbf": now, "exp": now + 3600, "jti": "j",
}


def token(jti: str) -> str:
    return jwt.encode(dict(claims, jti=jti), pem, algorithm="ES256", headers={"kid": "bench"})


def sample(make_request, through: bool) -> float:
    request = make_request()
    t0 = time.perf_counter_ns()
    response = middleware(request) if through else view(request)
    t1 = time.perf_counter_ns()
    assert response.status_code == 200, response.content[:200]
    return (t1 - t0) / 1000.0


def reading(name: str, make_request) -> dict:
    for _ in range(200):
        sample(make_request, True)
    with_mw, without = [], []
    for _ in range(N):  # interleaved, so drift hits both alike
        with_mw.append(sample(make_request, True))
        without.append(sample(make_request, False))
    added = sorted(a - b for a, b in zip(with_mw, without))
    q = statistics.quantiles(added, n=100)
    return {"reading": name, "n": N, "p50_us": round(q[49], 1), "p99_us": round(q[98], 1),
            "mean_us": round(statistics.fmean(added), 1)}


warm = token("warm")
first = factory.get("/api/current-user/whoami", HTTP_X_IDENTITY_ASSERTION=warm)
assert middleware(first).status_code == 200  # creates the user: the sync, once
counter = iter(range(10**9))
rows = [
    reading("warm (same token: cache hit + user row)",
            lambda: factory.get("/api/current-user/whoami", HTTP_X_IDENTITY_ASSERTION=warm)),
    reading("fresh token each request (ES256 verify, no sync)",
            lambda: factory.get("/api/current-user/whoami", HTTP_X_IDENTITY_ASSERTION=token(f"t{next(counter)}"))),
    reading("no assertion (anonymous)", lambda: factory.get("/api/current-user/whoami")),
]
print(f"Label Studio middleware overhead, Python {sys.version.split()[0]}, N={N} per reading (µs per request)")
print(f"{'reading':52} {'p50':>8} {'p99':>8} {'mean':>8}")
for r in rows:
    print(f"{r['reading']:52} {r['p50_us']:8.1f} {r['p99_us']:8.1f} {r['mean_us']:8.1f}")
verdict = "met" if rows[0]["p50_us"] < 1000 else "NOT met"
print(f"target: warm p50 < 1 ms — {verdict} ({rows[0]['p50_us']:.1f} µs)")
