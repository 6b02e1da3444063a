"""Verifies authgate's ``X-Identity-Assertion`` (no Django in here).

Only ES256 is accepted, with the key the token's ``kid`` names in authgate's
JWKS; ``aud`` must be the configured audience, ``iss`` the configured issuer
when one is set, ``exp``/``nbf`` hold with at most 30 s leeway. The JWKS is
fetched on first use, kept, and fetched again when a token names a ``kid``
it does not hold — at most once per 30 s, so a stream of tokens with made-up
``kid`` values cannot turn into a stream of fetches.

Verified tokens are kept (by their exact bytes, until their ``exp``): authgate
sends the same token on every request of a session for most of its
lifetime, so the per-request cost is a dictionary look-up, not an ECDSA
verification.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import jwt

ALGORITHM = "ES256"
LEEWAY_SECONDS = 30
REFETCH_INTERVAL_SECONDS = 30.0
FETCH_TIMEOUT_SECONDS = 5.0
MAX_CACHED_TOKENS = 10_000
MAX_JWKS_BYTES = 1 << 20


class InvalidAssertion(Exception):
    """The assertion is not one authgate signed for this application now.

    ``str()`` is a short reason fit for the response and the log; it never
    holds the token itself."""


@dataclass(frozen=True)
class Settings:
    audience: str
    issuer: Optional[str]
    jwks_url: Optional[str]
    jwks_file: Optional[str]

    @staticmethod
    def from_env(env: Mapping[str, str]) -> "Settings":
        url = env.get("AUTHGATE_JWKS_URL", "").strip() or None
        path = env.get("AUTHGATE_JWKS_FILE", "").strip() or None
        if bool(url) == bool(path):
            raise ValueError("set exactly one of AUTHGATE_JWKS_URL and AUTHGATE_JWKS_FILE (authgate's /_auth/jwks.json)")
        if url and not (url.startswith("http://") or url.startswith("https://")):
            raise ValueError(f"AUTHGATE_JWKS_URL must be an http(s) URL, got {url!r}")
        return Settings(
            audience=env.get("AUTHGATE_AUDIENCE", "").strip() or "labeling-app",
            issuer=env.get("AUTHGATE_ISSUER", "").strip() or None,
            jwks_url=url,
            jwks_file=path,
        )


def _load_jwks(settings: Settings) -> bytes:
    if settings.jwks_file:
        with open(settings.jwks_file, "rb") as f:
            return f.read(MAX_JWKS_BYTES + 1)
    assert settings.jwks_url is not None
    req = urllib.request.Request(settings.jwks_url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=FETCH_TIMEOUT_SECONDS) as resp:  # noqa: S310 - http(s) checked
        return resp.read(MAX_JWKS_BYTES + 1)


def parse_jwks(raw: bytes) -> Dict[str, Any]:
    """``kid`` -> public key, for the EC P-256 keys of a JWKS document."""
    if len(raw) > MAX_JWKS_BYTES:
        raise ValueError("JWKS larger than 1 MiB")
    doc = json.loads(raw)
    keys: Dict[str, Any] = {}
    for entry in doc.get("keys", []) if isinstance(doc, dict) else []:
        if not isinstance(entry, dict) or entry.get("kty") != "EC" or entry.get("crv") != "P-256":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", ALGORITHM) != ALGORITHM:
            continue
        keys[kid] = jwt.PyJWK.from_dict(entry, algorithm=ALGORITHM).key
    return keys


@dataclass
class KeySet:
    """authgate's public keys, fetched lazily and re-fetched on an unknown
    ``kid`` at most once per ``REFETCH_INTERVAL_SECONDS``."""

    settings: Settings
    load: Callable[[Settings], bytes] = _load_jwks
    clock: Callable[[], float] = time.monotonic
    _keys: Dict[str, Any] = field(default_factory=dict)
    _last_fetch: Optional[float] = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    fetches: int = 0

    def key(self, kid: str) -> Any:
        key = self._keys.get(kid)
        if key is not None:
            return key
        with self._lock:
            key = self._keys.get(kid)
            if key is not None:
                return key
            now = self.clock()
            if self._last_fetch is None or now - self._last_fetch >= REFETCH_INTERVAL_SECONDS:
                self._last_fetch = now
                self.fetches += 1
                try:
                    self._keys = parse_jwks(self.load(self.settings))
                except Exception as e:  # any failure to read the keys: no key, a clear reason
                    raise InvalidAssertion(f"authgate's keys could not be read ({type(e).__name__}: {e})") from None
            key = self._keys.get(kid)
        if key is None:
            raise InvalidAssertion("signed with a key authgate does not publish (unknown kid)")
        return key


@dataclass
class Verifier:
    keys: KeySet
    clock: Callable[[], float] = time.time
    _cache: "OrderedDict[str, Tuple[float, Dict[str, Any]]]" = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def verify(self, token: str) -> Dict[str, Any]:
        """The claims of a valid assertion, or ``InvalidAssertion``."""
        now = self.clock()
        with self._lock:
            hit = self._cache.get(token)
            if hit is not None and hit[0] + LEEWAY_SECONDS > now:
                self._cache.move_to_end(token)
                return hit[1]
            if hit is not None:
                del self._cache[token]
        claims = self._verify(token)
        exp = float(claims["exp"])
        if exp + LEEWAY_SECONDS <= now:  # the same clock as the cache's
            raise InvalidAssertion("expired")
        with self._lock:
            self._cache[token] = (exp, claims)
            while len(self._cache) > MAX_CACHED_TOKENS:
                self._cache.popitem(last=False)
        return claims

    def _verify(self, token: str) -> Dict[str, Any]:
        settings = self.keys.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidAssertion("not a JSON Web Token") from None
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise InvalidAssertion(f"algorithm {str(alg)[:16]!r} refused (only {ALGORITHM})")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidAssertion("no kid in the token header")
        key = self.keys.key(kid)
        try:
            claims: Dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "nbf", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidAssertion("expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidAssertion("not yet valid (nbf)") from None
        except jwt.InvalidAudienceError:
            raise InvalidAssertion(f"wrong audience (expected {settings.audience!r})") from None
        except jwt.InvalidIssuerError:
            raise InvalidAssertion(f"wrong issuer (expected {settings.issuer!r})") from None
        except jwt.InvalidSignatureError:
            raise InvalidAssertion("bad signature") from None
        except jwt.MissingRequiredClaimError as e:
            raise InvalidAssertion(f"claim {e.claim!r} missing") from None
        except jwt.PyJWTError as e:
            raise InvalidAssertion(f"invalid token ({type(e).__name__})") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidAssertion("claim 'sub' is not a non-empty string")
        return claims
