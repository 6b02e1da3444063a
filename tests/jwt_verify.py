#!/usr/bin/env python3
"""Verifies an authgate identity JWT the way an upstream application would,
with PyJWT and nothing of authgate's code.

Used by tests/identity.rs and tests/nginx_forward_auth.rs. It fetches
nothing itself: the Rust test passes the JWKS document and the token on
standard input and the expectations as arguments.

    jwt_verify.py --issuer ISS --audience AUD --algorithm ALG < input.json

input.json: {"jwks": {"keys": [...]}, "token": "<compact JWS>"}

On success prints one JSON object and exits 0:
    {"header": {...}, "claims": {...}, "thumbprints": {"<kid>": "<RFC 7638>"}}
where "thumbprints" maps every kid in the JWKS to the RFC 7638 thumbprint
computed here from the key's own members, so the caller can check that each
kid is its key's thumbprint. On any failure prints the reason to stderr and
exits 1.
"""

import argparse
import base64
import hashlib
import json
import sys

import jwt

# RFC 7638 §3.2: the required members of each key type (RFC 8037 §2 for OKP).
REQUIRED_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}


def thumbprint(jwk):
    """RFC 7638: SHA-256 of the required members, sorted, no whitespace."""
    members = {name: jwk[name] for name in REQUIRED_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--algorithm", required=True, choices=["ES256", "RS256", "EdDSA"])
    args = parser.parse_args()

    data = json.load(sys.stdin)
    jwks = data["jwks"]
    token = data["token"]

    header = jwt.get_unverified_header(token)
    if header.get("alg") != args.algorithm:
        raise ValueError(f"header alg {header.get('alg')!r}, expected {args.algorithm!r}")
    kid = header.get("kid")
    if not kid:
        raise ValueError("the token header has no kid")

    keyset = jwt.PyJWKSet.from_dict(jwks)
    matching = [k for k in keyset.keys if k.key_id == kid]
    if len(matching) != 1:
        raise ValueError(f"kid {kid!r} is in the JWKS {len(matching)} times, expected once")
    key = matching[0]

    claims = jwt.decode(
        token,
        key=key,
        algorithms=[args.algorithm],
        audience=args.audience,
        issuer=args.issuer,
        leeway=0,
        options={"require": ["exp", "iat", "nbf", "sub", "iss", "aud"]},
    )
    thumbprints = {k["kid"]: thumbprint(k) for k in jwks["keys"] if "kid" in k}
    json.dump({"header": header, "claims": claims, "thumbprints": thumbprints}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - every failure is a verification failure
        print(f"verification failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
