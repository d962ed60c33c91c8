"""The domain against the real gateway emulator over HTTP: pay, notify, query, refund, reverse."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from django_alipay.domain import notifications, refunds, trades
from django_alipay.enums import RefundStatus
from django_alipay.models import Merchant, Trade
from tests.conftest import CONTROL_HEADERS, TEST_PARTNER, standalone_emulator

pytestmark = pytest.mark.django_db(transaction=True)

BUYER_BARCODE = "286123456789012345"  # the emulator's default buyer


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    """The emulator's base URL (``.../``); it runs without its notifier so tests deliver on demand."""
    with standalone_emulator() as url:
        yield url


@pytest.fixture
def shop(make_merchant: Callable[..., Merchant], emulator: str, settings: Any) -> Merchant:
    # Deliveries to the discard port fail; the tests hand the recorded bodies to the domain themselves.
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_URL_BASE": "http://127.0.0.1:9/alipay/notify/"}
    return make_merchant(gateway_url=emulator + "gateway.do")


def control(emulator: str, path: str, **data: Any) -> Any:
    response = requests.post(emulator + "control/" + path, json=data, headers=CONTROL_HEADERS, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def order_number() -> str:
    return "EMU-" + uuid.uuid4().hex[:12]


def test_online_payment_notification_and_refund(shop: Merchant, emulator: str) -> None:
    start = trades.create_trade(
        shop, out_trade_no=order_number(), amount="25.00", currency="USD", subject="Mug"
    )
    cashier = requests.get(start.url, timeout=10)  # the buyer's browser reaches the cashier
    assert cashier.status_code == 200
    control(emulator, "pay", partner=TEST_PARTNER, out_trade_no=start.trade.out_trade_no)
    control(emulator, "deliver")
    listing = requests.get(
        emulator + "control/notifications", params={"out_trade_no": start.trade.out_trade_no}, timeout=10
    ).json()
    delivery = listing["deliveries"][0]

    answer = notifications.receive(
        shop.notify_token,
        body=delivery["body"].encode("ascii"),
        content_type="application/x-www-form-urlencoded",
        remote_addr="127.0.0.1",
    )

    assert (answer.status, answer.body) == (200, "success"), answer.message
    trade = Trade.objects.get(pk=start.trade.pk)
    assert trade.status == "TRADE_FINISHED"
    assert trade.paid_at is not None

    refund = refunds.request_refund(trade, Decimal("10.00"), reason="chipped")
    assert refund.status == RefundStatus.SUCCEEDED, (refund.status, refund.error_code)
    trade.refresh_from_db()
    assert (trade.refunded_amount, trade.refund_pending_amount) == (Decimal("10.00"), Decimal("0.00"))


def test_online_payment_found_by_a_query(shop: Merchant, emulator: str) -> None:
    start = trades.create_trade(shop, out_trade_no=order_number(), amount="3.00", subject="Tea")
    requests.get(start.url, timeout=10)
    control(emulator, "pay", partner=TEST_PARTNER, out_trade_no=start.trade.out_trade_no)
    change = trades.sync_trade(start.trade)
    assert change is not None
    assert (change.changed, start.trade.status) == (True, "TRADE_FINISHED")


def test_barcode_payment_refund_and_same_day_reverse(shop: Merchant) -> None:
    paid = trades.create_trade(
        shop, out_trade_no=order_number(), amount="12.00", subject="Lunch", product="barcode",
        buyer_identity_code=BUYER_BARCODE,
    )  # fmt: skip
    assert paid.error is None, paid.error
    assert paid.trade.status == "TRADE_SUCCESS"

    refund = refunds.request_refund(paid.trade, "2.00")
    assert refund.status == RefundStatus.SUCCEEDED, (refund.status, refund.error_code)

    other = trades.create_trade(
        shop, out_trade_no=order_number(), amount="5.00", subject="Coffee", product="barcode",
        buyer_identity_code=BUYER_BARCODE,
    )  # fmt: skip
    reversal = refunds.reverse(other.trade)
    assert reversal.status == RefundStatus.SUCCEEDED, (reversal.status, reversal.error_code)
    other.trade.refresh_from_db()
    assert other.trade.status == "TRADE_CLOSED"
    assert other.trade.refunded_amount == Decimal("5.00")
