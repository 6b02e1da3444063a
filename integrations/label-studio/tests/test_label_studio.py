"""The integration inside the real Label Studio, requests sent straight to it
(no authgate in front): what authgate's assertion does, and what a forged
one cannot do."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from typing import Any, Dict, List

import pytest
from conftest import ADMIN_EMAIL, KID, LabelStudio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

WHOAMI = "/api/current-user/whoami"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: Dict[str, Any], claims: Dict[str, Any], sign: Any = None) -> str:
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    signature = sign(signing_input.encode()) if sign else b""
    return signing_input + "." + b64(signature)


def users_with_email(ls: LabelStudio, email: str) -> int:
    return int(ls.rows("SELECT count(*) AS n FROM htx_user WHERE email = ?", email)[0]["n"])


def whoami(ls: LabelStudio, claims: Dict[str, Any]) -> Dict[str, Any]:
    status, body = ls.as_person(WHOAMI, claims)
    assert status == 200, body
    return json.loads(body)


def test_the_asserted_person_is_signed_in_and_created_just_in_time(ls: LabelStudio) -> None:
    claims = ls.claims(sub="uid=bob,ou=people,dc=example,dc=com", email="Bob@Example.com", name="Bob Builder",
                       given_name="Bob", family_name="Builder", preferred_username="bob")
    me = whoami(ls, claims)
    assert (me["email"], me["username"], me["first_name"], me["last_name"]) == ("bob@example.com", "bob", "Bob", "Builder")
    row = ls.rows("SELECT * FROM htx_user WHERE id = ?", me["id"])[0]
    assert row["password"].startswith("!"), "a provisioned user has an unusable password"
    org = ls.rows("SELECT organization_id, deleted_at FROM organizations_organizationmember WHERE user_id = ?", me["id"])
    assert len(org) == 1 and org[0]["deleted_at"] is None
    assert me["active_organization"] == org[0]["organization_id"]
    # The pages open too, without Label Studio's login.
    status, _ = ls.as_person("/projects/", claims)
    assert status == 200


def test_without_an_assertion_label_studio_is_anonymous(ls: LabelStudio) -> None:
    assert ls.request(WHOAMI)[0] == 401
    status, _ = ls.request("/projects/")
    assert status == 302  # to /user/login/, which authgate answers with its own login


def test_names_and_email_follow_the_assertion_for_the_same_subject(ls: LabelStudio) -> None:
    claims = ls.claims(sub="uid=carol,ou=people,dc=example,dc=com", email="carol@example.com", given_name="Carol")
    first = whoami(ls, claims)
    claims.update(email="carol.new@example.com", given_name="Caroline", family_name="Jones", jti="2")
    second = whoami(ls, claims)
    assert second["id"] == first["id"]
    assert (second["email"], second["first_name"], second["last_name"]) == ("carol.new@example.com", "Caroline", "Jones")
    assert users_with_email(ls, "carol@example.com") == 0


def test_sync_runs_once_per_session_and_grant_not_per_request(ls: LabelStudio) -> None:
    claims = ls.claims(given_name="Dora")
    me = whoami(ls, claims)
    with ls.db() as conn:  # changed behind the integration's back
        conn.execute("UPDATE htx_user SET first_name = 'Changed' WHERE id = ?", (me["id"],))
    claims["jti"] = "again"
    assert whoami(ls, claims)["first_name"] == "Changed", "same session, same grant: no sync"
    claims["sid"] = "a-new-authgate-session"
    assert whoami(ls, claims)["first_name"] == "Dora", "a new session syncs"
    with ls.db() as conn:
        conn.execute("UPDATE htx_user SET first_name = 'Changed' WHERE id = ?", (me["id"],))
    claims["role"] = "reviewer"
    assert whoami(ls, claims)["first_name"] == "Dora", "a changed grant syncs"


def other_key_same_kid(ls: LabelStudio, claims: Dict[str, Any]) -> str:
    return ls.token(claims, key=ec.generate_private_key(ec.SECP256R1()))


def alg_none(ls: LabelStudio, claims: Dict[str, Any]) -> str:
    return hand_made({"alg": "none", "typ": "JWT", "kid": KID}, claims)


def hs256_with_public_key(ls: LabelStudio, claims: Dict[str, Any]) -> str:
    public = ls.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hand_made({"alg": "HS256", "typ": "JWT", "kid": KID}, claims,
                     lambda data: hmac.new(public, data, hashlib.sha256).digest())


def expired(ls: LabelStudio, claims: Dict[str, Any]) -> str:
    now = int(time.time())
    return ls.token(dict(claims, iat=now - 300, nbf=now - 300, exp=now - 120))


def not_yet_valid(ls: LabelStudio, claims: Dict[str, Any]) -> str:
    return ls.token(dict(claims, nbf=int(time.time()) + 300))


def wrong_audience(ls: LabelStudio, claims: Dict[str, Any]) -> str:
    return ls.token(dict(claims, aud="another-app"))


def wrong_issuer(ls: LabelStudio, claims: Dict[str, Any]) -> str:
    return ls.token(dict(claims, iss="http://evil.test"))


def unknown_kid(ls: LabelStudio, claims: Dict[str, Any]) -> str:
    return ls.token(claims, kid="made-up")


def es256_signature_cut(ls: LabelStudio, claims: Dict[str, Any]) -> str:
    return ls.token(claims)[:-10]


def garbage(ls: LabelStudio, claims: Dict[str, Any]) -> str:
    return "not.a.jwt"


@pytest.mark.parametrize(
    "forge",
    [other_key_same_kid, alg_none, hs256_with_public_key, expired, not_yet_valid, wrong_audience, wrong_issuer,
     unknown_kid, es256_signature_cut, garbage],
)
def test_a_forged_or_stale_assertion_is_refused_and_writes_nothing(ls: LabelStudio, forge: Any) -> None:
    claims = ls.claims()
    for path in (WHOAMI, "/projects/", "/api/projects/"):
        status, body = ls.request(path, headers={"X-Identity-Assertion": forge(ls, claims)})
        assert status == 401, (forge.__name__, path, body[:300])
    assert b"Identity assertion refused" in body
    assert users_with_email(ls, claims["email"]) == 0
    assert ls.rows("SELECT count(*) AS n FROM authgate_label_studio_link WHERE subject = ?", claims["sub"])[0]["n"] == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-User": "mallory", "X-Forwarded-Email": "mallory@example.com"},
        {"X-Forwarded-Email": ADMIN_EMAIL, "X-Forwarded-Role": "owner"},
        {"Remote-User": ADMIN_EMAIL, "X-Remote-User": ADMIN_EMAIL},
        {"X-Auth-Request-Email": ADMIN_EMAIL},
    ],
)
def test_plain_identity_headers_are_never_trusted(ls: LabelStudio, headers: Dict[str, str]) -> None:
    assert ls.request(WHOAMI, headers=headers)[0] == 401
    assert users_with_email(ls, "mallory@example.com") == 0


def test_label_studio_api_tokens_keep_working(ls: LabelStudio) -> None:
    status, me = ls.admin(WHOAMI)
    assert status == 200 and me["email"] == ADMIN_EMAIL


def test_sixteen_parallel_first_requests_create_exactly_one_user(ls: LabelStudio) -> None:
    claims = ls.claims()
    token = ls.token(claims)
    results: List[int] = []
    start = threading.Barrier(16)

    def first_request() -> None:
        start.wait()
        results.append(ls.request(WHOAMI, headers={"X-Identity-Assertion": token})[0])

    threads = [threading.Thread(target=first_request) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == [200] * 16
    assert users_with_email(ls, claims["email"]) == 1
    assert ls.rows("SELECT count(*) AS n FROM authgate_label_studio_link WHERE subject = ?", claims["sub"])[0]["n"] == 1


def project(ls: LabelStudio, title: str) -> int:
    status, body = ls.admin("/api/projects/", "POST", {"title": title})
    assert status == 201, body
    return int(body["id"])


def members(ls: LabelStudio, user_id: int) -> Dict[int, bool]:
    """project id -> made by the integration"""
    rows = ls.rows(
        "SELECT pm.project_id, m.id AS managed FROM projects_projectmember pm "
        "LEFT JOIN authgate_label_studio_managedprojectmember m ON m.member_id = pm.id WHERE pm.user_id = ?",
        user_id,
    )
    return {int(r["project_id"]): r["managed"] is not None for r in rows}


def test_project_grants_become_project_members_and_only_those_go_away(ls: LabelStudio) -> None:
    by_id, by_title, by_hand = project(ls, "Grant by id"), project(ls, "Grant by title"), project(ls, "Made by hand")
    claims = ls.claims(projects={str(by_id): "annotator", "Grant by title": "reviewer", "No such project": "annotator"})
    me = whoami(ls, claims)
    assert members(ls, me["id"]) == {by_id: True, by_title: True}
    with ls.db() as conn:  # an administrator adds the person by hand (MANUAL_PROJECT_MEMBER_MANAGEMENT=1)
        conn.execute(
            "INSERT INTO projects_projectmember (user_id, project_id, enabled, created_at, updated_at) "
            "VALUES (?, ?, 1, datetime('now'), datetime('now'))",
            (me["id"], by_hand),
        )
    claims.update(projects={str(by_id): "annotator"}, jti="2")
    whoami(ls, claims)
    assert members(ls, me["id"]) == {by_id: True, by_hand: False}
    claims.update(projects={}, jti="3")
    whoami(ls, claims)
    assert members(ls, me["id"]) == {by_hand: False}, "the grant is gone, the hand-made row stays"


def membership(ls: LabelStudio, email: str) -> Any:
    rows = ls.rows(
        "SELECT om.deleted_at FROM organizations_organizationmember om JOIN htx_user u ON u.id = om.user_id "
        "WHERE u.email = ?",
        email,
    )
    assert len(rows) == 1
    return rows[0]["deleted_at"]


def test_deactivated_and_not_activated_are_mirrored_and_reactivation_follows(ls: LabelStudio) -> None:
    claims = ls.claims()
    whoami(ls, claims)
    assert membership(ls, claims["email"]) is None
    # authgate's sync call at a refused login: the membership becomes inactive.
    status, _ = ls.as_person("/_auth/upstream-sync", dict(claims, role="deactivated", projects={}), method="POST")
    assert status == 204
    assert membership(ls, claims["email"]) is not None
    # Wrong method on the sync path: nothing happens.
    assert ls.as_person("/_auth/upstream-sync", dict(claims, role="annotator"))[0] == 405
    assert membership(ls, claims["email"]) is not None
    # Back in an active group: the next request reactivates.
    claims.update(jti="2")
    whoami(ls, claims)
    assert membership(ls, claims["email"]) is None
    # A request naming a not-activated person is refused and mirrored.
    status, body = ls.as_person(WHOAMI, dict(claims, role="not_activated"))
    assert status == 403 and b"not activated" in body
    assert membership(ls, claims["email"]) is not None


def test_a_deactivated_person_label_studio_never_saw_is_not_created(ls: LabelStudio) -> None:
    claims = ls.claims(role="deactivated")
    assert ls.as_person("/_auth/upstream-sync", claims, method="POST")[0] == 204
    assert users_with_email(ls, claims["email"]) == 0


def test_an_assertion_without_email_is_refused_with_what_to_change(ls: LabelStudio) -> None:
    claims = ls.claims()
    del claims["email"]
    status, body = ls.as_person(WHOAMI, claims)
    assert status == 403 and b"email" in body


def test_with_several_organizations_the_integration_refuses_to_guess(ls: LabelStudio) -> None:
    with ls.db() as conn:
        conn.execute(
            "INSERT INTO organization (title, token, created_at, updated_at, contact_info) "
            "VALUES ('Second', 'second-org-token', datetime('now'), datetime('now'), NULL)"
        )
    try:
        claims = ls.claims()
        status, body = ls.as_person(WHOAMI, claims)
        assert status == 403 and b"AUTHGATE_LS_ORGANIZATION" in body, body
        assert users_with_email(ls, claims["email"]) == 0, "nothing half-made"
    finally:
        with ls.db() as conn:
            conn.execute("DELETE FROM organization WHERE token = 'second-org-token'")


def test_an_email_already_linked_to_another_subject_is_not_handed_over(ls: LabelStudio) -> None:
    first = ls.claims(email="shared@example.com")
    owner = whoami(ls, first)
    second = ls.claims(email="shared@example.com")  # another sub, same address
    status, body = ls.as_person(WHOAMI, second)
    assert status == 403 and b"another directory identity" in body, body
    assert whoami(ls, dict(first, jti="again"))["id"] == owner["id"]
    assert ls.rows("SELECT count(*) AS n FROM authgate_label_studio_link WHERE subject = ?", second["sub"])[0]["n"] == 0
