"""Reconciliation: stale trades and unsettled refunds are queried and applied; mismatches are reported."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from django_alipay.domain import reconciliation, refunds
from django_alipay.enums import RefundStatus
from django_alipay.models import Refund, Trade
from django_alipay.protocol.clock import BEIJING
from tests.domain.fakegateway import FakeGateway, Reply

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2024, 5, 1, 18, 0, tzinfo=BEIJING)


def test_stale_unpaid_trades_are_queried_and_updated(
    make_trade: Callable[..., Trade], gateway: FakeGateway, fixed_clock: Any
) -> None:
    fixed_clock(NOW)
    stale = make_trade(status="WAIT_BUYER_PAY", paid_at=None, created_at=NOW - timedelta(hours=1))
    fresh = make_trade(status="WAIT_BUYER_PAY", paid_at=None, created_at=NOW - timedelta(minutes=1))
    ancient = make_trade(status="WAIT_BUYER_PAY", paid_at=None, created_at=NOW - timedelta(days=30))
    gateway.trades[stale.out_trade_no] = {"trade_status": "TRADE_FINISHED", "total_fee": "100.00"}

    report = reconciliation.reconcile(batch_size=1)

    assert (report.trades_checked, report.trades_changed) == (1, 1)
    assert [c.params["out_trade_no"] for c in gateway.called("single_trade_query")] == [stale.out_trade_no]
    assert Trade.objects.get(pk=stale.pk).status == "TRADE_FINISHED"
    assert (
        Trade.objects.get(pk=fresh.pk).status == Trade.objects.get(pk=ancient.pk).status == "WAIT_BUYER_PAY"
    )
    assert report.ok


def test_a_query_that_disagrees_with_the_trade_is_reported(
    make_trade: Callable[..., Trade], gateway: FakeGateway, fixed_clock: Any
) -> None:
    fixed_clock(NOW)
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None, created_at=NOW - timedelta(hours=1))
    gateway.trades[trade.out_trade_no] = {"trade_status": "TRADE_FINISHED", "total_fee": "1.00"}
    report = reconciliation.reconcile()
    [mismatch] = report.mismatches
    assert (mismatch.kind, mismatch.out_trade_no) == ("trade", trade.out_trade_no)
    assert "1.00 USD" in mismatch.message
    assert Trade.objects.get(pk=trade.pk).status == "WAIT_BUYER_PAY"


def test_unknown_and_forgotten_refunds_are_settled_under_their_gateway_ids(
    make_trade: Callable[..., Trade], gateway: FakeGateway, fixed_clock: Any, settings: Any
) -> None:
    clock = fixed_clock(NOW)
    trade = make_trade()
    gateway.once("forex_refund", lambda p: Reply(b"", status=502))
    unknown = refunds.request_refund(trade, "10.00")
    assert unknown.status == RefundStatus.UNKNOWN
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_DISPATCHER": lambda refund_id: None}
    forgotten = refunds.request_refund(trade, "5.00")
    assert forgotten.status == RefundStatus.REQUESTED

    clock.advance(minutes=10)
    report = reconciliation.reconcile()

    assert (report.refunds_checked, report.refunds_settled) == (2, 2)
    assert Refund.objects.filter(status=RefundStatus.SUCCEEDED).count() == 2
    ids = [c.params["out_return_no"] for c in gateway.called("forex_refund")]
    assert sorted(ids) == sorted(
        [unknown.gateway_refund_id, unknown.gateway_refund_id, forgotten.gateway_refund_id]
    )
    trade.refresh_from_db()
    assert (trade.refunded_amount, trade.refund_pending_amount) == (Decimal("15.00"), Decimal("0.00"))
    assert report.ok


def test_a_balance_that_does_not_add_up_is_reported(make_trade: Callable[..., Trade]) -> None:
    trade = make_trade()
    refunds.request_refund(trade, "10.00")
    Trade.objects.filter(pk=trade.pk).update(refunded_amount=Decimal("9.00"))
    [mismatch] = reconciliation.check_balances()
    assert (mismatch.kind, mismatch.object_id) == ("balance", trade.pk)
