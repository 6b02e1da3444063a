"""What the integration remembers in Label Studio's database.

``Link`` ties a Label Studio user to authgate's stable subject (SAML NameID or
LDAP DN), so a changed email updates the same user instead of creating a
second one. ``ManagedProjectMember`` marks the ``ProjectMember`` rows this
integration created from a project grant: only those are removed when the
grant goes away; rows made by hand stay.
"""

from django.conf import settings
from django.db import models


class Link(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="authgate_link")
    subject = models.CharField(max_length=1024, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The grant last applied (a digest of the claims that drive the sync).
    grant = models.CharField(max_length=64, default="")

    class Meta:
        app_label = "authgate_label_studio"


class ManagedProjectMember(models.Model):
    member = models.OneToOneField("projects.ProjectMember", on_delete=models.CASCADE, related_name="authgate_managed")

    class Meta:
        app_label = "authgate_label_studio"
