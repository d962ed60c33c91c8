"""Reconciliation: stale trades and unsettled refunds are queried and applied; mismatches are reported."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_alipay import gateway as django_gateway
from django_alipay.domain import reconciliation, refunds, trades
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


def _stale_unpaid(make_trade: Callable[..., Trade], gateway: FakeGateway, count: int) -> list[Trade]:
    made = [
        make_trade(status="WAIT_BUYER_PAY", paid_at=None, created_at=NOW - timedelta(hours=1))
        for _ in range(count)
    ]
    for trade in made:
        gateway.trades[trade.out_trade_no] = {"trade_status": "WAIT_BUYER_PAY", "total_fee": "100.00"}
    return made


def test_database_queries_grow_with_batches_not_with_trades(
    make_trade: Callable[..., Trade], gateway: FakeGateway, fixed_clock: Any
) -> None:
    fixed_clock(NOW)
    first = _stale_unpaid(make_trade, gateway, 6)
    with CaptureQueriesContext(connection) as six_in_two_batches:
        report = reconciliation.reconcile(batch_size=3, include_refunds=False)
    assert (report.trades_checked, report.trades_changed, report.ok) == (6, 0, True)

    # The first six were just synced, so they are not stale: the next run sees only the new twelve.
    second = _stale_unpaid(make_trade, gateway, 12)
    with CaptureQueriesContext(connection) as twelve_in_two_batches:
        report = reconciliation.reconcile(batch_size=6, include_refunds=False)
    assert (report.trades_checked, report.trades_changed) == (12, 0)

    assert len(gateway.called("single_trade_query")) == 18
    assert len(twelve_in_two_batches) == len(six_in_two_batches)
    for trade in Trade.objects.filter(pk__in=[t.pk for t in first + second]):
        assert trade.status == "WAIT_BUYER_PAY"
        assert trade.last_synced_at == NOW
        assert trade.gateway_response["trade_status"] == "WAIT_BUYER_PAY"


def test_one_gateway_client_serves_a_whole_run(
    make_trade: Callable[..., Trade], gateway: FakeGateway, fixed_clock: Any, monkeypatch: Any
) -> None:
    fixed_clock(NOW)
    built: list[int] = []
    real = django_gateway.client_for

    def counting(merchant: Any, *, instore: bool = False) -> Any:
        built.append(merchant.pk)
        return real(merchant, instore=instore)

    monkeypatch.setattr(django_gateway, "client_for", counting)
    _stale_unpaid(make_trade, gateway, 5)
    report = reconciliation.reconcile(batch_size=2, include_refunds=False)
    assert report.trades_checked == 5
    assert len(built) == 1


def test_an_unchanged_answer_does_not_overwrite_a_trade_that_moved_meanwhile(
    make_trade: Callable[..., Trade], gateway: FakeGateway, fixed_clock: Any
) -> None:
    fixed_clock(NOW)
    moving, still = _stale_unpaid(make_trade, gateway, 2)

    def notification_arrives(result: trades.TradeSync) -> None:
        if result.trade.pk == moving.pk:  # paid between the query and the batch's write
            Trade.objects.filter(pk=moving.pk).update(status="TRADE_SUCCESS", gateway_response={"x": "y"})

    batch = Trade.objects.filter(pk__in=[moving.pk, still.pk]).select_related("merchant").order_by("pk")
    results = trades.sync_trades(batch, on_result=notification_arrives)

    assert [r.change.changed for r in results if r.change] == [False, False]
    moved = Trade.objects.get(pk=moving.pk)
    assert (moved.status, moved.gateway_response, moved.last_synced_at) == ("TRADE_SUCCESS", {"x": "y"}, None)
    assert Trade.objects.get(pk=still.pk).last_synced_at == NOW


def test_a_trade_alipay_does_not_know_is_marked_synced_and_changes_nothing(
    make_trade: Callable[..., Trade], gateway: FakeGateway, fixed_clock: Any
) -> None:
    fixed_clock(NOW)
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None, created_at=NOW - timedelta(hours=1))
    [result] = trades.sync_trades([trade])
    assert (result.change, result.error) == (None, None)
    stored = Trade.objects.get(pk=trade.pk)
    assert (stored.status, stored.last_synced_at) == ("WAIT_BUYER_PAY", NOW)
