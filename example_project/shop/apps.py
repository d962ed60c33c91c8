"""The shop's app config: connects the django_alipay signal receivers that mark orders paid or closed."""

from django.apps import AppConfig


class ShopConfig(AppConfig):
    """The example shop."""

    name = "shop"
    verbose_name = "Shop"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from shop import receivers  # noqa: F401  (connects the receivers)
