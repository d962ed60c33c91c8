"""Which merchants a user may see and act on: the one policy the admin and the REST API both apply.

``ALIPAY["API_MERCHANTS_FOR_USER"]`` names a function that gives, for a user, the merchants they may reach
(a queryset of :class:`~django_alipay.models.Merchant`, or ids). :class:`MerchantAccess` applies its answer
everywhere a user meets a merchant's data: every admin list and page (trades, refunds, notifications,
merchants), the admin's refund, reverse, sync and reprocess pages and bulk actions, and every REST API
endpoint. Anything outside it is "not found", whoever asks; what moves money still needs its model
permission as well (``refund_trade``, ``reverse_trade``, ``sync_trade``, ``add_trade``).

The default, :func:`merchants_for_user`, uses Django's permission ``django_alipay.view_merchant``: held as a
model permission (or by a superuser) it opens every merchant; held as an object permission on a merchant
(from any authentication backend with object permissions, such as django-guardian) it opens that merchant
only. Without it a user reaches no merchant, in the admin as in the API.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet

from django_alipay.conf import app_settings
from django_alipay.models import Merchant

__all__ = ["VIEW_MERCHANT", "MerchantAccess", "access_for", "allowed_merchants", "merchants_for_user"]

VIEW_MERCHANT = "django_alipay.view_merchant"

M = TypeVar("M", bound=Model)


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
    found = app_settings.API_MERCHANTS_FOR_USER(user)
    if isinstance(found, QuerySet) and found.model is Merchant:
        return found
    ids = [item.pk if isinstance(item, Merchant) else item for item in found]
    return Merchant.objects.filter(pk__in=ids)


class MerchantAccess:
    """What one user may reach: the merchants ``ALIPAY["API_MERCHANTS_FOR_USER"]`` gives them, nothing else.

    Build one with :func:`access_for` where it is needed; it asks the configured function each time it
    scopes a queryset, and once for :meth:`allows`.
    """

    def __init__(self, user: Any) -> None:
        self.user = user

    @cached_property
    def merchant_ids(self) -> frozenset[int]:
        """The primary keys of the merchants this user may reach (asked for once per instance)."""
        return frozenset(self.merchants().values_list("pk", flat=True))

    @property
    def sees_unassigned(self) -> bool:
        """Whether requests that named no merchant (an unknown notify URL) are shown: superusers only."""
        return bool(getattr(self.user, "is_superuser", False) and getattr(self.user, "is_active", False))

    def merchants(self) -> QuerySet[Merchant]:
        """The merchants this user may reach, as a queryset (a subquery when used in a filter)."""
        return allowed_merchants(self.user)

    def scope(
        self, queryset: QuerySet[M], *, through: str = "merchant", unassigned: bool = False
    ) -> QuerySet[M]:
        """``queryset`` narrowed to rows of reachable merchants; ``through`` is the path to the merchant.

        ``through="pk"`` scopes merchants themselves. With ``unassigned``, rows that name no merchant
        (notifications to an unknown notify URL) are kept, for superusers only.
        """
        mine = Q(**{f"{through}__in": self.merchants()})
        if unassigned and self.sees_unassigned:
            mine |= Q(**{f"{through}__isnull": True})
        return queryset.filter(mine)

    def allows(self, obj: Any) -> bool:
        """Whether ``obj`` (a merchant, or a row with a ``merchant_id``) belongs to a reachable merchant."""
        merchant_id = obj.pk if isinstance(obj, Merchant) else getattr(obj, "merchant_id", None)
        if merchant_id is None:
            return self.sees_unassigned
        return merchant_id in self.merchant_ids

    def may(self, permission: str, obj: Any = None) -> bool:
        """``permission`` held by the user and, for an object, the object within reach."""
        if not self.user.has_perm(permission):
            return False
        return obj is None or self.allows(obj)


def access_for(user: Any) -> MerchantAccess:
    """The merchant policy applied to ``user``."""
    return MerchantAccess(user)
