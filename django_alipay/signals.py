"""The signals django_alipay sends, each after the database commit of the change it announces.

Every signal is sent with ``sender`` = the model class, the model instance(s), and ``params``: the raw Alipay
parameters that caused it (a notification's fields or a gateway answer's fields), as a plain dict.

==========================  ====================================================================
Signal                      Keyword arguments
==========================  ====================================================================
trade_paid                  trade, params
trade_status_changed        trade, previous_status, status, params
trade_closed                trade, params
refund_succeeded            refund, trade, params
refund_failed               refund, trade, params (refund.error_code says why)
notification_received       notification, params (genuine and acted upon, or a duplicate)
notification_rejected       notification, params, flag (forged, malformed, or genuine but unusable)
==========================  ====================================================================

Receivers run after the commit, so they see the committed rows, and a receiver that raises is logged
(logger ``django_alipay.signals``) instead of turning an applied payment into an error answer to Alipay.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal

__all__ = [
    "notification_received",
    "notification_rejected",
    "refund_failed",
    "refund_succeeded",
    "send_on_commit",
    "trade_closed",
    "trade_paid",
    "trade_status_changed",
]

logger = logging.getLogger("django_alipay.signals")

trade_paid = Signal()
trade_status_changed = Signal()
trade_closed = Signal()
refund_succeeded = Signal()
refund_failed = Signal()
notification_received = Signal()
notification_rejected = Signal()


def send_on_commit(signal: Signal, sender: type, **kwargs: Any) -> None:
    """Send ``signal`` once the current transaction commits (at once when there is none)."""

    def send() -> None:
        for receiver, result in signal.send_robust(sender, **kwargs):
            if isinstance(result, Exception):
                logger.error(
                    "a receiver of a django_alipay signal raised: %r",
                    receiver,
                    exc_info=(type(result), result, result.__traceback__),
                )

    transaction.on_commit(send)
