"""Serves each request as the person authgate's signed assertion names.

- A valid ``X-Identity-Assertion`` → that person (created or updated just in
  time), for this request only: no Label Studio session is made, so none can
  outlive authgate's.
- No assertion → anonymous (Label Studio's login redirect then lands on
  authgate's login), and a Label Studio session of a person this integration
  provisioned is ended: after authgate's logout the browser is anonymous.
- An invalid assertion → 401 with the reason, and a log line; never a
  fallback to anything else. Plain ``X-Forwarded-*`` headers are not read.
- ``Authorization: Token …`` / ``Bearer …`` → Label Studio's own API
  authentication, untouched (authgate forwards those without an assertion).
- ``POST`` to the sync path (``AUTHGATE_SYNC_PATH``, default
  ``/_auth/upstream-sync``, inside authgate's own prefix so no browser can
  reach it through authgate): authgate telling Label Studio about a person it
  keeps out (deactivated, not activated), so Label Studio's People page
  shows the membership inactive.
"""

from __future__ import annotations

import html
import logging
from typing import Any, Callable, Optional

from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse

from . import runtime
from .assertion import InvalidAssertion
from .sync import INACTIVE_ROLES, SyncRefused

logger = logging.getLogger("authgate_label_studio")

HEADER = "HTTP_X_IDENTITY_ASSERTION"


def _client(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR", "-"))


def _wants_json(request: HttpRequest) -> bool:
    accept = request.META.get("HTTP_ACCEPT", "")
    return request.path.startswith("/api/") or ("json" in accept and "html" not in accept)


def refusal(request: HttpRequest, status: int, title: str, reason: str, what_to_do: str) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"detail": f"{title}: {reason}", "reason": reason, "what_to_do": what_to_do}, status=status)
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>{t}</title></head>"
        "<body><h1>{t}</h1><p>{r}</p><p>{w}</p></body></html>"
    ).format(t=html.escape(title), r=html.escape(reason), w=html.escape(what_to_do))
    return HttpResponse(page, status=status, content_type="text/html; charset=utf-8")


class AuthgateMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.state = runtime.state()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        authorization = request.META.get("HTTP_AUTHORIZATION", "")
        if authorization[:6].lower() == "token " or authorization[:7].lower() == "bearer ":
            return self.get_response(request)
        token: Optional[str] = request.META.get(HEADER)
        # Empty = absent: forward-auth answers name the header with an empty
        # value when there is no identity (so front proxies copy nothing).
        if token is None or not token.strip():
            self._end_provisioned_session(request)
            return self.get_response(request)
        try:
            claims = self.state.verifier.verify(token.strip())
        except InvalidAssertion as e:
            logger.warning(
                "authgate: identity assertion refused: %s (%s %s from %s)", e, request.method, request.path, _client(request)
            )
            return refusal(
                request,
                401,
                "Identity assertion refused",
                str(e),
                "Sign in again through authgate; if this persists, check AUTHGATE_JWKS_URL, AUTHGATE_AUDIENCE "
                "and AUTHGATE_ISSUER against authgate's configuration.",
            )
        try:
            if request.path == self.state.sync_path:
                if request.method != "POST":
                    return HttpResponse(status=405, headers={"Allow": "POST"})
                self.state.syncer.mirror_state(claims)
                return HttpResponse(status=204)
            role = claims.get("role")
            if role in INACTIVE_ROLES:
                self.state.syncer.mirror_state(claims)
                return refusal(
                    request,
                    403,
                    "Access not active",
                    f"your account is {str(role).replace('_', ' ')}",
                    "Ask your administrator to activate your account in the directory.",
                )
            user = self.state.syncer.user_for(claims)
        except SyncRefused as e:
            logger.warning("authgate: %s (subject %s)", e, claims.get("sub"))
            return refusal(request, 403, "Cannot sign in to Label Studio", str(e), "Ask your administrator.")
        request.user = user
        request._cached_user = user  # type: ignore[attr-defined]
        # Label Studio's own marker for "authenticated per request by a token,
        # not by the session" (jwt_auth.middleware): its inactivity-timeout
        # middleware then leaves the request alone instead of logging out a
        # session that does not exist.
        request.is_jwt = True  # type: ignore[attr-defined]
        return self.get_response(request)

    @staticmethod
    def _end_provisioned_session(request: HttpRequest) -> None:
        session: Any = getattr(request, "session", None)
        if session is None or "_auth_user_id" not in session:
            return
        from .models import Link

        if Link.objects.filter(user_id=session["_auth_user_id"]).exists():
            logout(request)

