"""The app's models: merchants, trades, refunds and the notifications Alipay sends about them."""

from django_alipay.models.merchant import Merchant
from django_alipay.models.notification import Notification
from django_alipay.models.refund import Refund
from django_alipay.models.refund_slot import RefundSlot
from django_alipay.models.trade import Trade

__all__ = ["Merchant", "Notification", "Refund", "RefundSlot", "Trade"]
