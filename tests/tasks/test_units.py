"""Each task on its own, in this process: run eagerly (CELERY_TASK_ALWAYS_EAGER) or with its retry caught."""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from celery import Celery
from celery.exceptions import Retry
from django.db import OperationalError, connection

from django_alipay import schedule, tasks
from django_alipay.domain import clock as domain_clock
from django_alipay.domain import notifications, reconciliation, refunds
from django_alipay.enums import ProcessingOutcome, RefundStatus
from django_alipay.models import Merchant, Notification, Refund, Trade
from django_alipay.protocol import signing
from django_alipay.protocol.clock import BEIJING, format_datetime
from tests.conftest import TEST_MD5_KEY
from tests.domain.fakegateway import FakeGateway, Reply
from tests.tasks.support import ROOT, answered_just_now

pytestmark = pytest.mark.django_db(transaction=True)

FORM = "application/x-www-form-urlencoded"
#: Midday in Beijing: refunds are synchronous (never in the 00:00-01:30 window), whenever the tests run.
NOW = datetime(2024, 5, 2, 12, 0, tzinfo=BEIJING)


@pytest.fixture(autouse=True)
def _midday(fixed_clock: Callable[[datetime], Any], caplog: pytest.LogCaptureFixture) -> None:
    fixed_clock(NOW)
    caplog.set_level(logging.INFO, logger="django_alipay")


@dataclass
class Run:
    """What one run of a task body did: its return value, or the countdown of the retry it asked for."""

    result: Any
    countdown: float | None


@pytest.fixture
def run_task(eager_celery: Celery, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """Run a task's body as a worker would (not eagerly), capturing a retry instead of sending it."""

    def run(proxy: Any, *args: Any, retries: int = 0) -> Run:
        task = proxy._get_current_object()
        asked: list[float] = []

        def retry(*, countdown: float) -> Retry:
            if retries >= task.max_retries:
                raise task.MaxRetriesExceededError("spent")
            asked.append(countdown)
            raise Retry("retry", when=countdown)

        monkeypatch.setattr(task, "retry", retry)
        task.push_request(
            id="unit", args=list(args), kwargs={}, retries=retries, is_eager=False, called_directly=False
        )
        try:
            result = task.run(*args)
        except Retry:
            result = None
        finally:
            task.pop_request()
            monkeypatch.undo()
        return Run(result, asked[0] if asked else None)

    return run


@pytest.fixture
def held(settings: Any) -> list[int]:
    """Refunds are created but not dispatched: the test runs the task itself."""
    kept: list[int] = []
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_DISPATCHER": kept.append}
    return kept


# --- choosing the dispatcher --------------------------------------------------------------------------------


def test_the_dispatcher_is_chosen_by_the_settings(settings: Any) -> None:
    def custom(refund_id: int) -> None:
        pass

    base = {key: value for key, value in settings.ALIPAY.items() if key != "REFUND_DISPATCHER"}
    settings.ALIPAY = base
    assert refunds.refund_dispatcher() is refunds.submit  # no Celery: sent at once, synchronously
    settings.ALIPAY = {**base, "CELERY_ENABLED": True}
    assert refunds.refund_dispatcher() is tasks.dispatch_refund
    settings.ALIPAY = {**base, "CELERY_ENABLED": True, "REFUND_DISPATCHER": custom}
    assert refunds.refund_dispatcher() is custom  # the shop's own choice wins
    default = "django_alipay.domain.refunds.submit"
    settings.ALIPAY = {**base, "CELERY_ENABLED": True, "REFUND_DISPATCHER": default}
    assert refunds.refund_dispatcher() is refunds.submit


# --- refunds ------------------------------------------------------------------------------------------------


def test_a_refund_runs_through_the_task_eagerly_and_a_redelivery_sends_nothing(
    eager_celery: Celery, settings: Any, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "CELERY_ENABLED": True}
    refund = refunds.request_refund(make_trade(), Decimal("25.00"))
    assert refund.status == RefundStatus.SUCCEEDED
    [call] = gateway.called("forex_refund")
    assert call.params["out_return_no"] == refund.gateway_refund_id

    assert tasks.submit_refund.delay(refund.pk).get() == "succeeded"
    assert len(gateway.called("forex_refund")) == 1


def test_a_reverse_runs_through_its_task(
    eager_celery: Celery, settings: Any, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "CELERY_ENABLED": True}
    trade = make_trade(product="barcode", status="TRADE_SUCCESS", paid_at=NOW, created_at=NOW)
    reversal = refunds.reverse(trade)
    assert reversal.status == RefundStatus.SUCCEEDED
    assert len(gateway.called("alipay.acquire.cancel")) == 1
    assert tasks.submit_reverse.delay(reversal.pk).get() == "succeeded"
    assert len(gateway.called("alipay.acquire.cancel")) == 1


def test_a_refund_that_comes_too_early_for_the_spacing_is_retried_when_its_turn_comes(
    run_task: Callable[..., Run],
    held: list[int],
    settings: Any,
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 3}
    trade = make_trade()
    refund = refunds.request_refund(trade, Decimal("5.00"))
    answered_just_now(trade.merchant)

    run = run_task(tasks.submit_refund, refund.pk)

    assert run.countdown is not None
    assert 2.5 < run.countdown <= 3 + refunds.SPACING_MARGIN + tasks.SPACING_JITTER
    refund.refresh_from_db()
    assert (refund.status, refund.attempts) == (RefundStatus.REQUESTED, 0)
    assert gateway.called("forex_refund") == []


def test_with_a_queue_of_refunds_the_waits_spread_over_half_of_it(
    run_task: Callable[..., Run],
    held: list[int],
    settings: Any,
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 3}
    trade = make_trade()
    waiting = [refunds.request_refund(trade, Decimal("5.00")) for _ in range(5)]
    random.seed(99)

    countdowns = []
    for _ in range(20):
        # Each try sees the previous call answered just now, however slowly the machine runs the loop.
        answered_just_now(trade.merchant)
        countdowns.append(run_task(tasks.submit_refund, waiting[0].pk).countdown)

    # Four others wait too: each wakes at a random point of the next 4 x 3 / 2 = 6 s, not all together.
    assert all(c is not None and 2.5 < c <= 3.1 + tasks.SPACING_JITTER + 6 for c in countdowns), countdowns
    assert max(c for c in countdowns if c is not None) > 3.1 + tasks.SPACING_JITTER
    assert gateway.called("forex_refund") == []


def test_system_errors_are_retried_with_jittered_growing_delays_up_to_a_bound(
    run_task: Callable[..., Run],
    held: list[int],
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway.on("forex_refund", lambda params: gateway.refused("SYSTEM_ERROR"))
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    countdowns = []
    for retries in range(20):
        run = run_task(tasks.submit_refund, refund.pk, retries=retries)
        if run.countdown is None:
            break
        countdowns.append(run.countdown)

    calls = gateway.called("forex_refund")
    assert len(calls) == tasks.MAX_GATEWAY_ATTEMPTS
    assert {call.params["out_return_no"] for call in calls} == {refund.gateway_refund_id}
    assert len(countdowns) == tasks.MAX_GATEWAY_ATTEMPTS - 1
    for attempt, countdown in enumerate(countdowns):
        assert 0 <= countdown <= min(tasks.RETRY_BACKOFF_MAX, tasks.RETRY_BACKOFF * 2**attempt)
    refund.refresh_from_db()
    assert (refund.status, refund.attempts) == (RefundStatus.UNKNOWN, tasks.MAX_GATEWAY_ATTEMPTS)
    assert "reconciliation keeps asking" in caplog.text
    trade = Trade.objects.get(pk=refund.trade_id)
    assert trade.refund_pending_amount == Decimal("5.00")  # still reserved: never released on a guess


def test_a_resend_answered_repeated_refundment_request_ends_the_task_without_more_calls(
    run_task: Callable[..., Run],
    held: list[int],
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    # The answer is lost; the resend proves the request arrived and nothing more: its file will settle it.
    gateway.once("forex_refund", lambda params: Reply(b"", status=504))
    gateway.on("forex_refund", lambda params: gateway.refused("REPEATED_REFUNDMENT_REQUEST"))
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    runs = [run_task(tasks.submit_refund, refund.pk, retries=retries) for retries in range(4)]

    assert len(gateway.called("forex_refund")) == 2
    assert [run.countdown is None for run in runs[1:]] == [True, True, True]
    refund.refresh_from_db()
    assert (refund.status, refund.error_code) == (RefundStatus.UNKNOWN, "REPEATED_REFUNDMENT_REQUEST")
    assert not reconciliation.pending_refunds(age=0).filter(pk=refund.pk).exists()


def test_an_unreachable_gateway_leaves_the_refund_requested_and_retries(
    run_task: Callable[..., Run], held: list[int], merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    merchant.gateway_url = "http://127.0.0.1:9/gateway.do"  # nothing listens on the discard port
    merchant.save()
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    run = run_task(tasks.submit_refund, refund.pk)
    refund.refresh_from_db()
    assert (refund.status, refund.attempts) == (RefundStatus.REQUESTED, 1)
    assert run.countdown is not None
    assert 0 <= run.countdown <= tasks.RETRY_BACKOFF


def test_a_call_that_may_still_be_in_flight_is_not_repeated(
    run_task: Callable[..., Run], held: list[int], make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    # Another worker claimed it a moment ago and waits for the gateway (or died doing so).
    Refund.objects.filter(pk=refund.pk).update(
        status=RefundStatus.SUBMITTED, response={}, submitted_at=domain_clock.now(), attempts=1
    )
    run = run_task(tasks.submit_refund, refund.pk)
    assert gateway.called("forex_refund") == []
    assert run.countdown is not None
    window = 10 + refunds.IN_FLIGHT_SLACK  # the test settings' HTTP_TOTAL_TIMEOUT, plus the slack
    assert window - 2 < run.countdown <= window + tasks.SPACING_JITTER


def test_a_claim_older_than_the_deadline_is_resent_under_the_same_gateway_id(
    run_task: Callable[..., Run], held: list[int], make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    gateway.once("forex_refund", lambda params: Reply(b"", status=503))
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    refunds.submit(refund.pk)
    # As a worker that died after its claim leaves it: SUBMITTED, no answer, claimed a while ago.
    Refund.objects.filter(pk=refund.pk).update(
        status=RefundStatus.SUBMITTED,
        response={},
        answered_at=None,
        submitted_at=domain_clock.now() - timedelta(minutes=2),
    )
    run = run_task(tasks.submit_refund, refund.pk)
    assert run == Run("succeeded", None)
    first, second = gateway.called("forex_refund")
    assert first.params["out_return_no"] == second.params["out_return_no"] == refund.gateway_refund_id


def test_a_misconfigured_merchant_is_logged_and_not_retried(
    run_task: Callable[..., Run],
    held: list[int],
    merchant: Merchant,
    make_trade: Callable[..., Trade],
    caplog: pytest.LogCaptureFixture,
) -> None:
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    Merchant.objects.filter(pk=merchant.pk).update(md5_key=None)
    run = run_task(tasks.submit_refund, refund.pk)
    assert run == Run("requested", None)
    assert "reconciliation sends it once the merchant is fixed" in caplog.text


def test_ids_of_rows_that_do_not_exist_are_reported_not_raised(eager_celery: Celery) -> None:
    assert tasks.submit_refund.delay(987654).get() == "missing"
    assert tasks.sync_trade.delay(987654).get() == {"trade": 987654, "status": "missing"}
    assert tasks.process_notification.delay(987654).get() == {"notification": 987654, "outcome": "missing"}


def test_backoff_is_full_jitter_under_a_growing_capped_ceiling() -> None:
    random.seed(1234)
    for attempt, ceiling in [(0, 2.0), (1, 4.0), (3, 16.0), (6, 120.0), (30, 120.0)]:
        delays = [tasks.backoff(attempt) for _ in range(2000)]
        assert all(0 <= delay <= ceiling for delay in delays)
        # Spread over the whole interval, not bunched near its top ("full" jitter).
        assert min(delays) < 0.05 * ceiling
        assert max(delays) > 0.95 * ceiling


# --- notifications and trades -------------------------------------------------------------------------------


def _signed_payment(trade: Trade) -> bytes:
    params = {
        "notify_id": "ac05099524730693a8b330c45cf72da943",
        "notify_time": format_datetime(domain_clock.now()),
        "notify_type": "trade_status_sync",
        "trade_no": "2024050122001332950500389138",
        "out_trade_no": trade.out_trade_no,
        "total_fee": "100.00",
        "currency": "USD",
        "trade_status": "TRADE_FINISHED",
    }
    signed = {**params, "sign": signing.sign(params, sign_type="MD5", key=TEST_MD5_KEY), "sign_type": "MD5"}
    return urlencode(signed).encode("ascii")


def test_a_notification_deferred_by_an_unreachable_notify_verify_is_processed_by_the_task(
    eager_celery: Celery,
    run_task: Callable[..., Run],
    merchant: Merchant,
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    gateway.on("notify_verify", lambda params: Reply(b"", status=502))
    answer = notifications.receive(merchant.notify_token, body=_signed_payment(trade), content_type=FORM)
    assert answer.status == 503
    notification = answer.notification
    assert notification is not None

    # notify_verify still down: the task asks to be retried later.
    run = run_task(tasks.process_notification, notification.pk)
    assert run.countdown is not None
    assert 0 <= run.countdown <= tasks.RETRY_BACKOFF

    gateway.on("notify_verify", lambda params: Reply(b"true", content_type="text/plain"))
    result = tasks.process_notification.delay(notification.pk).get()
    assert result["status"] == 200
    notification.refresh_from_db()
    assert notification.outcome == ProcessingOutcome.PROCESSED
    trade.refresh_from_db()
    assert trade.status == "TRADE_FINISHED"

    # Redelivered after it was processed: nothing is done again.
    again = tasks.process_notification.delay(notification.pk).get()
    assert again == {"notification": notification.pk, "outcome": "processed", "skipped": True}
    assert Notification.objects.filter(outcome=ProcessingOutcome.PROCESSED).count() == 1


def test_sync_trade_applies_what_alipay_says_and_retries_a_system_error(
    eager_celery: Celery,
    run_task: Callable[..., Run],
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    gateway.on("single_trade_query", lambda params: gateway.refused("SYSTEM_ERROR"))
    run = run_task(tasks.sync_trade, trade.pk)
    assert run.countdown is not None

    gateway.on("single_trade_query", lambda params: gateway.signed(_paid_fields(trade), element="trade"))
    result = tasks.sync_trade.delay(trade.pk).get()
    assert result == {"trade": trade.pk, "status": "TRADE_FINISHED", "known": True, "changed": True}


def _paid_fields(trade: Trade) -> dict[str, str]:
    return {
        "out_trade_no": trade.out_trade_no,
        "trade_no": "2024050122001332950500389138",
        "trade_status": "TRADE_FINISHED",
        "total_fee": "100.00",
        "currency": "USD",
        "gmt_payment": "2024-05-01 12:00:00",
    }


def test_reconcile_open_trades_queries_unpaid_trades_past_their_age(
    eager_celery: Celery, settings: Any, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "RECONCILE_TRADE_AGE": 60}
    stale = make_trade(status="WAIT_BUYER_PAY", paid_at=None, created_at=NOW - timedelta(minutes=5))
    fresh = make_trade(status="WAIT_BUYER_PAY", paid_at=None, created_at=NOW)
    gateway.trades[stale.out_trade_no] = _paid_fields(stale)
    gateway.trades[fresh.out_trade_no] = _paid_fields(fresh)

    result = tasks.reconcile_open_trades.delay().get()

    assert result == {"trades_checked": 1, "trades_changed": 1, "mismatches": 0, "errors": 0}
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, fresh.status) == ("TRADE_FINISHED", "WAIT_BUYER_PAY")


def test_reconcile_unknown_refunds_hands_them_to_the_refund_task(
    eager_celery: Celery,
    settings: Any,
    held: list[int],
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    trade = make_trade()
    gateway.once("forex_refund", lambda params: Reply(b"", status=504))
    unknown = refunds.request_refund(trade, Decimal("10.00"))
    refunds.submit(unknown.pk)
    accepted = refunds.request_refund(trade, Decimal("20.00"))
    hour_ago = domain_clock.now() - timedelta(hours=1)
    Refund.objects.filter(pk=accepted.pk).update(
        status=RefundStatus.SUBMITTED, answered_at=hour_ago, submitted_at=hour_ago, attempts=1
    )
    Refund.objects.filter(pk=unknown.pk).update(submitted_at=hour_ago)

    result = tasks.reconcile_unknown_refunds.delay().get()

    assert result == {"refunds_enqueued": 1, "awaiting_result": 1, "balance_mismatches": 0}
    unknown.refresh_from_db()
    assert unknown.status == RefundStatus.SUCCEEDED
    sent = [call.params["out_return_no"] for call in gateway.called("forex_refund")]
    assert sent == [unknown.gateway_refund_id] * 2


def test_the_sweep_hands_only_refunds_that_no_task_is_sending_to_their_task_once(
    eager_celery: Celery,
    fixed_clock: Callable[[datetime], Any],
    settings: Any,
    held: list[int],
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "STRANDED_REFUND_AFTER": 30, "HTTP_TOTAL_TIMEOUT": 10}
    trade = make_trade()
    lost = refunds.request_refund(trade, Decimal("1.00"))  # its dispatch went nowhere: no task is due
    queued = refunds.request_refund(trade, Decimal("2.00"))
    claimed = refunds.request_refund(trade, Decimal("3.00"))
    waiting = refunds.request_refund(trade, Decimal("4.00"))
    refunds.expect_task(queued.pk, 0)  # a message was queued for it just now
    refunds.expect_task(waiting.pk, 45)  # its task retries in 45 s (waiting for the spacing, say)
    # A worker claimed this one and died mid-call: no answer was recorded.
    request = refunds._build_request(claimed, trade, NOW)
    Refund.objects.filter(pk=claimed.pk).update(
        status=RefundStatus.SUBMITTED, request_params=request, submitted_at=NOW, attempts=1
    )

    fixed_clock(NOW + timedelta(seconds=29))
    assert tasks.sweep_stranded_refunds.delay().get() == {"refunds_enqueued": 0}  # nothing is late yet
    assert gateway.called("forex_refund") == []

    fixed_clock(NOW + timedelta(seconds=31))
    assert tasks.sweep_stranded_refunds.delay().get() == {"refunds_enqueued": 2}
    sent = [call.params["out_return_no"] for call in gateway.called("forex_refund")]
    # The requested ones whose task is late; not the claimed one before its call can have ended.
    assert sorted(sent) == sorted([lost.gateway_refund_id, queued.gateway_refund_id])

    fixed_clock(NOW + timedelta(seconds=10 + refunds.IN_FLIGHT_SLACK + 31))
    assert tasks.sweep_stranded_refunds.delay().get() == {"refunds_enqueued": 1}
    sent = [call.params["out_return_no"] for call in gateway.called("forex_refund")]
    assert sent[2:] == [claimed.gateway_refund_id]  # the claimed one, resent under its own id

    fixed_clock(NOW + timedelta(seconds=45 + 31))
    assert tasks.sweep_stranded_refunds.delay().get() == {"refunds_enqueued": 1}  # its retry was lost
    assert tasks.sweep_stranded_refunds.delay().get() == {"refunds_enqueued": 0}  # all settled now
    assert len(gateway.called("forex_refund")) == 4
    assert {r.status for r in Refund.objects.all()} == {RefundStatus.SUCCEEDED}


def test_a_refund_task_that_retries_says_when_it_is_due_and_the_sweep_leaves_it_alone(
    run_task: Callable[..., Run],
    held: list[int],
    settings: Any,
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 3}
    trade = make_trade()
    refund = refunds.request_refund(trade, Decimal("5.00"))
    answered_just_now(trade.merchant)

    run = run_task(tasks.submit_refund, refund.pk)

    assert run.countdown is not None
    refund.refresh_from_db()
    assert refund.task_due_at is not None
    assert abs((refund.task_due_at - NOW).total_seconds() - run.countdown) < 0.01
    assert refund.awaits_sweep is False


def test_a_database_error_mid_send_still_schedules_the_retry_though_its_due_time_cannot_be_noted(
    run_task: Callable[..., Run],
    held: list[int],
    settings: Any,
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 3}
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))

    def database_failing(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        # The database goes away once the task has read its refund: the slot and the due time both fail.
        if "refundslot" in sql or (sql.startswith("UPDATE") and "task_due_at" in sql):
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(database_failing):
        run = run_task(tasks.submit_refund, refund.pk)

    assert run.countdown is not None  # retried later, not lost
    refund.refresh_from_db()
    assert (refund.status, refund.attempts, refund.task_due_at) == (RefundStatus.REQUESTED, 0, None)
    assert gateway.called("forex_refund") == []


def test_a_database_down_when_the_task_reads_its_refund_retries_the_task_instead_of_ending_it(
    run_task: Callable[..., Run], held: list[int], make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))

    def database_down(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        raise OperationalError("could not connect to server: Connection refused")

    with connection.execute_wrapper(database_down):
        run = run_task(tasks.submit_refund, refund.pk)

    assert run.countdown is not None  # retried later, not ended with an unexpected error
    refund.refresh_from_db()
    assert (refund.status, refund.attempts) == (RefundStatus.REQUESTED, 0)
    assert gateway.called("forex_refund") == []


# --- the schedule and routing -------------------------------------------------------------------------------


def test_the_beat_schedule_runs_the_reconciliations_the_file_settlement_and_the_sweep() -> None:
    entries = schedule.beat_schedule(trades_every=600, refunds_every=timedelta(minutes=2))
    assert {name: entry["task"] for name, entry in entries.items()} == {
        "django_alipay.tasks.reconcile_open_trades": "django_alipay.tasks.reconcile_open_trades",
        "django_alipay.tasks.reconcile_unknown_refunds": "django_alipay.tasks.reconcile_unknown_refunds",
        "django_alipay.tasks.settle_refunds_from_files": "django_alipay.tasks.settle_refunds_from_files",
        "django_alipay.tasks.sweep_stranded_refunds": "django_alipay.tasks.sweep_stranded_refunds",
    }
    # Stranded refunds are looked for often: one lost with its message goes out within about a minute.
    sweep = entries["django_alipay.tasks.sweep_stranded_refunds"]
    assert (sweep["schedule"], sweep["options"]) == (timedelta(seconds=15), {"expires": 15.0})
    files_entry = entries["django_alipay.tasks.settle_refunds_from_files"]
    assert (files_entry["schedule"], files_entry["options"]) == (timedelta(hours=1), {"expires": 3600.0})
    trades_entry = entries["django_alipay.tasks.reconcile_open_trades"]
    assert (trades_entry["schedule"], trades_entry["options"]) == (timedelta(minutes=10), {"expires": 600.0})
    refunds_entry = entries["django_alipay.tasks.reconcile_unknown_refunds"]
    assert refunds_entry["schedule"] == timedelta(minutes=2)
    assert schedule.beat_schedule(queue="ops")[schedule.PERIODIC_TASKS[0]]["options"]["queue"] == "ops"
    for task_name in schedule.PERIODIC_TASKS:
        assert task_name in eager_task_names()
    with pytest.raises(ValueError, match="trades"):
        schedule.beat_schedule(trades_every=0)


def eager_task_names() -> set[str]:
    app = Celery("names", set_as_current=False)
    return set(app.tasks)


def test_tasks_are_routed_to_the_queues_named_in_the_settings(settings: Any) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "TASK_QUEUE": "payments", "REFUND_TASK_QUEUE": "payments_refunds"}
    [router] = schedule.task_routes()
    assert router("django_alipay.tasks.submit_refund") == {"queue": "payments_refunds"}
    assert router("django_alipay.tasks.submit_reverse") == {"queue": "payments_refunds"}
    for name in ("process_notification", "sync_trade", "reconcile_open_trades", "reconcile_unknown_refunds"):
        assert router(f"django_alipay.tasks.{name}") == {"queue": "payments"}
    assert router("shop.tasks.send_invoice") is None  # the shop's own tasks are left alone


def test_the_task_options_that_make_redelivery_safe() -> None:
    app = Celery("options", set_as_current=False)
    for name in ("submit_refund", "submit_reverse", "process_notification", "sync_trade"):
        task = app.tasks[f"django_alipay.tasks.{name}"]
        assert (task.acks_late, task.reject_on_worker_lost) == (True, True), name
        assert task.max_retries is not None, name
    refund_task = app.tasks["django_alipay.tasks.submit_refund"]
    assert refund_task.max_gateway_attempts == tasks.MAX_GATEWAY_ATTEMPTS
    # Every delay a task asks for stays far below Redis's default visibility timeout (1 hour).
    assert tasks.RETRY_BACKOFF_MAX + refunds.IN_FLIGHT_SLACK + 60 < 3600


def test_the_modules_import_without_any_celery_app_configured() -> None:
    code = (
        "import sys, django; django.setup();"
        "import django_alipay.schedule; assert 'celery' not in sys.modules, 'schedule imported celery';"
        "import django_alipay.tasks as t; print(t.submit_refund.name, t.reconcile_open_trades.name)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "django_alipay.tasks.submit_refund",
        "django_alipay.tasks.reconcile_open_trades",
    ]
