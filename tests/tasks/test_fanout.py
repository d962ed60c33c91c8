"""Reconciliation spread over Celery workers: batches by key range, retried safely, summed up at the end."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
from celery import Celery
from celery import current_app as celery_current_app
from celery.exceptions import Retry
from django.db import OperationalError

from django_alipay import tasks
from django_alipay.domain import reconciliation, trades
from django_alipay.models import Merchant, Trade
from django_alipay.protocol.clock import BEIJING
from tests import factories
from tests.domain.fakegateway import FakeGateway
from tests.tasks.support import Emulator, Workers, order_number, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2024, 5, 2, 12, 0, tzinfo=BEIJING)
SUMMARY = "reconciliation of the open trades as of"


@pytest.fixture
def chord_celery() -> Iterator[Celery]:
    """Tasks run in-process, with a result backend (as chords need) kept in memory."""
    app = Celery("django_alipay_test_chords", set_as_current=False)
    app.conf.update(
        task_always_eager=True,
        task_eager_propagates=True,
        broker_url="memory://",
        result_backend="cache+memory://",
    )
    previous = celery_current_app._get_current_object()
    app.set_current()
    try:
        yield app
    finally:
        previous.set_current()
        app.close()


@pytest.fixture(autouse=True)
def _logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="django_alipay")


def _open_trades(make_trade: Callable[..., Trade], gateway: FakeGateway, count: int) -> list[Trade]:
    """``count`` trades unpaid here for an hour; the gateway says every other one was paid."""
    made = []
    for number in range(count):
        trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None, created_at=NOW - timedelta(hours=1))
        status = "TRADE_FINISHED" if number % 2 else "WAIT_BUYER_PAY"
        gateway.trades[trade.out_trade_no] = {"trade_status": status, "total_fee": "100.00"}
        made.append(trade)
    return made


def _summaries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if SUMMARY in record.getMessage()]


def test_the_batches_reconcile_every_open_trade_and_the_summary_adds_up(
    chord_celery: Celery,
    fixed_clock: Any,
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fixed_clock(NOW)
    opened = _open_trades(make_trade, gateway, 7)

    planned = tasks.reconcile_open_trades_in_batches.delay(trade_age=60, trades_per_task=3).get()

    assert (planned["batches"], planned["trades"], planned["as_of"]) == (3, 7, NOW.isoformat())
    assert planned["summary_task"]
    queried = sorted(c.params["out_trade_no"] for c in gateway.called("single_trade_query"))
    assert queried == sorted(t.out_trade_no for t in opened)
    assert Trade.objects.filter(status="TRADE_FINISHED").count() == 3
    assert _summaries(caplog) == [
        f"{SUMMARY} {NOW.isoformat()} finished: batches 3, failed_batches 0, trades_checked 7, "
        "trades_changed 3, mismatches 0, errors 0"
    ]


def test_a_batch_that_keeps_failing_is_counted_and_the_others_still_finish(
    chord_celery: Celery,
    fixed_clock: Any,
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fixed_clock(NOW)
    opened = _open_trades(make_trade, gateway, 6)
    reconcile_range = reconciliation.reconcile_trade_range

    def database_gone_for_the_first(after: int, through: int, **kwargs: Any) -> Any:
        if after == 0:
            raise OperationalError("the database went away")
        return reconcile_range(after, through, **kwargs)

    monkeypatch.setattr(reconciliation, "reconcile_trade_range", database_gone_for_the_first)
    tasks.reconcile_open_trades_in_batches.delay(trade_age=60, trades_per_task=2).get()

    [summary] = _summaries(caplog)
    assert "batches 3, failed_batches 1, trades_checked 4, trades_changed 2," in summary
    assert [r.levelname for r in caplog.records if SUMMARY in r.getMessage()] == ["WARNING"]
    # The failed batch's trades are still open: the next run takes them.
    assert sorted(t.pk for t in reconciliation.stale_trades(age=60)) == [t.pk for t in opened[:2]]


def test_a_failed_batch_asks_for_a_retry_then_ends_as_failed_once_its_retries_are_spent(
    chord_celery: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("the database went away")

    monkeypatch.setattr(reconciliation, "reconcile_trade_range", broken)
    task = tasks.reconcile_trade_range._get_current_object()
    asked: list[float] = []

    def retry(*, countdown: float) -> Retry:
        if task.request.retries >= task.max_retries:
            raise task.MaxRetriesExceededError("spent")
        asked.append(countdown)
        raise Retry("retry", when=countdown)

    monkeypatch.setattr(task, "retry", retry)
    outcomes = []
    for retries in (0, task.max_retries):
        task.push_request(id="unit", retries=retries, is_eager=False, called_directly=False)
        try:
            outcomes.append(task.run(0, 10, NOW.isoformat()))
        except Retry:
            outcomes.append("retry")
        finally:
            task.pop_request()
    assert outcomes == ["retry", {"after": 0, "through": 10, "batches": 1, "failed_batches": 1}]
    [countdown] = asked
    assert 0 <= countdown <= tasks.RETRY_BACKOFF


def test_without_a_result_backend_the_batches_still_run_as_a_group(
    eager_celery: Celery, fixed_clock: Any, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    fixed_clock(NOW)
    _open_trades(make_trade, gateway, 4)

    planned = tasks.reconcile_open_trades_in_batches.delay(trade_age=60, trades_per_task=3).get()

    assert (planned["batches"], planned["summary_task"]) == (2, None)
    assert not reconciliation.stale_trades(age=60).exists()
    assert Trade.objects.filter(status="TRADE_FINISHED").count() == 2


def test_nothing_open_gives_an_empty_summary_at_once(
    chord_celery: Celery, fixed_clock: Any, merchant: Merchant, caplog: pytest.LogCaptureFixture
) -> None:
    fixed_clock(NOW)
    planned = tasks.reconcile_open_trades_in_batches.delay().get()
    assert planned["batches"] == 0
    assert planned["summary"]["trades_checked"] == planned["summary"]["batches"] == 0
    assert len(_summaries(caplog)) == 1


# --- with real workers --------------------------------------------------------------------------------------

BATCH_TASK = "django_alipay.tasks.reconcile_trade_range"


@pytest.mark.slow
def test_two_workers_share_the_batches_and_every_open_trade_is_reconciled_once(
    workers: Workers, shop: Merchant, fresh_emulator: Emulator, celery_app: Celery
) -> None:
    paid = []
    for amount in ("10.00", "20.00", "30.00", "40.00"):
        start = trades.create_trade(shop, out_trade_no=order_number(), amount=amount, subject="Kettle")
        assert requests.get(start.url, timeout=10).status_code == 200
        fresh_emulator.post("pay", {"partner": shop.partner, "out_trade_no": start.trade.out_trade_no})
        paid.append(start.trade)
    # Orders the gateway never saw (the buyer left before the cashier): asked about, and left unpaid.
    make = factories.trade_factory(
        shop, numbers=factories.numbered("ABANDONED-"), paid_at=None, subject="Cup"
    )
    abandoned = [make(status="WAIT_BUYER_PAY") for _ in range(8)]
    # Each query takes a while, so both workers are busy while batches are waiting.
    fresh_emulator.post("faults", {"services": {"single_trade_query": {"latency": 0.3}}})
    first = workers.make("first", concurrency=1).start()
    second = workers.make("second", concurrency=1).start()

    planned = tasks.reconcile_open_trades_in_batches.delay(trade_age=0, trades_per_task=2).get(timeout=60)
    summary = celery_app.AsyncResult(planned["summary_task"]).get(timeout=120)

    assert (planned["batches"], planned["trades"]) == (6, 12)
    assert {name: summary[name] for name in reconciliation.SUMMARY_COUNTS} == {
        "batches": 6,
        "failed_batches": 0,
        "trades_checked": 12,
        "trades_changed": 4,
        "mismatches": 0,
        "errors": 0,
    }, workers.logs()
    done = re.compile(re.escape(BATCH_TASK) + r"\[[0-9a-f-]+\] succeeded")
    shares = [len(done.findall(worker.text())) for worker in (first, second)]
    assert sum(shares) == 6, shares
    assert min(shares) >= 1, shares  # both workers took batches
    for trade in paid:
        trade.refresh_from_db()
        assert trade.status == "TRADE_FINISHED"
    queries = fresh_emulator.get("calls", service="single_trade_query", partner=shop.partner)["calls"]
    asked = sorted(call["params"]["out_trade_no"] for call in queries)
    assert asked == sorted(t.out_trade_no for t in paid + abandoned)  # each open trade once
    wait_for(lambda: SUMMARY in first.text() + second.text(), timeout=10, what="the summary in a log")
