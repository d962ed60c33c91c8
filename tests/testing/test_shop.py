"""A shop's own test module, written with the test kit the way the documentation shows.

Pay through the emulator, receive its notification through the shop's notify URL, refund, survive a
dropped connection, and REVERSE at the Beijing day boundary.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from django_alipay.domain import refunds, settlement, trades
from django_alipay.domain.errors import ReverseNotAllowed
from django_alipay.enums import RefundKind, RefundStatus
from django_alipay.models import Merchant, Notification, Refund, Trade
from django_alipay.testing import BeijingClock, EmulatorProcess, faults, post_notification
from django_alipay.testing.clock import standing_at
from django_alipay.testing.faults import FaultInjector

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("shop_settings")]

BUYER_BARCODE = "286123456789012345"  # the emulator's default buyer


def order_number() -> str:
    return "SHOP-" + uuid.uuid4().hex[:12]


def pay_online(emulator: EmulatorProcess, merchant: Merchant, client: Any, amount: str = "25.00") -> Trade:
    """The whole online payment: create, pay at the emulator's cashier, relay its notification."""
    start = trades.create_trade(
        merchant, out_trade_no=order_number(), amount=amount, currency="USD", subject="Mug"
    )
    emulator.pay(url=start.url)
    [delivery] = emulator.notifications(start.trade.out_trade_no)
    response = post_notification(client, merchant, delivery)
    assert (response.status_code, response.content) == (200, b"success")
    return Trade.objects.get(pk=start.trade.pk)


@pytest.mark.parametrize(
    "sign_type",
    ["MD5", "RSA", "RSA2", pytest.param("DSA", marks=pytest.mark.alipay_emulator(merchant_key="DSA"))],
)
def test_pay_receive_the_notification_and_refund(
    alipay_emulator: EmulatorProcess, client: Any, sign_type: str
) -> None:
    merchant = alipay_emulator.merchant(sign_type=sign_type)

    trade = pay_online(alipay_emulator, merchant, client)

    assert trade.status == "TRADE_FINISHED"
    assert trade.trade_no == alipay_emulator.trades(trade.out_trade_no)[0]["trade_no"]
    stored = Notification.objects.get(trade=trade)
    assert (stored.verification, stored.outcome) == ("verified", "processed")  # notify_verify said true
    refund = refunds.request_refund(trade, Decimal("10.00"), reason="chipped")
    assert refund.status == RefundStatus.SUCCEEDED, (refund.status, refund.error_code)
    assert alipay_emulator.trades(trade.out_trade_no)[0]["refunded"] == "10.00"


def test_a_built_notification_in_one_line(
    alipay_emulator: EmulatorProcess, client: Any, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_VERIFY": False}  # the emulator never sent this one
    merchant = alipay_emulator.merchant()
    start = trades.create_trade(merchant, out_trade_no=order_number(), amount="9.99", subject="Tea")

    response = post_notification(client, merchant, out_trade_no=start.trade.out_trade_no)

    assert response.content == b"success"
    assert Trade.objects.get(pk=start.trade.pk).status == "TRADE_FINISHED"


def test_a_refund_survives_a_dropped_connection(
    alipay_emulator: EmulatorProcess, alipay_faults: FaultInjector, client: Any
) -> None:
    merchant = alipay_emulator.merchant()
    trade = pay_online(alipay_emulator, merchant, client)
    alipay_faults.inject(faults.drop("forex_refund", limit=1))

    refund = refunds.request_refund(trade, Decimal("10.00"))

    assert refund.status == RefundStatus.UNKNOWN  # the gateway refunded, but its answer was lost
    assert [call["fault"] for call in alipay_emulator.calls("forex_refund")] == ["drop"]
    asked = refunds.resolve_unknown(refund)  # the documented answer to a used out_return_no tells nothing
    assert (asked.status, asked.error_code) == (RefundStatus.UNKNOWN, "REPEATED_REFUNDMENT_REQUEST")
    alipay_emulator.set_clock(datetime.now(UTC) + timedelta(days=1))  # the day's transaction file exists
    with standing_at(datetime.now(UTC) + timedelta(days=1)):
        settlement.settle_from_files(merchant=merchant)
    alipay_emulator.set_clock("real")
    settled = Refund.objects.get(pk=refund.pk)
    assert settled.status == RefundStatus.SUCCEEDED
    assert settled.gateway_refund_id == refund.gateway_refund_id
    assert alipay_emulator.trades(trade.out_trade_no)[0]["refunded"] == "10.00"  # refunded once, not twice


@pytest.mark.alipay_clock("2024-03-01 23:59:58")
def test_reverse_until_235959_beijing_then_refund(
    alipay_emulator: EmulatorProcess, alipay_clock: BeijingClock, client: Any
) -> None:
    merchant = alipay_emulator.merchant()
    alipay_emulator.set_clock(alipay_clock)
    alipay_emulator.configure(timestamp_tolerance=None)  # cancel's timestamp is real time, the clock is not

    def barcode_payment() -> Trade:
        start = trades.create_trade(
            merchant, out_trade_no=order_number(), amount="12.00", subject="Lunch", product="barcode",
            buyer_identity_code=BUYER_BARCODE,
        )  # fmt: skip
        assert start.trade.status == "TRADE_SUCCESS", start.error
        return start.trade

    early, late = barcode_payment(), barcode_payment()
    alipay_clock.advance(seconds=1)
    alipay_emulator.set_clock(alipay_clock)  # 23:59:59 Beijing, still the day of payment

    reversal = refunds.reverse(early)
    assert reversal.status == RefundStatus.SUCCEEDED, (reversal.status, reversal.error_code)
    assert alipay_emulator.trades(early.out_trade_no)[0]["status"] == "TRADE_CLOSED"

    alipay_clock.advance(seconds=1)
    alipay_emulator.set_clock(alipay_clock)  # 00:00:00 Beijing: a new day (still 1 March in UTC)
    with pytest.raises(ReverseNotAllowed):
        refunds.reverse(late)
    assert refunds.choose_refund_kind(late, Decimal("12.00")).kind == RefundKind.REFUND

    # Between 00:00 and 01:30 Beijing refunds are asynchronous: the result arrives as a notification.
    refund = refunds.request_refund(late, Decimal("12.00"))
    assert refund.status == RefundStatus.SUBMITTED
    [delivery] = alipay_emulator.notifications(late.out_trade_no, notify_type="refund_status_sync")
    assert post_notification(client, merchant, delivery).content == b"success"
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
