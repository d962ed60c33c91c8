"""The attack list: each test tries one attack on the running product, on PostgreSQL, and shows it fails.

Kept as one list so that a reviewer starts from a green run and adds to it. Each test says what it tries in
its name; the details of each rule are tested next to the code that keeps it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from django_alipay.domain import clock as domain_clock
from django_alipay.models import Merchant, Notification, Trade
from django_alipay.protocol import signing
from django_alipay.protocol.clock import format_datetime
from tests.conftest import TEST_MD5_KEY

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgresql")]

FORM = "application/x-www-form-urlencoded"


def _signed(params: dict[str, str], *, key: str = TEST_MD5_KEY) -> bytes:
    full = dict(params, sign=signing.sign(params, sign_type="MD5", key=key), sign_type="MD5")
    return urlencode(full).encode("ascii")


def _payment(trade: Trade, notify_id: str = "5b89a773c60af059d96b1693dd00000001") -> dict[str, str]:
    return {
        "notify_id": notify_id,
        "notify_time": format_datetime(domain_clock.now()),
        "notify_type": "trade_status_sync",
        "trade_no": "2024050122001332950500389138",
        "out_trade_no": trade.out_trade_no,
        "total_fee": "100.00",
        "currency": "USD",
        "trade_status": "TRADE_FINISHED",
    }


def _notify(merchant: Merchant, body: bytes) -> Any:
    return Client().post(f"/alipay/notify/{merchant.notify_token}/", body, content_type=FORM)


def test_an_appended_empty_refund_status_cannot_stop_a_genuine_payment_from_being_applied(
    merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    genuine = _signed(_payment(trade))
    _notify(merchant, genuine + b"&refund_status=")
    answer = _notify(merchant, genuine)
    assert answer.status_code == 200
    assert Trade.objects.get(pk=trade.pk).status == "TRADE_FINISHED"
    assert Notification.objects.filter(outcome="processed").count() == 1
