"""Helpers the alipay_* management commands share: finding a merchant, and words a shop owner reads easily."""

from __future__ import annotations

from typing import IO, Any

from django.core.management.base import CommandError
from django.db.models import Q

from django_alipay.enums import RefundStatus
from django_alipay.models import Merchant
from django_alipay.protocol.codes import TradeStatus

#: Trade statuses as a shop owner would say them; the others use Alipay's own description.
_TRADE_WORDS = {
    TradeStatus.WAIT_BUYER_PAY.value: "waiting for payment",
    TradeStatus.TRADE_SUCCESS.value: "paid",
    TradeStatus.TRADE_FINISHED.value: "paid",
    TradeStatus.TRADE_CLOSED.value: "closed",
}
_REFUND_WORDS = {
    RefundStatus.REQUESTED.value: "not sent yet",
    RefundStatus.SUBMITTED.value: "sent, waiting for Alipay's result",
    RefundStatus.SUCCEEDED.value: "refunded",
    RefundStatus.FAILED.value: "failed (nothing was refunded)",
    RefundStatus.UNKNOWN.value: "outcome unknown (money held back)",
}


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``1 order``, ``2 orders``."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"


def trade_words(status: str) -> str:
    """A trade status in plain words, e.g. ``paid``; unknown statuses are shown as they are."""
    if status in _TRADE_WORDS:
        return _TRADE_WORDS[status]
    try:
        return TradeStatus(status).description.rstrip(".").lower()
    except ValueError:
        return status or "unknown"


def refund_words(status: str) -> str:
    """A refund status in plain words, e.g. ``refunded``."""
    return _REFUND_WORDS.get(status, status)


def find_merchant(text: str) -> Merchant:
    """The merchant called ``text`` (name, partner ID or database id); CommandError unless exactly one."""
    query = Q(name=text) | Q(partner=text)
    if text.isdigit() and len(text) < 16:
        query |= Q(pk=int(text))
    found = list(Merchant.objects.filter(query)[:2])
    if not found:
        names = ", ".join(Merchant.objects.order_by("name").values_list("name", flat=True)[:10]) or "none yet"
        raise CommandError(f"No merchant is called {text!r}. Merchants: {names}.")
    if len(found) > 1:
        raise CommandError(f"Several merchants match {text!r}; give the exact merchant name.")
    return found[0]


def raw_stream(stdout: Any) -> IO[str]:
    """The stream under a command's OutputWrapper, for writers (rich) that end their own lines."""
    stream: IO[str] = getattr(stdout, "_out", stdout)
    return stream
