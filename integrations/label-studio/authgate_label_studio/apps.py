from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MIDDLEWARE = "authgate_label_studio.middleware.AuthgateMiddleware"


class AuthgateConfig(AppConfig):
    name = "authgate_label_studio"
    label = "authgate_label_studio"
    verbose_name = "authgate identity"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # Fail the start, not the first request: without the middleware in
        # force every person would silently be anonymous.
        if MIDDLEWARE not in settings.MIDDLEWARE:
            raise ImproperlyConfigured(
                f"authgate_label_studio is installed but {MIDDLEWARE} is not in MIDDLEWARE: "
                "set DJANGO_SETTINGS_MODULE=authgate_label_studio.settings"
            )
        from . import runtime

        try:
            state = runtime.state()
        except ValueError as e:
            raise ImproperlyConfigured(f"authgate_label_studio: {e}") from None
        # Label Studio Enterprise's member role field, looked for once now.
        state.syncer.enterprise()
