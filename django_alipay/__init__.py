"""django-alipay-global: Alipay's cross-border mapi gateway for Django shops."""

__version__ = "0.1.0.dev0"
