"""Just-in-time provisioning: the person an assertion names, as a Label Studio
user with the organization membership and project grants the directory gives.

Work is done once per (subject, authgate session, grant digest) per process,
not on every request; everything here is idempotent, so another process or a
restart doing it again changes nothing. Parallel first requests of one person
are serialized per subject inside a process and by the database's unique
constraints (user email, link subject) across processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Set, Tuple

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import Link, ManagedProjectMember

logger = logging.getLogger("authgate_label_studio")

# authgate's roles (DESIGN.md). The two that keep a person out of the app.
INACTIVE_ROLES = frozenset({"deactivated", "not_activated"})
MAX_REMEMBERED = 50_000


class SyncRefused(Exception):
    """The assertion is valid but cannot be turned into a Label Studio user
    (no email, ambiguous organization, ...). ``str()`` says what to change."""


def grant_digest(claims: Dict[str, Any]) -> str:
    """A digest of every claim the sync acts on: a change in any of them
    (name, email, role, projects, workspaces) makes the next request sync."""
    keys = ("sub", "email", "name", "given_name", "family_name", "preferred_username", "role", "workspaces", "projects")
    doc = json.dumps({k: claims.get(k) for k in keys}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


def _names(claims: Dict[str, Any]) -> Tuple[str, str]:
    first = claims.get("given_name")
    last = claims.get("family_name")
    if isinstance(first, str) or isinstance(last, str):
        return (first if isinstance(first, str) else "")[:256], (last if isinstance(last, str) else "")[:256]
    name = claims.get("name")
    if isinstance(name, str) and name.strip():
        parts = name.strip().split(None, 1)
        return parts[0][:256], (parts[1] if len(parts) > 1 else "")[:256]
    return "", ""


def _email(claims: Dict[str, Any]) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 254:
        raise SyncRefused(
            "the identity carries no email address, and Label Studio needs one: "
            "map the IdP's email attribute (or the directory's mail attribute) in authgate"
        )
    return email.strip().lower()


def _username(claims: Dict[str, Any], email: str) -> str:
    name = claims.get("preferred_username")
    if isinstance(name, str) and name.strip():
        return name.strip()[:256]
    return email.split("@", 1)[0][:256]


class Enterprise:
    """What Label Studio Enterprise adds, detected once at start: an
    organization member ``role`` field. Community has none; nothing here
    runs there."""

    def __init__(self) -> None:
        from organizations.models import OrganizationMember

        self.role_field = None
        self.role_values: Dict[str, Any] = {}
        try:
            field = OrganizationMember._meta.get_field("role")
        except Exception:
            return
        choices = getattr(field, "choices", None) or []
        by_label = {}
        for value, label in choices:
            by_label[str(label).lower().replace(" ", "").replace("_", "")] = value
            by_label[str(value).lower().replace(" ", "").replace("_", "")] = value
        for role in ("owner", "administrator", "manager", "reviewer", "annotator", "deactivated", "not_activated"):
            key = role.replace("_", "")
            if key in by_label:
                self.role_values[role] = by_label[key]
        self.role_field = field
        logger.info("authgate: organization member roles found (Label Studio Enterprise); roles: %s", sorted(self.role_values))


class Syncer:
    def __init__(self, organization_id: Optional[int]) -> None:
        self.organization_id = organization_id
        self._done: "OrderedDict[Tuple[str, str, str, int], int]" = OrderedDict()
        # Bumped when a person's state is mirrored (deactivated, not
        # activated), so their next active request syncs again.
        self._generation: Dict[str, int] = {}
        self._done_lock = threading.Lock()
        self._subject_locks: Dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._enterprise: Optional[Enterprise] = None

    def enterprise(self) -> Enterprise:
        if self._enterprise is None:
            self._enterprise = Enterprise()
        return self._enterprise

    def _lock_for(self, subject: str) -> threading.Lock:
        with self._locks_lock:
            lock = self._subject_locks.get(subject)
            if lock is None:
                if len(self._subject_locks) > MAX_REMEMBERED:
                    self._subject_locks.clear()
                lock = self._subject_locks[subject] = threading.Lock()
            return lock

    def user_for(self, claims: Dict[str, Any]) -> Any:
        """The Label Studio user of a verified assertion, synced when this
        process has not synced this session with this grant yet."""
        User = get_user_model()
        with self._done_lock:
            generation = self._generation.get(claims["sub"], 0)
            key = (claims["sub"], str(claims.get("sid", "")), grant_digest(claims), generation)
            pk = self._done.get(key)
        if pk is not None:
            user = User.objects.filter(pk=pk, is_active=True).first()
            if user is not None:
                return user
        with self._lock_for(claims["sub"]):
            user = self._sync_retrying(claims, key[2])
        with self._done_lock:
            self._done[key] = user.pk
            while len(self._done) > MAX_REMEMBERED:
                self._done.popitem(last=False)
        return user

    def mirror_state(self, claims: Dict[str, Any]) -> None:
        """For a person authgate keeps out (deactivated, not activated): the
        membership made inactive. A deactivated person Label Studio never saw
        is not created."""
        with self._lock_for(claims["sub"]):
            self._sync_retrying(claims, grant_digest(claims))
        with self._done_lock:
            if len(self._generation) > MAX_REMEMBERED:
                self._generation.clear()
                self._done.clear()
            self._generation[claims["sub"]] = self._generation.get(claims["sub"], 0) + 1

    def _sync_retrying(self, claims: Dict[str, Any], digest: str) -> Any:
        try:
            return self._sync(claims, digest)
        except IntegrityError:
            # Another process created the same person between our read and
            # our write: read again, the second pass only links and updates.
            return self._sync(claims, digest)

    def organization(self, user: Any) -> Any:
        from organizations.models import Organization

        if self.organization_id is not None:
            org = Organization.objects.filter(pk=self.organization_id).first()
            if org is None:
                raise SyncRefused(f"AUTHGATE_LS_ORGANIZATION={self.organization_id}: no such organization in Label Studio")
            return org
        orgs = list(Organization.objects.order_by("pk")[:2])
        if len(orgs) == 1:
            return orgs[0]
        if len(orgs) > 1:
            raise SyncRefused(
                "Label Studio has several organizations: set AUTHGATE_LS_ORGANIZATION to the id people should join"
            )
        if user is None:
            return None
        # A Label Studio nobody has signed up to yet: the first person
        # creates the organization, as Label Studio's own sign-up does.
        return Organization.create_organization(created_by=user, title="Label Studio")

    @transaction.atomic
    def _sync(self, claims: Dict[str, Any], digest: str) -> Any:
        User = get_user_model()
        subject: str = claims["sub"]
        role = claims.get("role")
        inactive = role in INACTIVE_ROLES
        email = _email(claims)
        first, last = _names(claims)
        username = _username(claims, email)

        link = Link.objects.select_related("user").filter(subject=subject).first()
        user = link.user if link is not None else User.objects.filter(email__iexact=email).first()
        if link is None and user is not None and Link.objects.filter(user=user).exists():
            # The email is another directory identity's (a reused address,
            # two IdPs): never hand one person's account to another.
            raise SyncRefused(
                f"the Label Studio user with the email {email} belongs to another directory identity; "
                "an administrator must resolve the conflict"
            )
        if user is None and role == "deactivated":
            # Nothing to mirror for someone Label Studio never had.
            return None
        if user is None:
            user = User.objects.create_user(email=email, password=None, username=username, first_name=first, last_name=last)
            user.set_unusable_password()
            user.save(update_fields=["password"])
            logger.info("authgate: created Label Studio user %s for %s", user.pk, subject)
        else:
            changed = []
            for attr, value in (("email", email), ("username", username), ("first_name", first), ("last_name", last)):
                if getattr(user, attr) != value:
                    if attr == "email" and User.objects.filter(email__iexact=value).exclude(pk=user.pk).exists():
                        raise SyncRefused(f"another Label Studio user already has the email {value}")
                    setattr(user, attr, value)
                    changed.append(attr)
            if changed:
                user.save(update_fields=changed)
                logger.info("authgate: updated %s of Label Studio user %s", ",".join(changed), user.pk)
        if link is None:
            link = Link.objects.create(user=user, subject=subject)

        org = self.organization(None if inactive else user)
        if org is not None:
            self._membership(user, org, role, inactive)
            self._projects(user, org, {} if inactive else claims.get("projects") or {})
        if link.grant != digest:
            link.grant = digest
            link.save(update_fields=["grant"])
        return user

    def _membership(self, user: Any, org: Any, role: Optional[str], inactive: bool) -> None:
        from organizations.models import OrganizationMember

        member = OrganizationMember.objects.filter(user=user, organization=org).first()
        if member is None:
            member = OrganizationMember.objects.create(user=user, organization=org)
        ent = self.enterprise()
        if ent.role_field is not None and role in ent.role_values:
            value = ent.role_values[role]
            if getattr(member, ent.role_field.attname) != value:
                setattr(member, ent.role_field.attname, value)
                member.save(update_fields=[ent.role_field.attname])
        elif inactive and member.deleted_at is None:
            member.deleted_at = timezone.now()
            member.save(update_fields=["deleted_at"])
            logger.info("authgate: membership of user %s deactivated (%s)", user.pk, role)
        if not inactive and member.deleted_at is not None and ent.role_field is None:
            member.deleted_at = None
            member.save(update_fields=["deleted_at"])
            logger.info("authgate: membership of user %s reactivated", user.pk)
        if inactive:
            if user.active_organization_id == org.pk:
                user.active_organization = None
                user.save(update_fields=["active_organization"])
        elif user.active_organization_id != org.pk:
            user.active_organization = org
            user.save(update_fields=["active_organization"])

    def _projects(self, user: Any, org: Any, grants: Any) -> None:
        from projects.models import Project, ProjectMember

        wanted: Set[int] = set()
        if isinstance(grants, dict):
            for ref in grants:
                project = self._project(Project, org, str(ref))
                if project is not None:
                    wanted.add(project.pk)
        for pk in wanted:
            if not ProjectMember.objects.filter(user=user, project_id=pk).exists():
                member = ProjectMember.objects.create(user=user, project_id=pk, enabled=True)
                ManagedProjectMember.objects.create(member=member)
                logger.info("authgate: user %s added to project %s", user.pk, pk)
        stale = ManagedProjectMember.objects.filter(member__user=user).exclude(member__project_id__in=wanted)
        gone: List[int] = [m.member.project_id for m in stale.select_related("member")]
        if gone:
            ProjectMember.objects.filter(user=user, project_id__in=gone, authgate_managed__isnull=False).delete()
            logger.info("authgate: user %s removed from projects %s (grant gone)", user.pk, gone)

    @staticmethod
    def _project(Project: Any, org: Any, ref: str) -> Any:
        if ref.isdigit():
            return Project.objects.filter(pk=int(ref), organization=org).first()
        matches = list(Project.objects.filter(title=ref, organization=org)[:2])
        if len(matches) > 1:
            logger.warning("authgate: project grant %r matches several projects by title; not applied", ref)
            return None
        return matches[0] if matches else None
