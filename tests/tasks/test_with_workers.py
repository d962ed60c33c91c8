"""Real Celery workers on Redis and PostgreSQL against the emulator: crashes, redelivery, spacing, faults.

Each test starts worker processes (``celery -A tests.tasks.celery_app worker``) that share the test database
with this process, sends work the way a shop does (the refund dispatcher on commit, or a beat entry), and
checks what the gateway saw in the emulator's own records.
"""

from __future__ import annotations

import itertools
import random
import socket
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from celery import Celery
from celery import current_app as celery_current_app

from django_alipay import schedule, tasks
from django_alipay.domain import reconciliation, refunds, trades
from django_alipay.enums import RefundStatus
from django_alipay.models import Merchant, Refund, Trade
from tests.tasks.support import (
    Beat,
    Emulator,
    RedisServer,
    Worker,
    Workers,
    all_settled,
    call_times,
    order_number,
    paid_trade,
    refund_made,
    settle_from_tomorrows_file,
    settled_or_awaiting_file,
    wait_for,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REFUND_TASK = "django_alipay.tasks.submit_refund"


@pytest.fixture
def celery_dispatch(settings: Any, celery_app: Celery) -> Celery:
    """This process enqueues refunds the way a shop with Celery does: CELERY_ENABLED, no dispatcher set."""
    settings.ALIPAY = {**settings.ALIPAY, "CELERY_ENABLED": True}
    assert refunds.refund_dispatcher() is tasks.dispatch_refund
    return celery_app


def test_a_worker_killed_while_the_gateway_call_is_in_flight_refunds_once_after_a_restart(
    workers: Workers, shop: Merchant, fresh_emulator: Emulator, celery_dispatch: Celery, fixed_clock: Any
) -> None:
    trade = paid_trade(shop, fresh_emulator)
    # The gateway holds the first refund call for 3 s: long enough to kill the worker in the middle of it.
    fresh_emulator.post("faults", {"services": {"forex_refund": {"latency": 3, "limit": 1}}})
    worker = workers.make(
        "crash",
        alipay={"HTTP_TOTAL_TIMEOUT": 6},
        visibility_timeout=8,  # Redis hands the dead worker's unacknowledged message out again after 8 s
        concurrency=1,
    ).start()

    refund = refunds.request_refund(trade, Decimal("30.00"), reason="broken lid")
    wait_for(
        lambda: Refund.objects.get(pk=refund.pk).status == RefundStatus.SUBMITTED,
        timeout=30,
        what="the worker to claim the refund",
        every=0.05,
    )
    time.sleep(1.0)  # the request is at the gateway now, its answer 2 s away
    worker.kill()
    refund.refresh_from_db()
    assert (refund.status, refund.answered_at) == (RefundStatus.SUBMITTED, None), (
        "killed after the answer came"
    )

    worker.start()
    # The resend under the same out_return_no is answered REPEATED_REFUNDMENT_REQUEST (the gateway has the
    # first request): no third call; the day's transaction file settles it.
    wait_for(lambda: settled_or_awaiting_file([refund.pk]), timeout=60, what="the resend's answer", every=0.2)
    report = settle_from_tomorrows_file(fresh_emulator, shop, fixed_clock)

    refund.refresh_from_db()
    assert report.settled == [refund.gateway_refund_id], report
    assert refund_made(refund), (refund.status, refund.error_code, workers.logs())
    calls = fresh_emulator.refund_calls(shop.partner)
    # The first call (made before the kill) and one resend under the same out_return_no; no new id minted.
    assert [call["params"]["out_return_no"] for call in calls] == [refund.gateway_refund_id] * 2
    assert refund.attempts == 2
    assert Refund.objects.count() == 1
    assert fresh_emulator.refunded(shop.partner, trade.out_trade_no) == "30.00"  # refunded once
    trade.refresh_from_db()
    assert trade.refunded_amount + trade.refund_pending_amount == Decimal("30.00")


def test_the_same_task_message_delivered_twice_makes_one_gateway_call(
    workers: Workers, shop: Merchant, fresh_emulator: Emulator, celery_app: Celery, settings: Any
) -> None:
    held: list[int] = []
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_DISPATCHER": held.append}  # this test sends the messages
    trade = paid_trade(shop, fresh_emulator)
    # A slow answer, so that the second copy surely finds the first one's call still under way.
    fresh_emulator.post("faults", {"services": {"forex_refund": {"latency": 1}}})
    worker = workers.make("twice", alipay={"HTTP_TOTAL_TIMEOUT": 4}, concurrency=2).start()
    refund = refunds.request_refund(trade, Decimal("12.50"))
    assert held == [refund.pk]

    message_id = "duplicate-" + order_number()
    for _ in range(2):  # the broker delivers one message twice (same id, same body)
        tasks.submit_refund.apply_async(args=(refund.pk,), task_id=message_id)
    wait_for(
        lambda: worker.text().count(f"[{message_id}] succeeded") >= 2,
        timeout=60,
        what="both deliveries to finish",
    )
    # And once more, long after: a redelivery of a message whose work is done.
    tasks.submit_refund.apply_async(args=(refund.pk,), task_id=message_id)
    wait_for(
        lambda: worker.text().count(f"[{message_id}] succeeded") >= 3,
        timeout=30,
        what="the late redelivery to finish",
    )

    refund.refresh_from_db()
    assert refund_made(refund), (refund.status, workers.logs())
    assert refund.attempts == 1
    calls = fresh_emulator.refund_calls(shop.partner)
    assert [call["params"]["out_return_no"] for call in calls] == [refund.gateway_refund_id]
    assert fresh_emulator.refunded(shop.partner, trade.out_trade_no) == "12.50"


def test_two_workers_keep_three_seconds_between_the_refunds_of_one_partner(
    workers: Workers, shop: Merchant, fresh_emulator: Emulator, celery_dispatch: Celery
) -> None:
    trade = paid_trade(shop, fresh_emulator)
    # The emulator refuses (SYSTEM_ERROR) a refund less than 3 s after the previous one, as Alipay may.
    fresh_emulator.post("config", {"refund_interval": 3})
    alipay = {"REFUND_SPACING": 3}
    first = workers.make("one", alipay=alipay, concurrency=2).start()
    second = workers.make("two", alipay=alipay, concurrency=2).start()

    ids = [refunds.request_refund(trade, Decimal("5.00")).pk for _ in range(10)]
    wait_for(lambda: all_settled(ids), timeout=120, what="ten spaced refunds", every=0.5)

    made = Refund.objects.filter(pk__in=ids)
    assert all(refund_made(refund) for refund in made), [(r.status, r.error_code) for r in made]
    calls = fresh_emulator.refund_calls(shop.partner)
    assert len(calls) == 10, [(c["outcome"], c["note"]) for c in calls]
    assert all(call["outcome"] == "T" for call in calls), [c["note"] for c in calls]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(call_times(calls))]
    assert min(gaps) >= 3.0, gaps
    assert sorted(c["params"]["out_return_no"] for c in calls) == sorted(r.gateway_refund_id for r in made)
    assert fresh_emulator.refunded(shop.partner, trade.out_trade_no) == "50.00"
    # Both workers competed for the refunds, and tasks that came too early waited with a retry, not a sleep.
    for worker in (first, second):
        assert f"{REFUND_TASK}[" in worker.text(), worker.name
    assert "retry: Retry in" in first.text() + second.text()


def test_after_a_slow_gateway_answer_two_workers_still_keep_three_seconds_at_the_gateway(
    workers: Workers,
    shop: Merchant,
    make_merchant: Callable[..., Merchant],
    fresh_emulator: Emulator,
    celery_dispatch: Celery,
) -> None:
    # Two Merchant rows of one Alipay partner (say, one per environment): Alipay spaces them as one.
    twin = make_merchant(partner=shop.partner, environment="sandbox", gateway_url=fresh_emulator.gateway)
    trades_ = [paid_trade(shop, fresh_emulator), paid_trade(twin, fresh_emulator)]
    fresh_emulator.post("config", {"refund_interval": 3})  # refuses a refund < 3 s after the previous one
    # The first two refund calls take 2.5 s each before the gateway takes them in; the rest are quick. A gap
    # counted from a call's start would let the quick one that follows a slow one in too early.
    fresh_emulator.post("faults", {"services": {"forex_refund": {"latency": 2.5, "limit": 2}}})
    alipay = {"REFUND_SPACING": 3}
    workers.make("one", alipay=alipay, concurrency=2).start()
    workers.make("two", alipay=alipay, concurrency=2).start()

    ids = [refunds.request_refund(trades_[n % 2], Decimal("5.00")).pk for n in range(6)]
    wait_for(lambda: all_settled(ids), timeout=180, what="six spaced refunds", every=0.5)

    made = Refund.objects.filter(pk__in=ids)
    assert all(refund_made(refund) for refund in made), [(r.status, r.error_code) for r in made]
    calls = fresh_emulator.refund_calls(shop.partner)
    assert len(calls) == 6, [(c["outcome"], c["note"]) for c in calls]
    assert all(call["outcome"] == "T" for call in calls), [c["note"] for c in calls]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(call_times(calls))]
    assert min(gaps) >= 3.0, gaps
    for trade in trades_:
        assert fresh_emulator.refunded(shop.partner, trade.out_trade_no) == "15.00"


def test_reconciliation_settles_every_trade_whose_notifications_were_dropped(
    workers: Workers, shop: Merchant, fresh_emulator: Emulator, celery_app: Celery, settings: Any
) -> None:
    # Trades carry a notify_url, so the emulator does send notifications ... and drops every one.
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_URL_BASE": "http://127.0.0.1:9/alipay/notify/"}
    fresh_emulator.post("faults", {"notifications": {"drop_rate": 1.0}})
    opened = []
    for amount in ("10.00", "20.00", "30.00"):
        start = trades.create_trade(shop, out_trade_no=order_number(), amount=amount, subject="Kettle")
        assert requests.get(start.url, timeout=10).status_code == 200
        fresh_emulator.post("pay", {"partner": shop.partner, "out_trade_no": start.trade.out_trade_no})
        opened.append(start.trade)

    def dropped() -> bool:
        sends = fresh_emulator.get("notifications", partner=shop.partner)["deliveries"]
        return {d["out_trade_no"] for d in sends if d["outcome"] == "dropped"} == {
            t.out_trade_no for t in opened
        }

    wait_for(dropped, timeout=30, what="the emulator to drop the payment notifications")
    assert Trade.objects.filter(status="WAIT_BUYER_PAY").count() == 3  # nothing told us they were paid

    # A worker, and Celery beat running the shop's one-line schedule (every 2 s here, not 5 minutes).
    settings_ = {"alipay": {"RECONCILE_TRADE_AGE": 0}, "beat_every": 2}
    worker = workers.make("reconciler", concurrency=1, **settings_).start()
    workers.make("beat", kind=Beat, **settings_).start()

    wait_for(
        lambda: not Trade.objects.filter(status="WAIT_BUYER_PAY").exists(),
        timeout=60,
        what="the periodic reconciliation to settle the trades",
    )
    for trade in opened:
        trade.refresh_from_db()
        assert (trade.status, trade.paid_at is not None) == ("TRADE_FINISHED", True)
    assert not reconciliation.stale_trades(age=0).exists()  # nothing is left open
    # It was the periodic task, sent by beat, that did it: its report is in the worker's log.
    report = "'trades_checked': 3, 'trades_changed': 3, 'mismatches': 0, 'errors': 0"
    wait_for(lambda: report in worker.text(), timeout=10, what="the periodic task's report")


def _seed_with_failures(rate: float, needed: int, low: int, high: int) -> tuple[int, int]:
    """A fault seed whose draws fail between ``low`` and ``high`` times before the ``needed``-th success.

    The emulator draws one number per refund call from random.Random(seed) (its documented, fixed order).
    Each failure is answered by one more call of the same refund, so with at most ``high`` failures in all,
    no refund can fail more than ``high`` times: the bound the test then checks is known in advance.
    """
    for seed in itertools.count(1):
        draws = random.Random(seed)
        failures = successes = 0
        while successes < needed:
            if draws.random() < rate:
                failures += 1
            else:
                successes += 1
        if low <= failures <= high:
            return seed, failures
    raise AssertionError("unreachable")


def test_system_errors_on_thirty_percent_of_calls_still_settle_every_refund_with_bounded_retries(
    workers: Workers, shop: Merchant, fresh_emulator: Emulator, celery_dispatch: Celery
) -> None:
    trades_ = [paid_trade(shop, fresh_emulator, amount="20.00") for _ in range(5)]
    seed, failures = _seed_with_failures(0.3, needed=10, low=4, high=tasks.MAX_GATEWAY_ATTEMPTS - 1)
    fresh_emulator.post("faults", {"seed": seed, "services": {"forex_refund": {"system_error_rate": 0.3}}})
    workers.make(
        "faults", annotations={REFUND_TASK: {"retry_backoff": 0.5}}, concurrency=2
    ).start()  # quicker backoff for the test; the bound on calls is the task's own

    ids = [
        refunds.request_refund(trade, Decimal(amount)).pk for trade in trades_ for amount in ("7.00", "3.00")
    ]
    wait_for(lambda: all_settled(ids), timeout=120, what="every refund to settle", every=0.5)

    made = list(Refund.objects.filter(pk__in=ids))
    assert all(refund_made(refund) for refund in made), [(r.status, r.error_code) for r in made]
    calls = fresh_emulator.refund_calls(shop.partner)
    errors = [call for call in calls if call["outcome"] == "SYSTEM_ERROR"]
    assert (len(errors), len(calls) - len(errors)) == (failures, 10)
    # Every call was counted, and no refund was called more than the task's bound.
    assert sum(refund.attempts for refund in made) == len(calls)
    assert max(refund.attempts for refund in made) <= tasks.MAX_GATEWAY_ATTEMPTS
    for trade in trades_:
        assert fresh_emulator.refunded(shop.partner, trade.out_trade_no) == "10.00"
        trade.refresh_from_db()
        assert trade.refunded_amount + trade.refund_pending_amount == Decimal("10.00")


def test_refunds_left_requested_or_unknown_are_sent_again_by_the_periodic_task(
    workers: Workers,
    shop: Merchant,
    fresh_emulator: Emulator,
    celery_app: Celery,
    settings: Any,
    fixed_clock: Any,
) -> None:
    held: list[int] = []
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_DISPATCHER": held.append}  # the dispatch gets lost
    trade = paid_trade(shop, fresh_emulator)
    lost = refunds.request_refund(trade, Decimal("4.00"))
    unknown = refunds.request_refund(trade, Decimal("6.00"))
    # The gateway makes this refund and then drops the connection: we cannot know it was made.
    fresh_emulator.post("faults", {"services": {"forex_refund": {"drop_rate": 1, "limit": 1}}})
    assert refunds.submit(unknown.pk).status == RefundStatus.UNKNOWN
    fresh_emulator.post("faults", {})
    assert Refund.objects.get(pk=lost.pk).status == RefundStatus.REQUESTED

    workers.make("sweeper", alipay={"RECONCILE_REFUND_AGE": 0}, concurrency=2).start()
    entry = schedule.beat_schedule()["django_alipay.tasks.reconcile_unknown_refunds"]
    result = celery_app.send_task(entry["task"], **entry["options"]).get(timeout=60)

    assert result == {"refunds_enqueued": 2, "awaiting_result": 0, "balance_mismatches": 0}
    # The lost one is made at once; the unknown one's resend is answered REPEATED_REFUNDMENT_REQUEST (the
    # gateway made it), and the day's transaction file settles it.
    wait_for(lambda: settled_or_awaiting_file([lost.pk, unknown.pk]), timeout=60, what="both answers")
    settle_from_tomorrows_file(fresh_emulator, shop, fixed_clock)
    for refund in (lost, unknown):
        refund.refresh_from_db()
        assert refund_made(refund), (refund.status, refund.error_code)
    calls = fresh_emulator.refund_calls(shop.partner)
    assert sorted(c["params"]["out_return_no"] for c in calls) == sorted(
        [unknown.gateway_refund_id, unknown.gateway_refund_id, lost.gateway_refund_id]
    )
    assert fresh_emulator.refunded(shop.partner, trade.out_trade_no) == "10.00"  # 6.00 made once, not twice


def test_refunds_whose_messages_were_lost_go_out_within_a_minute_once_and_only_once(
    workers: Workers, shop: Merchant, fresh_emulator: Emulator, celery_dispatch: Celery, settings: Any
) -> None:
    trade = paid_trade(shop, fresh_emulator)
    alipay = {"REFUND_SPACING": 8, "STRANDED_REFUND_AFTER": 5}
    holder = workers.make("holder", alipay=alipay, concurrency=1).start()
    first = refunds.request_refund(trade, Decimal("1.00"))
    second = refunds.request_refund(trade, Decimal("2.00"))
    # The first goes out; the second waits for the spacing in a countdown retry the worker holds.
    wait_for(lambda: all_settled([first.pk]), timeout=30, what="the first refund")
    wait_for(lambda: "retry: Retry in" in holder.text(), timeout=30, what="the second refund to wait")
    holder.kill()  # the held retry dies with the worker (Redis gives it back only after an hour)
    # And a third refund whose hand-over to the broker is lost.
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_DISPATCHER": lambda refund_id: None}
    third = refunds.request_refund(trade, Decimal("3.00"))
    failed_at = time.monotonic()

    # The database says what is left to send: the sweeper, on beat every 2 s here, hands it out again.
    worker = workers.make("rescuer", alipay=alipay, concurrency=2).start()
    workers.make("beat", kind=Beat, alipay=alipay, sweep_every=2).start()
    wait_for(lambda: all_settled([second.pk, third.pk]), timeout=60, what="the stranded refunds", every=0.5)
    assert time.monotonic() - failed_at < 60

    for refund in (first, second, third):
        refund.refresh_from_db()
        assert refund_made(refund), (refund.status, refund.error_code)
        assert refund.attempts == 1
    calls = fresh_emulator.refund_calls(shop.partner)
    assert sorted(c["params"]["out_return_no"] for c in calls) == sorted(
        r.gateway_refund_id for r in (first, second, third)
    )  # one call each: nothing sent twice
    assert fresh_emulator.refunded(shop.partner, trade.out_trade_no) == "6.00"
    assert "had no task sending it" in worker.text()


def running(worker: Worker, text: str, times: int = 1) -> bool:
    """Whether ``text`` is in the worker's log ``times`` times yet; fails at once if the worker stopped."""
    assert worker.process is not None
    if worker.process.poll() is not None or "Unrecoverable error" in worker.text():
        raise AssertionError(f"worker {worker.name} stopped:\n{worker.text()[-3000:]}")
    return worker.text().count(text) >= times


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test alone, so that restarting it disturbs nothing else."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = RedisServer(tmp_path, port).start()
    try:
        yield server
    finally:
        server.stop()


def test_a_worker_carries_on_when_redis_restarts_and_the_queued_refunds_go_out(
    transactional_db: None,
    tmp_path: Path,
    own_redis: RedisServer,
    shop: Merchant,
    fresh_emulator: Emulator,
    settings: Any,
) -> None:
    from django.db import connection

    app = Celery("django_alipay_test_restart", set_as_current=False)
    app.conf.update(broker_url=own_redis.url, task_routes=schedule.task_routes())
    previous = celery_current_app._get_current_object()
    app.set_current()
    settings.ALIPAY = {**settings.ALIPAY, "CELERY_ENABLED": True}
    restarted = Workers(tmp_path, str(connection.settings_dict["NAME"]), own_redis.url)
    try:
        trade = paid_trade(shop, fresh_emulator)
        alipay = {"REFUND_SPACING": 4, "STRANDED_REFUND_AFTER": 5}
        worker = restarted.make("survivor", alipay=alipay, concurrency=2).start()
        beat = restarted.make("beat", kind=Beat, alipay=alipay, sweep_every=2).start()
        before = [refunds.request_refund(trade, Decimal("1.00")).pk for _ in range(3)]
        # The first goes out; the others wait for the spacing in retries the worker holds, unacknowledged.
        wait_for(lambda: worker.text().count("retry: Retry in") >= 2, timeout=30, what="refunds to wait")

        # Redis restarts, without persistence: every queue and unacked entry is gone, and the worker drops
        # the retries it held; the sweeper finds them in the database and hands them out again.
        own_redis.stop()
        wait_for(lambda: running(worker, "Connection to broker lost"), timeout=30, what="a lost broker")
        own_redis.start()
        wait_for(lambda: running(worker, "Connected to redis", 2), timeout=60, what="the worker to reconnect")
        after = [refunds.request_refund(trade, Decimal("2.00")).pk for _ in range(2)]  # queued afresh
        wait_for(lambda: all_settled(before + after), timeout=90, what="every refund", every=0.5)

        assert worker.process is not None
        assert worker.process.poll() is None, worker.text()[-4000:]  # still running
        assert "Unrecoverable error" not in worker.text()
        assert beat.process is not None
        assert beat.process.poll() is None, beat.text()[-3000:]
        made = list(Refund.objects.filter(pk__in=before + after))
        assert all(refund_made(refund) for refund in made), [(r.status, r.error_code) for r in made]
        assert all(refund.attempts == 1 for refund in made)
        calls = fresh_emulator.refund_calls(shop.partner)
        sent = sorted(c["params"]["out_return_no"] for c in calls)
        assert sent == sorted(r.gateway_refund_id for r in made)  # one call each: nothing sent twice
        assert fresh_emulator.refunded(shop.partner, trade.out_trade_no) == "7.00"
    finally:
        restarted.stop_all()
        previous.set_current()
        app.close()
