"""authgate for Label Studio: Label Studio trusts authgate's signed identity
assertion (``X-Identity-Assertion``) and keeps its users, organization
membership and project members in step with the directory.

Switch it on with ``DJANGO_SETTINGS_MODULE=authgate_label_studio.settings``
plus the variables in ``label-studio.env``."""

__version__ = "0.1.0"
