"""Who may use the REST API: the configured permission classes, each user's merchants, and refund rights.

Three layers, each configurable:

1. Every request must pass ``ALIPAY["API_PERMISSION_CLASSES"]`` (default: DRF's ``IsAdminUser``, staff only).
2. A user sees only the trades, refunds and notifications of the merchants that
   ``ALIPAY["API_MERCHANTS_FOR_USER"]`` gives for them; any other object answers 404, as if it did not
   exist. The default, :func:`merchants_for_user`, uses Django's permission ``django_alipay.view_merchant``:
   held as a model permission (or by a superuser) it opens every merchant; held as an object permission on
   a merchant (from any authentication backend with object permissions, such as django-guardian) it opens
   that merchant only. Without it a user sees nothing.
3. What moves money or changes a trade needs its model permission as well: creating a trade
   ``django_alipay.add_trade``, querying it at Alipay ``django_alipay.sync_trade``, refunding
   ``django_alipay.refund_trade``, reversing ``django_alipay.reverse_trade``. Superusers hold them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from django.db.models import QuerySet
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from django_alipay.conf import app_settings
from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.models import Merchant

__all__ = [
    "CanCreateTrade",
    "CanRefundTrade",
    "CanReverseTrade",
    "CanSyncTrade",
    "allowed_merchants",
    "api_permission_classes",
    "merchants_for_user",
]

VIEW_MERCHANT = "django_alipay.view_merchant"


def api_permission_classes() -> list[type[BasePermission]]:
    """The permission classes of ``ALIPAY["API_PERMISSION_CLASSES"]``, imported."""
    configured = app_settings.API_PERMISSION_CLASSES
    if isinstance(configured, str) or not isinstance(configured, Iterable):
        raise AlipayConfigurationError(
            "ALIPAY['API_PERMISSION_CLASSES'] must be a list of permission classes or their dotted paths"
        )
    classes: list[type[BasePermission]] = []
    for item in configured:
        found = import_string(item) if isinstance(item, str) else item
        if not (isinstance(found, type) and issubclass(found, BasePermission)):
            raise AlipayConfigurationError(
                f"ALIPAY['API_PERMISSION_CLASSES'] names {item!r}, which is not a DRF permission class"
            )
        classes.append(found)
    return classes


def merchants_for_user(user: Any) -> QuerySet[Merchant]:
    """The default ``API_MERCHANTS_FOR_USER``: merchants that ``django_alipay.view_merchant`` opens to a user.

    The model permission (or superuser status) opens every merchant; an object permission on a merchant opens
    that one. Inactive and anonymous users get none.
    """
    if user is None or not user.is_active or not user.is_authenticated:
        return Merchant.objects.none()
    if user.has_perm(VIEW_MERCHANT):
        return Merchant.objects.all()
    # Merchants are few (one per Alipay account), so asking about each is cheap and works with any backend.
    opened = [pk for pk in Merchant.objects.values_list("pk", flat=True) if _may_view(user, pk)]
    return Merchant.objects.filter(pk__in=opened)


def _may_view(user: Any, merchant_pk: int) -> bool:
    merchant = Merchant(pk=merchant_pk)
    return bool(user.has_perm(VIEW_MERCHANT, merchant))


def allowed_merchants(user: Any) -> QuerySet[Merchant]:
    """The merchants ``user`` may see, from ``ALIPAY["API_MERCHANTS_FOR_USER"]``, as a queryset."""
    source = app_settings.API_MERCHANTS_FOR_USER
    finder = source if callable(source) else import_string(str(source))
    found = finder(user)
    if isinstance(found, QuerySet) and found.model is Merchant:
        return found
    ids = [item.pk if isinstance(item, Merchant) else item for item in found]
    return Merchant.objects.filter(pk__in=ids)


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
