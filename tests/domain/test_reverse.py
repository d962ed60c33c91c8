"""REVERSE: the same-Beijing-day rule at its boundaries, in any server time zone (V rows)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings

from django_alipay.domain import refunds
from django_alipay.domain.errors import ReverseNotAllowed
from django_alipay.enums import RefundKind, RefundStatus
from django_alipay.models import Refund, Trade
from django_alipay.protocol.clock import BEIJING
from tests.domain.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db(transaction=True)

SERVER_ZONES = ["UTC", "Asia/Shanghai", "America/Los_Angeles"]


def beijing(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=BEIJING)  # type: ignore[misc]


def state(trade: Trade) -> tuple[Any, ...]:
    fresh = Trade.objects.get(pk=trade.pk)
    return (fresh.status, fresh.refunded_amount, fresh.refund_pending_amount, Refund.objects.count())


@pytest.fixture
def paid_in_store(make_trade: Callable[..., Trade]) -> Callable[[datetime], Trade]:
    def make(paid_at: datetime) -> Trade:
        return make_trade(product="barcode", status="TRADE_SUCCESS", paid_at=paid_at, created_at=paid_at)

    return make


@pytest.mark.parametrize("zone", SERVER_ZONES)
def test_a_trade_paid_at_235959_beijing_is_reversed_the_same_second(
    zone: str, paid_in_store: Callable[[datetime], Trade], fixed_clock: Any, gateway: FakeGateway
) -> None:
    with override_settings(TIME_ZONE=zone):
        trade = paid_in_store(beijing(2024, 5, 1, 23, 59, 59))  # 15:59:59Z
        fixed_clock(beijing(2024, 5, 1, 23, 59, 59))
        refund = refunds.reverse(trade)
    assert refund.kind == RefundKind.REVERSE
    assert refund.status == RefundStatus.SUCCEEDED
    [call] = gateway.called("alipay.acquire.cancel")
    assert call.params["out_trade_no"] == trade.out_trade_no
    trade.refresh_from_db()
    assert trade.status == "TRADE_CLOSED"
    assert (trade.refunded_amount, trade.refund_pending_amount) == (Decimal("100.00"), Decimal("0.00"))


@pytest.mark.parametrize("zone", SERVER_ZONES)
@pytest.mark.parametrize("now", [(2024, 5, 2, 0, 0, 0), (2024, 5, 2, 0, 0, 1)])
def test_the_next_beijing_day_is_refused_without_a_gateway_call(
    zone: str,
    now: tuple[int, ...],
    paid_in_store: Callable[[datetime], Trade],
    fixed_clock: Any,
    gateway: FakeGateway,
) -> None:
    with override_settings(TIME_ZONE=zone):
        trade = paid_in_store(beijing(2024, 5, 1, 23, 59, 59))
        fixed_clock(beijing(*now))
        before = state(trade)
        with pytest.raises(ReverseNotAllowed) as caught:
            refunds.reverse(trade)
    assert caught.value.message == (
        f"Order {trade.out_trade_no} was paid on 2024-05-01 (Beijing time); a reversal is only possible "
        "on the day of payment, so refund it instead."
    )
    assert state(trade) == before
    assert gateway.calls == []


@pytest.mark.parametrize("zone", SERVER_ZONES)
def test_a_payment_made_just_after_midnight_beijing_counts_as_that_day(
    zone: str, paid_in_store: Callable[[datetime], Trade], fixed_clock: Any, recorded_dispatch: list[int]
) -> None:
    # 00:00:00 Beijing is 16:00:00Z of the previous UTC day, and 09:00 the previous day in Los Angeles.
    with override_settings(TIME_ZONE=zone):
        trade = paid_in_store(beijing(2024, 5, 2, 0, 0, 0))
        fixed_clock(beijing(2024, 5, 2, 23, 59, 59))
        refund = refunds.reverse(trade)
    assert recorded_dispatch == [refund.pk]


@pytest.mark.parametrize("zone", SERVER_ZONES)
def test_an_unpaid_order_created_at_2350_can_be_cancelled_until_0005(
    zone: str, make_trade: Callable[..., Trade], fixed_clock: Any, gateway: FakeGateway
) -> None:
    with override_settings(TIME_ZONE=zone):
        trade = make_trade(
            product="qrcode", status="WAIT_BUYER_PAY", paid_at=None, created_at=beijing(2024, 5, 1, 23, 50)
        )
        fixed_clock(beijing(2024, 5, 2, 0, 4, 59))
        refund = refunds.reverse(trade)
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.debits_balance is False
    trade.refresh_from_db()
    # Closed, and no money moved: nothing was paid.
    assert trade.status == "TRADE_CLOSED"
    assert (trade.refunded_amount, trade.refund_pending_amount) == (Decimal("0.00"), Decimal("0.00"))


@pytest.mark.parametrize("zone", SERVER_ZONES)
def test_an_unpaid_order_created_at_2350_cannot_be_cancelled_at_001501(
    zone: str, make_trade: Callable[..., Trade], fixed_clock: Any, gateway: FakeGateway
) -> None:
    with override_settings(TIME_ZONE=zone):
        trade = make_trade(
            product="qrcode", status="WAIT_BUYER_PAY", paid_at=None, created_at=beijing(2024, 5, 1, 23, 50)
        )
        fixed_clock(beijing(2024, 5, 2, 0, 15, 1))
        before = state(trade)
        with pytest.raises(ReverseNotAllowed, match="can no longer be cancelled"):
            refunds.reverse(trade)
    assert state(trade) == before
    assert gateway.calls == []


def test_a_partly_refunded_trade_cannot_be_reversed(
    paid_in_store: Callable[[datetime], Trade], fixed_clock: Any, gateway: FakeGateway
) -> None:
    fixed_clock(beijing(2024, 5, 1, 18, 0))
    trade = paid_in_store(beijing(2024, 5, 1, 12, 0))
    refunds.request_refund(trade, "10.00")
    before = state(trade)
    with pytest.raises(ReverseNotAllowed, match="full amount only"):
        refunds.reverse(trade)
    assert state(trade) == before
    assert gateway.called("alipay.acquire.cancel") == []


def test_a_pending_refund_also_blocks_a_reversal(
    paid_in_store: Callable[[datetime], Trade], fixed_clock: Any, recorded_dispatch: list[int]
) -> None:
    fixed_clock(beijing(2024, 5, 1, 18, 0))
    trade = paid_in_store(beijing(2024, 5, 1, 12, 0))
    refunds.request_refund(trade, "0.01")
    with pytest.raises(ReverseNotAllowed, match="full amount only"):
        refunds.reverse(trade)


def test_reversing_twice_returns_the_first_reversal_and_calls_once(
    paid_in_store: Callable[[datetime], Trade], fixed_clock: Any, gateway: FakeGateway
) -> None:
    fixed_clock(beijing(2024, 5, 1, 18, 0))
    trade = paid_in_store(beijing(2024, 5, 1, 12, 0))
    first = refunds.reverse(trade)
    second = refunds.reverse(trade)
    assert first.pk == second.pk
    assert second.status == RefundStatus.SUCCEEDED
    assert len(gateway.called("alipay.acquire.cancel")) == 1


def test_online_payments_are_never_reversed(make_trade: Callable[..., Trade], fixed_clock: Any) -> None:
    fixed_clock(beijing(2024, 5, 1, 12, 30))
    with pytest.raises(ReverseNotAllowed, match="refund them instead"):
        refunds.reverse(make_trade())


def test_spot_reverse_can_be_chosen_instead_of_cancel(
    paid_in_store: Callable[[datetime], Trade], fixed_clock: Any, gateway: FakeGateway, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REVERSE_SERVICE": "spot_reverse"}
    fixed_clock(beijing(2024, 5, 1, 18, 0))
    trade = paid_in_store(beijing(2024, 5, 1, 12, 0))
    assert refunds.reverse(trade).status == RefundStatus.SUCCEEDED
    [call] = gateway.called("alipay.acquire.overseas.spot.reverse")
    assert call.params["partner_trans_id"] == trade.out_trade_no


def test_an_unknown_reversal_is_settled_by_a_query(
    paid_in_store: Callable[[datetime], Trade], fixed_clock: Any, gateway: FakeGateway
) -> None:
    fixed_clock(beijing(2024, 5, 1, 18, 0))
    trade = paid_in_store(beijing(2024, 5, 1, 12, 0))
    gateway.once("alipay.acquire.cancel", lambda p: gateway.signed({"result_code": "UNKNOWN"}))
    refund = refunds.reverse(trade)
    assert refund.status == RefundStatus.UNKNOWN
    gateway.trades[trade.out_trade_no] = {
        "alipay_trans_status": "TRADE_CLOSED",
        "partner_trans_id": trade.out_trade_no,
        "trans_amount": "100.00",
        "currency": "USD",
    }
    refund = refunds.resolve_unknown(refund)
    assert refund.status == RefundStatus.SUCCEEDED
    assert len(gateway.called("alipay.acquire.cancel")) == 1  # settled by the query, not a second cancel
    trade.refresh_from_db()
    assert trade.status == "TRADE_CLOSED"
    assert trade.refunded_amount == Decimal("100.00")


@pytest.mark.parametrize("zone", SERVER_ZONES)
def test_a_reversal_whose_turn_comes_after_beijing_midnight_fails_locally_with_the_admin_s_reason(
    zone: str,
    paid_in_store: Callable[[datetime], Trade],
    fixed_clock: Any,
    gateway: FakeGateway,
    settings: Any,
) -> None:
    held: list[int] = []
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_DISPATCHER": held.append}  # a worker sends it, later
    with override_settings(TIME_ZONE=zone):
        trade = paid_in_store(beijing(2024, 5, 1, 23, 59, 58))
        fixed_clock(beijing(2024, 5, 1, 23, 59, 59))
        reversal = refunds.reverse(trade)  # allowed: the same Beijing day
        assert (held, reversal.status) == ([reversal.pk], RefundStatus.REQUESTED)
        fixed_clock(beijing(2024, 5, 2, 0, 0, 1))  # the worker takes it up after midnight
        sent = refunds.submit(reversal.pk, wait=False)

    expected = (
        f"Order {trade.out_trade_no} was paid on 2024-05-01 (Beijing time); a reversal is only possible "
        "on the day of payment, so refund it instead."
    )
    assert (sent.status, sent.error_code, sent.error_description) == (
        RefundStatus.FAILED,
        "ReverseNotAllowed",
        expected,
    )
    assert sent.attempts == 0
    assert gateway.calls == []  # nothing was sent for Alipay to refuse (TRADE_STATUS_ERROR)
    trade.refresh_from_db()
    # The reservation is released: the trade is paid and whole again, and can be refunded instead.
    assert (trade.status, trade.refunded_amount, trade.refund_pending_amount) == (
        "TRADE_SUCCESS",
        Decimal("0.00"),
        Decimal("0.00"),
    )
    assert refunds.reverse_refusal(trade) == expected  # the admin's reason for the trade, word for word
    assert refunds.request_refund(trade, "100.00").status == RefundStatus.REQUESTED


def test_an_unpaid_order_s_cancel_taken_up_after_its_grace_fails_locally(
    make_trade: Callable[..., Trade], fixed_clock: Any, gateway: FakeGateway, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_DISPATCHER": lambda refund_id: None}
    trade = make_trade(
        product="qrcode", status="WAIT_BUYER_PAY", paid_at=None, created_at=beijing(2024, 5, 1, 23, 50)
    )
    fixed_clock(beijing(2024, 5, 2, 0, 4, 59))
    cancel = refunds.reverse(trade)
    fixed_clock(beijing(2024, 5, 2, 0, 15, 1))
    sent = refunds.submit(cancel.pk, wait=False)
    assert (sent.status, sent.error_code) == (RefundStatus.FAILED, "ReverseNotAllowed")
    assert "can no longer be cancelled" in sent.error_description
    assert gateway.calls == []
