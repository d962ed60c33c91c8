"""The Django application configuration of django_alipay."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoAlipayConfig(AppConfig):
    name = "django_alipay"
    label = "django_alipay"
    verbose_name = _("Alipay")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing registers the system checks; conf connects its setting_changed receiver on import.
        from django_alipay import checks, conf  # noqa: F401
