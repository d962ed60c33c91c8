"""Reconciliation cut into key ranges: every open trade in exactly one batch, each batch safe to run again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import OperationalError

from django_alipay.domain import reconciliation, trades
from django_alipay.domain.reconciliation import TradePlan
from django_alipay.models import Trade
from django_alipay.protocol.clock import BEIJING
from tests.domain.fakegateway import FakeGateway, Reply

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2024, 5, 1, 18, 0, tzinfo=BEIJING)
HOUR = timedelta(hours=1)


def _open(make_trade: Callable[..., Trade], gateway: FakeGateway, status: str = "WAIT_BUYER_PAY") -> Trade:
    """A trade unpaid here for an hour; the gateway says ``status``."""
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None, created_at=NOW - HOUR)
    gateway.trades[trade.out_trade_no] = {"trade_status": status, "total_fee": "100.00"}
    return trade


def _mixed(make_trade: Callable[..., Trade], gateway: FakeGateway, count: int) -> list[Trade]:
    """``count`` open trades, with trades reconciliation must leave alone between them (so the keys of the
    open ones have gaps): one paid, one too young, one too old to be queried."""
    opened = []
    for number in range(count):
        opened.append(_open(make_trade, gateway, "TRADE_FINISHED" if number % 2 else "WAIT_BUYER_PAY"))
        if number % 3 == 0:
            make_trade(status="TRADE_FINISHED")
            make_trade(status="WAIT_BUYER_PAY", paid_at=None, created_at=NOW - timedelta(minutes=1))
            make_trade(status="WAIT_BUYER_PAY", paid_at=None, created_at=NOW - timedelta(days=30))
    return opened


def _covered(plan: TradePlan) -> list[int]:
    """The ids of the stale trades each range holds, all ranges in order (a trade in two appears twice)."""
    ids: list[int] = []
    for part in plan.ranges:
        inside = reconciliation.stale_trades(as_of=plan.as_of).filter(pk__gt=part.after, pk__lte=part.through)
        ids.extend(inside.order_by("pk").values_list("pk", flat=True))
    return ids


@pytest.mark.parametrize(("count", "size"), [(7, 3), (6, 3), (6, 6), (5, 1), (4, 10), (1, 1)])
def test_the_ranges_hold_every_open_trade_exactly_once(
    make_trade: Callable[..., Trade], gateway: FakeGateway, fixed_clock: Any, count: int, size: int
) -> None:
    fixed_clock(NOW)
    opened = _mixed(make_trade, gateway, count)

    plan = reconciliation.plan_trade_ranges(size=size)

    assert _covered(plan) == sorted(t.pk for t in opened)
    assert plan.trades == count
    # The ranges touch end to end from the first key, none is empty, and each holds at most ``size``.
    assert plan.ranges[0].after == 0
    assert all(a.through == b.after for a, b in zip(plan.ranges, plan.ranges[1:], strict=False))
    counts = [len(_covered(TradePlan(plan.as_of, [part], 0))) for part in plan.ranges]
    assert counts == [size] * (count // size) + ([count % size] if count % size else [])


def test_no_open_trade_makes_no_range(
    make_trade: Callable[..., Trade], gateway: FakeGateway, fixed_clock: Any
) -> None:
    fixed_clock(NOW)
    make_trade(status="TRADE_FINISHED")
    assert reconciliation.plan_trade_ranges(size=5).ranges == []
    with pytest.raises(ValueError, match="at least one trade"):
        reconciliation.plan_trade_ranges(size=0)


def test_the_batches_reconcile_every_open_trade_and_their_counts_add_up_to_a_single_run(
    make_trade: Callable[..., Trade], gateway: FakeGateway, fixed_clock: Any
) -> None:
    fixed_clock(NOW)
    opened = _mixed(make_trade, gateway, 8)
    plan = reconciliation.plan_trade_ranges(size=3)

    reports = [
        reconciliation.reconcile_trade_range(part.after, part.through, as_of=plan.as_of, batch_size=2)
        for part in plan.ranges
    ]

    queried = [c.params["out_trade_no"] for c in gateway.called("single_trade_query")]
    assert sorted(queried) == sorted(t.out_trade_no for t in opened)  # each once, nothing else
    parts = [
        {"batches": 1, "trades_checked": report.trades_checked, "trades_changed": report.trades_changed}
        for report in reports
    ]
    assert reconciliation.add_up(parts) == {
        "batches": 3,
        "failed_batches": 0,
        "trades_checked": 8,
        "trades_changed": 4,
        "mismatches": 0,
        "errors": 0,
    }
    assert Trade.objects.filter(pk__in=[t.pk for t in opened], status="TRADE_FINISHED").count() == 4
    assert not reconciliation.stale_trades().exists()


def test_a_trade_created_during_the_run_is_left_to_the_next_run(
    make_trade: Callable[..., Trade], gateway: FakeGateway, fixed_clock: Any
) -> None:
    fixed_clock(NOW)
    before = [_open(make_trade, gateway) for _ in range(4)]
    plan = reconciliation.plan_trade_ranges(size=2)
    late = _open(make_trade, gateway, "TRADE_FINISHED")  # e.g. imported with an old creation time

    checked = sum(
        reconciliation.reconcile_trade_range(p.after, p.through, as_of=plan.as_of).trades_checked
        for p in plan.ranges
    )

    assert checked == len(before)
    assert late.out_trade_no not in {c.params["out_trade_no"] for c in gateway.called("single_trade_query")}
    assert [r.pk for r in reconciliation.stale_trades()] == [late.pk]
    assert _covered(reconciliation.plan_trade_ranges(size=2)) == [late.pk]


def _rows(ids: list[int]) -> list[dict[str, Any]]:
    return list(Trade.objects.filter(pk__in=ids).order_by("pk").values())


@pytest.mark.parametrize("age", [0, 1800])
def test_a_batch_run_twice_changes_nothing_the_second_time(
    make_trade: Callable[..., Trade], gateway: FakeGateway, fixed_clock: Any, age: int
) -> None:
    clock = fixed_clock(NOW)
    opened = [_open(make_trade, gateway, status) for status in ("WAIT_BUYER_PAY", "TRADE_FINISHED")]
    opened.append(make_trade(status="WAIT_BUYER_PAY", paid_at=None, created_at=NOW - HOUR))  # unknown there
    down = {opened[0].out_trade_no}  # the gateway fails every query of the first trade, for now

    def answer(params: dict[str, str]) -> Reply:
        number = params["out_trade_no"]
        if number in down:
            return gateway.refused("SYSTEM_ERROR")
        found = gateway.trades.get(number)
        return gateway.signed(found, element="trade") if found else gateway.refused("TRADE_NOT_EXIST")

    gateway.on("single_trade_query", answer)
    plan = reconciliation.plan_trade_ranges(size=10, age=age)
    [part] = plan.ranges

    first = reconciliation.reconcile_trade_range(part.after, part.through, as_of=plan.as_of, age=age)
    assert (first.trades_checked, first.trades_changed, len(first.errors)) == (3, 1, 1)
    gateway.calls.clear()
    down.clear()
    after_first = _rows([t.pk for t in opened])

    clock.advance(minutes=40)  # the message is delivered again later
    second = reconciliation.reconcile_trade_range(part.after, part.through, as_of=plan.as_of, age=age)
    # Only the trade whose query failed is asked again; the others were handled by this run already.
    asked = [c.params["out_trade_no"] for c in gateway.called("single_trade_query")]
    assert asked == [opened[0].out_trade_no]
    assert (second.trades_checked, second.trades_changed, second.errors) == (1, 0, [])
    changed = [row for row, was in zip(_rows([t.pk for t in opened]), after_first, strict=True) if row != was]
    assert [row["id"] for row in changed] == [opened[0].pk]  # its answer recorded now, nothing else moved
    assert changed[0]["status"] == "WAIT_BUYER_PAY"

    gateway.calls.clear()
    after_second = _rows([t.pk for t in opened])
    third = reconciliation.reconcile_trade_range(part.after, part.through, as_of=plan.as_of, age=age)
    assert (third.trades_checked, gateway.calls) == (0, [])
    assert _rows([t.pk for t in opened]) == after_second


def test_a_batch_that_dies_halfway_finishes_the_rest_when_retried(
    make_trade: Callable[..., Trade], gateway: FakeGateway, fixed_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed_clock(NOW)
    opened = [_open(make_trade, gateway, s) for s in ("WAIT_BUYER_PAY",) * 2 + ("TRADE_FINISHED",) * 3]
    plan = reconciliation.plan_trade_ranges(size=5)
    [part] = plan.ranges
    apply_status = trades.apply_status
    failures = iter([OperationalError("the database went away")])

    def once_broken(*args: Any, **kwargs: Any) -> Any:
        for exc in failures:
            raise exc
        return apply_status(*args, **kwargs)

    monkeypatch.setattr(trades, "apply_status", once_broken)
    with pytest.raises(OperationalError):
        reconciliation.reconcile_trade_range(part.after, part.through, as_of=plan.as_of)
    first_calls = [c.params["out_trade_no"] for c in gateway.called("single_trade_query")]
    assert first_calls == [t.out_trade_no for t in opened[:3]]
    gateway.calls.clear()

    retried = reconciliation.reconcile_trade_range(part.after, part.through, as_of=plan.as_of)

    # The two answers recorded before the failure are not asked for again.
    assert [c.params["out_trade_no"] for c in gateway.called("single_trade_query")] == [
        t.out_trade_no for t in opened[2:]
    ]
    assert (retried.trades_checked, retried.trades_changed, retried.ok) == (3, 3, True)
    statuses = list(Trade.objects.filter(pk__in=[t.pk for t in opened]).order_by("pk").values_list("status"))
    assert statuses == [("WAIT_BUYER_PAY",)] * 2 + [("TRADE_FINISHED",)] * 3
    assert not reconciliation.stale_trades().exists()


def test_add_up_counts_missing_counts_as_zero() -> None:
    total = reconciliation.add_up(
        [
            {"batches": 1, "trades_checked": 3, "errors": 1, "after": 0},
            {"batches": 1, "failed_batches": 1},
            {},
        ]
    )
    assert total == {
        "batches": 2,
        "failed_batches": 1,
        "trades_checked": 3,
        "trades_changed": 0,
        "mismatches": 0,
        "errors": 1,
    }
