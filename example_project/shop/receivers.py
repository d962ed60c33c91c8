"""The shop listens to django_alipay's signals: a paid trade marks its order paid, a closed one closed."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver
from django.utils import timezone

from django_alipay import signals
from django_alipay.models import Trade
from shop.models import Order

logger = logging.getLogger("shop")


@receiver(signals.trade_paid, dispatch_uid="shop.mark_paid")
def mark_paid(sender: type, *, trade: Trade, **kwargs: Any) -> None:
    """Alipay confirmed the payment (a verified notification or a gateway answer): the order can ship."""
    # Matched by number, not by Order.trade: an in-store payment is confirmed before create_trade returns.
    marked = Order.objects.filter(number=trade.out_trade_no, paid_at__isnull=True).update(
        paid_at=trade.paid_at or timezone.now()
    )
    if marked:
        logger.info(
            "order %s is paid (%s %s): ready to ship", trade.out_trade_no, trade.amount, trade.currency
        )


@receiver(signals.trade_closed, dispatch_uid="shop.mark_closed")
def mark_closed(sender: type, *, trade: Trade, **kwargs: Any) -> None:
    """The trade is closed: never paid (cancelled, timed out), reversed, or refunded in full in store."""
    Order.objects.filter(number=trade.out_trade_no, closed_at__isnull=True).update(
        closed_at=trade.closed_at or timezone.now()
    )
