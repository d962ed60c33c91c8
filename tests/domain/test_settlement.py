"""Settling refunds from the transaction file: which rows settle which refund, what is left to a person."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from django_alipay.domain import refunds, settlement
from django_alipay.enums import RefundStatus
from django_alipay.models import Refund, Trade
from django_alipay.protocol.clock import BEIJING, FixedClock
from tests.domain.fakegateway import FakeGateway, Reply

pytestmark = pytest.mark.django_db(transaction=True)

#: The refunds below are sent on 2024-05-02 (Beijing); the next day that day's file exists.
SENT_ON = datetime(2024, 5, 2, 15, 0, 0, tzinfo=BEIJING)
NEXT_DAY = SENT_ON + timedelta(days=1)


@pytest.fixture
def unknown(
    make_trade: Callable[..., Trade], gateway: FakeGateway, fixed_clock: Callable[[datetime], FixedClock]
) -> Callable[[str], Refund]:
    """A refund of ``amount`` sent on SENT_ON whose resend was answered REPEATED_REFUNDMENT_REQUEST."""
    fixed_clock(SENT_ON)

    def make(amount: str) -> Refund:
        trade = make_trade()
        gateway.once("forex_refund", lambda p: Reply(b"", status=504))
        gateway.once("forex_refund", lambda p: gateway.refused("REPEATED_REFUNDMENT_REQUEST"))
        refund = refunds.resolve_unknown(refunds.request_refund(trade, Decimal(amount)))
        assert (refund.status, refund.error_code) == (RefundStatus.UNKNOWN, "REPEATED_REFUNDMENT_REQUEST")
        # gmt_return is stamped with the real time: put the request on SENT_ON's day.
        Refund.objects.filter(pk=refund.pk).update(
            request_params={**refund.request_params, "gmt_return": "20240502150000"}
        )
        refund.refresh_from_db()
        return refund

    return make


def serve_file(gateway: FakeGateway, *lines: str) -> None:
    text = "\n".join(lines) + "\n" if lines else "No balance account data in the period"
    gateway.on("forex_compare_file", lambda p: Reply(text.encode(), content_type="text/plain; charset=utf-8"))


def row(refund: Refund, amount: str | None = None, status: str = "S", *, in_id: bool = False) -> str:
    order = refund.trade.out_trade_no
    first, remark = (refund.gateway_refund_id, "") if in_id else (order, refund.gateway_refund_id)
    return f"{first}|{amount or refund.amount}|USD|20240502150001||R|0.00|{status}|{remark}"


def test_a_listed_refund_is_settled_and_its_reserved_amount_becomes_refunded(
    unknown: Callable[[str], Refund], gateway: FakeGateway, fixed_clock: Callable[[datetime], FixedClock]
) -> None:
    refund = unknown("10.00")
    by_id = unknown("4.00")
    serve_file(
        gateway,
        f"{refund.trade.out_trade_no}|100.00|USD|20240501120000||P|0.00|S|2024050122001",
        row(refund),
        row(by_id, in_id=True),
    )
    fixed_clock(NEXT_DAY)

    report = settlement.settle_from_files()

    assert sorted(report.settled) == sorted([refund.gateway_refund_id, by_id.gateway_refund_id])
    [call] = gateway.called("forex_compare_file")
    assert (call.params["start_date"], call.params["end_date"]) == ("20240502", "20240502")
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    trade = Trade.objects.get(pk=refund.trade_id)
    assert (trade.refunded_amount, trade.refund_pending_amount) == (Decimal("10.00"), Decimal("0.00"))


def test_nothing_is_fetched_before_the_day_is_over(
    unknown: Callable[[str], Refund], gateway: FakeGateway
) -> None:
    refund = unknown("10.00")
    assert settlement.awaiting_file(refund) == SENT_ON.date()

    report = settlement.settle_from_files()

    assert gateway.called("forex_compare_file") == []
    assert report.waiting == [
        f"refund {refund.gateway_refund_id}: waiting for the settlement file of 2024-05-02"
    ]


@pytest.mark.parametrize(
    ("amount", "status", "why"),
    [("9.99", "S", "lists 9.99 USD"), ("10.00", "F", "with status 'F'")],
)
def test_a_row_that_disagrees_settles_nothing_and_is_reported(
    unknown: Callable[[str], Refund],
    gateway: FakeGateway,
    fixed_clock: Callable[[datetime], FixedClock],
    amount: str,
    status: str,
    why: str,
) -> None:
    refund = unknown("10.00")
    serve_file(gateway, row(refund, amount, status))
    fixed_clock(NEXT_DAY)

    report = settlement.settle_from_files()

    assert report.settled == []
    [mismatch] = report.mismatches
    assert why in mismatch
    refund.refresh_from_db()
    assert refund.status == RefundStatus.UNKNOWN
    assert Trade.objects.get(pk=refund.trade_id).refund_pending_amount == Decimal("10.00")


def test_a_refund_no_file_lists_stays_unknown_and_is_reported(
    unknown: Callable[[str], Refund], gateway: FakeGateway, fixed_clock: Callable[[datetime], FixedClock]
) -> None:
    refund = unknown("10.00")
    serve_file(gateway)  # "No balance account data in the period"
    fixed_clock(NEXT_DAY + timedelta(days=12))

    report = settlement.settle_from_files()

    assert len(gateway.called("forex_compare_file")) == 2  # 13 days: two requests of at most 10
    [mismatch] = report.mismatches
    assert "is not listed in the transaction files from 2024-05-02" in mismatch
    refund.refresh_from_db()
    assert refund.status == RefundStatus.UNKNOWN


def test_a_file_the_gateway_refuses_leaves_the_refund_waiting(
    unknown: Callable[[str], Refund], gateway: FakeGateway, fixed_clock: Callable[[datetime], FixedClock]
) -> None:
    refund = unknown("10.00")
    gateway.on(
        "forex_compare_file",
        lambda p: Reply(b"System exception", content_type="text/plain; charset=utf-8"),
    )
    fixed_clock(NEXT_DAY)

    report = settlement.settle_from_files()

    assert report.mismatches == []
    assert len(report.errors) == 1
    assert report.waiting == [
        f"refund {refund.gateway_refund_id}: waiting for the settlement file of 2024-05-02"
    ]
    refund.refresh_from_db()
    assert refund.status == RefundStatus.UNKNOWN
