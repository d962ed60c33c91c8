"""An authentication backend granting object permissions on merchants, as django-guardian would in a shop."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.backends import BaseBackend

from django_alipay.models import Merchant


class MerchantGrants(BaseBackend):
    """``user.has_perm(perm, merchant)`` holds for the (user id, perm, merchant id) triples in ``grants``."""

    grants: ClassVar[set[tuple[int, str, int]]] = set()

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        if not isinstance(obj, Merchant):
            return False
        return (user_obj.pk, perm, obj.pk) in self.grants
