"""Build test merchants, trades and refunds in the database: the one place the conftest fixtures create them.

Each directory's conftest keeps its own fixture names and passes its own defaults here explicitly (the
order-number prefix, the subject, whether the trade starts paid), so a fixture reads what it makes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_alipay.models import Merchant, Refund, Trade

TEST_PARTNER = "2088101122136241"
# A made-up MD5 key in the portal's shape (32 letters and digits); never a real merchant's.
TEST_MD5_KEY = "k3y4testsOnly0f32charsXYZ7890abc"

#: What every test merchant is unless a test says otherwise: MD5, the emulator environment, a dead gateway.
MERCHANT_DEFAULTS: dict[str, Any] = {
    "partner": TEST_PARTNER,
    "environment": "emulator",
    "gateway_url": "http://127.0.0.1:9/gateway.do",
    "sign_type": "MD5",
    "md5_key": TEST_MD5_KEY,
    "currency": "USD",
}

_refund_numbers = itertools.count(1)


def merchant_factory() -> Callable[..., Merchant]:
    """A function creating Merchants "Shop 1", "Shop 2", ... with any field overridden.

    The first has TEST_PARTNER; later ones get a partner id of their own unless one is given, so two
    merchants of a test are two Alipay partners by default.
    """
    from django_alipay.models import Merchant

    counter = itertools.count(1)

    def make(**fields: Any) -> Merchant:
        number = next(counter)
        values: dict[str, Any] = {"name": f"Shop {number}", **MERCHANT_DEFAULTS}
        values.update(fields)
        if "partner" not in fields and number > 1:
            values["partner"] = f"2088{number:012d}"
        return Merchant.objects.create(**values)

    return make


def trade_factory(
    merchant: Merchant,
    *,
    numbers: Iterator[str],
    paid_at: datetime | Callable[[], datetime] | None,
    created_at: datetime | None = None,
    **defaults: Any,
) -> Callable[..., Trade]:
    """A function creating Trades of ``merchant`` (100.00 USD, web) numbered from ``numbers``.

    ``paid_at`` is the default payment time, or a function giving it (called per trade), or None for a trade
    that starts unpaid. ``created_at`` defaults to the trade's ``paid_at`` (None: the current time). Any other
    default (``subject``, ``status``) goes in ``defaults``; each call may override any field.
    """
    from django.utils import timezone

    from django_alipay.models import Trade

    def make(**fields: Any) -> Trade:
        values: dict[str, Any] = {
            "merchant": merchant,
            "out_trade_no": next(numbers),
            "amount": Decimal("100.00"),
            "currency": "USD",
            "product": "web",
            **defaults,
        }
        if paid_at is not None:
            values["paid_at"] = paid_at() if callable(paid_at) else paid_at
        values.update(fields)
        if "created_at" not in values:
            values["created_at"] = created_at or values.get("paid_at") or timezone.now()
        return Trade.objects.create(**values)

    return make


def numbered(prefix: str, counter: Iterator[int] | None = None) -> Iterator[str]:
    """Order numbers ``prefix1``, ``prefix2``, ... (from ``counter`` when several fixtures share one)."""
    return (f"{prefix}{number}" for number in (counter if counter is not None else itertools.count(1)))


def create_refund(trade: Trade, **fields: Any) -> Refund:
    """A Refund row of ``trade`` written directly (1.00 in the trade's currency, a unique gateway id)."""
    from django_alipay.models import Refund

    values: dict[str, Any] = {
        "merchant": trade.merchant,
        "trade": trade,
        "amount": Decimal("1.00"),
        "currency": trade.currency,
        "gateway_refund_id": f"RF-TEST-{next(_refund_numbers)}",
    }
    values.update(fields)
    return Refund.objects.create(**values)
