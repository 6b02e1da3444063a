"""Label Studio's own settings plus the authgate integration.

Switched on with ``DJANGO_SETTINGS_MODULE=authgate_label_studio.settings``;
Label Studio's ``label-studio start`` and ``manage.py`` both keep an
operator's ``DJANGO_SETTINGS_MODULE``.

Why this module is not a plain ``from ... import *``: Label Studio's settings
module calls ``sentry.init_sentry()`` while it is being imported, and that
reads ``django.conf.settings``. With this module named in
``DJANGO_SETTINGS_MODULE`` Django would load *this* module, still half
imported, and Label Studio fails to start (``'Settings' object has no
attribute 'SENTRY_DSN'``). So Label Studio's module is imported while
``DJANGO_SETTINGS_MODULE`` names it — Django's lazy settings get bound to it
during that import — and then the binding is undone (``settings._wrapped =
empty``, which also clears the cached values) and the variable set back, so
the next access, ``django.setup()``, reads this module, complete, with the
middleware added below. ``AuthgateConfig.ready`` refuses to start when the
middleware is not in force, so a change in Label Studio's start-up that
defeats this fails loudly instead of leaving everyone anonymous.
"""

import os
import sys
from pathlib import Path

import label_studio

_OURS = __name__
_LABEL_STUDIO_SETTINGS = "label_studio.core.settings.label_studio"

# Label Studio's settings import their siblings by short names
# (``core.settings.base``); ``label-studio start`` puts its package directory
# on sys.path, other entry points (uwsgi, gunicorn) may not.
_LS_PATH = str(Path(label_studio.__file__).parent)
if _LS_PATH not in sys.path:
    sys.path.insert(0, _LS_PATH)

os.environ["DJANGO_SETTINGS_MODULE"] = _LABEL_STUDIO_SETTINGS
try:
    from label_studio.core.settings.label_studio import *  # noqa: F401,F403,E402
    from label_studio.core.settings.label_studio import INSTALLED_APPS, MIDDLEWARE  # noqa: E402
finally:
    os.environ["DJANGO_SETTINGS_MODULE"] = _OURS

from django.conf import settings as _settings  # noqa: E402
from django.utils.functional import empty as _empty  # noqa: E402

_settings._wrapped = _empty

MIDDLEWARE = list(MIDDLEWARE)
# Right after Django's AuthenticationMiddleware: everything after it
# (Label Studio's activity and organization middleware, DRF's session
# authentication, the views) sees the person the assertion names.
_AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
_MIDDLEWARE = "authgate_label_studio.middleware.AuthgateMiddleware"
MIDDLEWARE.insert(MIDDLEWARE.index(_AUTH) + 1 if _AUTH in MIDDLEWARE else len(MIDDLEWARE), _MIDDLEWARE)
INSTALLED_APPS = list(INSTALLED_APPS) + ["authgate_label_studio.apps.AuthgateConfig"]
