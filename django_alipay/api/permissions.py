"""Who may use the REST API: the configured permission classes, each user's merchants, and refund rights.

Three layers, each configurable:

1. Every request must pass ``ALIPAY["API_PERMISSION_CLASSES"]`` (default: DRF's ``IsAdminUser``, staff only).
2. A user sees only the trades, refunds and notifications of the merchants that
   ``ALIPAY["API_MERCHANTS_FOR_USER"]`` gives for them; any other object answers 404, as if it did not
   exist. That is :mod:`django_alipay.access`, the same policy the admin applies.
3. What moves money or changes a trade needs its model permission as well: creating a trade
   ``django_alipay.add_trade``, querying it at Alipay ``django_alipay.sync_trade``, refunding
   ``django_alipay.refund_trade``, reversing ``django_alipay.reverse_trade``. Superusers hold them all.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

# The merchant policy is django_alipay.access (the admin applies it too); its names stay importable here.
from django_alipay.access import VIEW_MERCHANT, allowed_merchants, merchants_for_user
from django_alipay.conf import app_settings
from django_alipay.exceptions import AlipayConfigurationError

__all__ = [
    "VIEW_MERCHANT",
    "CanCreateTrade",
    "CanRefundTrade",
    "CanReverseTrade",
    "CanSyncTrade",
    "allowed_merchants",
    "api_permission_classes",
    "merchants_for_user",
]


def api_permission_classes() -> list[type[BasePermission]]:
    """The permission classes of ``ALIPAY["API_PERMISSION_CLASSES"]``, imported."""
    classes: list[type[BasePermission]] = []
    for item in app_settings.API_PERMISSION_CLASSES:
        found = import_string(item) if isinstance(item, str) else item
        if not (isinstance(found, type) and issubclass(found, BasePermission)):
            raise AlipayConfigurationError(
                f"ALIPAY['API_PERMISSION_CLASSES'] names {item!r}, which is not a DRF permission class"
            )
        classes.append(found)
    return classes


class _TradePermission(BasePermission):
    codename: ClassVar[str]

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(f"django_alipay.{self.codename}"))


class CanCreateTrade(_TradePermission):
    """The user holds ``django_alipay.add_trade`` (creating an in-store trade charges the buyer at once)."""

    codename = "add_trade"
    message = _("Creating trades needs the permission django_alipay.add_trade.")


class CanSyncTrade(_TradePermission):
    """The user holds ``django_alipay.sync_trade``."""

    codename = "sync_trade"
    message = _("Querying trades at Alipay needs the permission django_alipay.sync_trade.")


class CanRefundTrade(_TradePermission):
    """The user holds ``django_alipay.refund_trade``."""

    codename = "refund_trade"
    message = _("Refunding needs the permission django_alipay.refund_trade.")


class CanReverseTrade(_TradePermission):
    """The user holds ``django_alipay.reverse_trade``."""

    codename = "reverse_trade"
    message = _("Reversing needs the permission django_alipay.reverse_trade.")
