"""The Django application configuration of django_alipay."""

from django.apps import AppConfig


class DjangoAlipayConfig(AppConfig):
    name = "django_alipay"
    label = "django_alipay"
    verbose_name = "Alipay"
    default_auto_field = "django.db.models.BigAutoField"
