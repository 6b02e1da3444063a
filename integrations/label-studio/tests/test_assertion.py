"""The verifier on its own: the JWKS fetched lazily over HTTP from a real
local server, re-fetched on an unknown kid at most once per 30 s, verified
tokens kept until they expire."""

from __future__ import annotations

import http.server
import json
import threading
import time
from typing import Any, Iterator, List

import jwt
import pytest
from conftest import jwk_of, pem
from cryptography.hazmat.primitives.asymmetric import ec

from authgate_label_studio.assertion import InvalidAssertion, KeySet, Settings, Verifier


class Jwks:
    def __init__(self) -> None:
        self.keys: List[Any] = []
        self.hits = 0


@pytest.fixture()
def jwks_server() -> Iterator["tuple[str, Jwks]"]:
    state = Jwks()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            state.hits += 1
            body = json.dumps({"keys": state.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/_auth/jwks.json", state
    finally:
        server.shutdown()
        server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def token(key: Any, kid: str, **over: Any) -> str:
    now = int(time.time())
    claims = {"iss": "i", "aud": "labeling-app", "sub": "s", "iat": now, "nbf": now, "exp": now + 60}
    claims.update(over)
    return jwt.encode(claims, pem(key), algorithm="ES256", headers={"kid": kid})


def test_keys_are_fetched_lazily_and_refetched_on_an_unknown_kid_at_most_every_30_s(jwks_server: Any) -> None:
    url, server = jwks_server
    old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    server.keys = [jwk_of(old, "old")]
    clock = Clock()
    verifier = Verifier(KeySet(Settings("labeling-app", None, url, None), clock=clock))
    assert server.hits == 0, "nothing fetched before the first assertion"
    assert verifier.verify(token(old, "old"))["sub"] == "s"
    assert server.hits == 1
    # authgate rotates its key: the first token with the new kid fetches again.
    server.keys = [jwk_of(new, "new"), jwk_of(old, "old")]
    clock.now += 31
    assert verifier.verify(token(new, "new"))["sub"] == "s"
    assert server.hits == 2
    # A flood of made-up kids costs one fetch per 30 s, not one per token.
    for i in range(50):
        with pytest.raises(InvalidAssertion, match="unknown kid"):
            verifier.verify(token(new, f"made-up-{i}"))
    assert server.hits == 2, "within 30 s of the last fetch"
    clock.now += 30
    with pytest.raises(InvalidAssertion, match="unknown kid"):
        verifier.verify(token(new, "made-up-again"))
    assert server.hits == 3


def test_a_verified_token_is_kept_and_an_expired_one_is_refused_again(jwks_server: Any) -> None:
    url, server = jwks_server
    key = ec.generate_private_key(ec.SECP256R1())
    server.keys = [jwk_of(key, "k")]
    wall = Clock()
    wall.now = time.time()
    verifier = Verifier(KeySet(Settings("labeling-app", None, url, None)), clock=wall)
    t = token(key, "k")
    first = verifier.verify(t)
    assert verifier.verify(t) is first, "the second use is a cache hit"
    wall.now += 60 + 31  # past exp and the 30 s leeway
    with pytest.raises(InvalidAssertion, match="expired"):
        verifier.verify(t)


def test_an_unreachable_jwks_is_a_clear_refusal_not_a_crash() -> None:
    verifier = Verifier(KeySet(Settings("labeling-app", None, "http://127.0.0.1:9/_auth/jwks.json", None)))
    with pytest.raises(InvalidAssertion, match="authgate's keys could not be read"):
        verifier.verify(token(ec.generate_private_key(ec.SECP256R1()), "k"))


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "exactly one of AUTHGATE_JWKS_URL and AUTHGATE_JWKS_FILE"),
        ({"AUTHGATE_JWKS_URL": "http://x/j", "AUTHGATE_JWKS_FILE": "/j"}, "exactly one"),
        ({"AUTHGATE_JWKS_URL": "file:///etc/passwd"}, "AUTHGATE_JWKS_URL must be an http(s) URL"),
    ],
)
def test_settings_errors_name_the_variable(env: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)
