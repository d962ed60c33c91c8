"""The Django application configuration of the Alipay gateway emulator."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EmulatorConfig(AppConfig):
    """``django_alipay.emulator``: a local stand-in for Alipay's mapi gateway, for development and tests."""

    name = "django_alipay.emulator"
    label = "django_alipay_emulator"
    verbose_name = _("Alipay gateway emulator")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the system check that warns when the emulator would refuse to serve."""
        from . import checks  # noqa: F401  (registers the check)
