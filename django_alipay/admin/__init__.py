"""The Django admin of django_alipay: merchants, trades (refund, reverse, sync), refunds, notifications.

Importing this package registers the model admins with ``django.contrib.admin.site`` (admin autodiscovery
does it). Every action calls :mod:`django_alipay.domain`; no admin code changes a row itself.
"""

from django_alipay.admin.merchant import MerchantAdmin
from django_alipay.admin.notification import NotificationAdmin
from django_alipay.admin.refund import RefundAdmin
from django_alipay.admin.trade import RefundInline, TradeAdmin

__all__ = ["MerchantAdmin", "NotificationAdmin", "RefundAdmin", "RefundInline", "TradeAdmin"]
