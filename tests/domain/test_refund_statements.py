"""How many SQL statements one uncontended refund costs: counted on PostgreSQL, never timed.

A refund must reserve its amount under the trade's row lock, insert itself, claim its call, and record the
answer under lock; everything it needs beyond that (the trade, its merchant, the refund just inserted) is
already in hand and is not read again. Transaction control (BEGIN, COMMIT, SAVEPOINT, RELEASE) is not
counted: it is the same whatever the code does between.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_alipay import signals
from django_alipay.domain import refunds
from django_alipay.domain.lifecycle import RefundEvent
from django_alipay.enums import RefundStatus
from django_alipay.models import Refund, RefundSlot, Trade
from tests.domain.fakegateway import FakeGateway
from tests.statements import listing, statements

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgresql")]

#: A refund sent at once and answered SUCCESS: lock the trade (reading the key's refund and a reversal with
#: it), insert the refund claimed and reserve its amount (one statement), record the answer (one statement
#: locking the trade, then updating the refund and the trade).
SENT_AT_ONCE_MAX = 3
#: A refund handed to a queue: the lock, the insert with the reservation, then the refund read back once
#: (the queue may be eager).
QUEUED_MAX = 3


def test_a_refund_sent_at_once_and_answered_success_takes_at_most_three_statements(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade()
    succeeded: list[dict[str, Any]] = []

    def on_success(sender: type, **kwargs: Any) -> None:
        succeeded.append(kwargs)

    signals.refund_succeeded.connect(on_success)
    try:
        with CaptureQueriesContext(connection) as captured:
            refund = refunds.request_refund(trade, Decimal("10.00"), reason="late", idempotency_key="k-1")
    finally:
        signals.refund_succeeded.disconnect(on_success)

    sql = statements(captured)
    assert len(sql) <= SENT_AT_ONCE_MAX, listing(sql)
    # Fewer statements, the same ledger: sent once, recorded, the caller's objects up to date.
    assert len(gateway.called("forex_refund")) == 1
    assert refund.status == RefundStatus.SUCCEEDED
    assert (trade.refunded_amount, trade.refund_pending_amount) == (Decimal("10.00"), Decimal("0.00"))
    stored = Trade.objects.get(pk=trade.pk)
    assert (stored.refunded_amount, stored.refund_pending_amount) == (Decimal("10.00"), Decimal("0.00"))
    fresh = Refund.objects.get(pk=refund.pk)
    assert (fresh.status, fresh.attempts, fresh.answered_at) == (
        RefundStatus.SUCCEEDED,
        refund.attempts,
        refund.answered_at,
    )
    assert refund.attempts == 1
    assert [kwargs["refund"].pk for kwargs in succeeded] == [refund.pk]
    assert succeeded[0]["trade"].refunded_amount == Decimal("10.00")


def test_a_refund_sent_at_once_takes_the_statement_budget_without_a_key_too(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade()
    with CaptureQueriesContext(connection) as captured:
        refund = refunds.request_refund(trade, "5.00")

    sql = statements(captured)
    assert len(sql) <= SENT_AT_ONCE_MAX, listing(sql)
    assert refund.status == RefundStatus.SUCCEEDED


def test_an_in_store_refund_sent_at_once_keeps_to_the_same_budget(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade(product="barcode", status="TRADE_SUCCESS")
    with CaptureQueriesContext(connection) as captured:
        refund = refunds.request_refund(trade, Decimal("3.00"), idempotency_key="k-store")

    sql = statements(captured)
    assert len(sql) <= SENT_AT_ONCE_MAX, listing(sql)
    assert refund.status == RefundStatus.SUCCEEDED
    assert len(gateway.called("alipay.acquire.overseas.spot.refund")) == 1


def test_a_queued_refund_takes_at_most_three_statements(
    make_trade: Callable[..., Trade], recorded_dispatch: list[int]
) -> None:
    trade = make_trade()
    with CaptureQueriesContext(connection) as captured:
        refund = refunds.request_refund(trade, Decimal("10.00"), idempotency_key="k-queued")

    sql = statements(captured)
    assert len(sql) <= QUEUED_MAX, listing(sql)
    assert recorded_dispatch == [refund.pk]
    assert refund.status == RefundStatus.REQUESTED
    assert trade.refund_pending_amount == Decimal("10.00")
    assert Trade.objects.get(pk=trade.pk).refund_pending_amount == Decimal("10.00")


def test_submitting_a_queued_refund_reads_it_with_its_trade_and_merchant_in_one_statement(
    make_trade: Callable[..., Trade], recorded_dispatch: list[int], gateway: FakeGateway
) -> None:
    trade = make_trade()
    refund = refunds.request_refund(trade, Decimal("10.00"))
    with CaptureQueriesContext(connection) as captured:
        sent = refunds.submit(refund.pk)

    sql = statements(captured)
    # read (refund + trade + merchant), claim, record (one statement: lock, update the refund and the trade)
    assert len(sql) <= 3, listing(sql)
    assert sent.status == RefundStatus.SUCCEEDED
    assert len(gateway.called("forex_refund")) == 1


def test_recording_an_answer_locks_the_trade_before_the_refund_as_every_other_path_does(
    make_trade: Callable[..., Trade], recorded_dispatch: list[int]
) -> None:
    """One statement locks both rows, still the trade first: a path holding the trade (a notification)
    and another holding the refund never wait for each other in a cycle."""
    from django.db import connections

    trade = make_trade()
    refund = refunds.request_refund(trade, Decimal("10.00"))
    refund_table, trade_table = Refund._meta.db_table, Trade._meta.db_table
    holder = connections.create_connection("default")
    prober = connections.create_connection("default")
    done = threading.Event()
    failures: list[BaseException] = []

    def record() -> None:
        try:
            refunds.record_result(refund, outcome=RefundStatus.SUCCEEDED, event=RefundEvent.REPORT)
        except BaseException as exc:  # reported to the test below
            failures.append(exc)
        finally:
            connections.close_all()
            done.set()

    try:
        holder.set_autocommit(False)
        with holder.cursor() as cursor:
            cursor.execute(f'SELECT id FROM "{refund_table}" WHERE id = %s FOR UPDATE', [refund.pk])  # noqa: S608
        worker = threading.Thread(target=record)
        worker.start()
        # While it waits for the refund, the trade must already be locked by it.
        locked_trade = False
        for _ in range(200):
            with prober.cursor() as cursor:
                cursor.execute(
                    f'SELECT 1 FROM "{trade_table}" WHERE id = %s FOR UPDATE SKIP LOCKED',  # noqa: S608
                    [trade.pk],
                )
                if cursor.fetchone() is None:
                    locked_trade = True
                    break
            done.wait(0.05)
        assert not done.is_set(), "the record did not wait for the refund held elsewhere"
        assert locked_trade, "the record waited for the refund without holding the trade first"
    finally:
        holder.rollback()
        holder.close()
        worker.join(10)
        prober.close()
    assert failures == []
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED


def test_with_alipays_spacing_a_refund_takes_at_most_four_more_statements_for_its_send_slot_and_claim(
    make_trade: Callable[..., Trade], gateway: FakeGateway, merchant: Any, settings: Any
) -> None:
    """The partner's send slot (REFUND_SPACING, the default 3 s) costs one locked read that also reads the
    database's clock, one write to take it, and one write, on the database's clock, to give it back; the
    refund is then claimed once the slot is taken (not with its creation)."""
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 3}
    # The partner's slot as a call long past left it: free now, nothing to wait for.
    RefundSlot.objects.create(partner=merchant.partner, next_call_at=timezone.now() - timedelta(hours=1))
    trade = make_trade()
    with CaptureQueriesContext(connection) as captured:
        refund = refunds.request_refund(trade, Decimal("10.00"), idempotency_key="k-spaced")

    sql = statements(captured)
    assert len(sql) <= SENT_AT_ONCE_MAX + 4, listing(sql)
    assert refund.status == RefundStatus.SUCCEEDED
    slot = RefundSlot.objects.get(partner=merchant.partner)
    # Given back: nothing in flight, and the next call not before the spacing from the answer.
    assert (slot.in_flight_until, slot.claim) == (None, "")
    assert slot.next_call_at is not None
    assert slot.next_call_at > refund.answered_at + timedelta(seconds=2.5)


def _in_another_thread(work: Callable[[], Any]) -> Any:
    """Run ``work`` on its own thread and database connection, as another process would; its result."""
    from django.db import connections

    out: list[Any] = []

    def run() -> None:
        try:
            out.append(work())
        except BaseException as exc:  # handed to the caller
            out.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def test_an_answer_arriving_after_a_notification_recorded_the_refund_moves_the_balance_once(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    """While the call is under way a notification records the refund made; the call's own answer, recorded
    after it, finds the refund final and changes nothing (the amount is not moved twice)."""
    trade = make_trade()

    def notified_during_the_call(params: dict[str, str]) -> Any:
        def notification() -> Refund:
            refund = Refund.objects.get(gateway_refund_id=params["out_return_no"])
            return refunds.record_result(refund, outcome=RefundStatus.SUCCEEDED, event=RefundEvent.REPORT)

        assert _in_another_thread(notification).status == RefundStatus.SUCCEEDED
        return gateway.accepted()

    gateway.once("forex_refund", notified_during_the_call)
    refund = refunds.request_refund(trade, Decimal("10.00"), idempotency_key="k-notified")

    assert refund.status == RefundStatus.SUCCEEDED
    stored = Trade.objects.get(pk=trade.pk)
    assert (stored.refunded_amount, stored.refund_pending_amount) == (Decimal("10.00"), Decimal("0.00"))
    assert (trade.refunded_amount, trade.refund_pending_amount) == (Decimal("10.00"), Decimal("0.00"))


def test_recording_a_calls_answer_locks_the_trade_before_the_refund_too(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    """The answer of a refund sent at once is recorded in one statement: it still takes the trade's row
    lock before the refund's, as every other path does."""
    from django.db import connections

    trade = make_trade()
    refund_table, trade_table = Refund._meta.db_table, Trade._meta.db_table
    holder = connections.create_connection("default")
    holder.inc_thread_sharing()
    prober = connections.create_connection("default")
    answered = threading.Event()
    results: list[Any] = []

    def refund_held_during_the_call(params: dict[str, str]) -> Any:
        holder.set_autocommit(False)
        with holder.cursor() as cursor:
            cursor.execute(
                f'SELECT id FROM "{refund_table}" WHERE gateway_refund_id = %s FOR UPDATE',  # noqa: S608
                [params["out_return_no"]],
            )
        answered.set()
        return gateway.accepted()

    def request() -> None:
        try:
            results.append(refunds.request_refund(Trade.objects.get(pk=trade.pk), Decimal("10.00")))
        except BaseException as exc:  # reported to the test below
            results.append(exc)
        finally:
            connections.close_all()

    gateway.once("forex_refund", refund_held_during_the_call)
    worker = threading.Thread(target=request)
    worker.start()
    try:
        assert answered.wait(10)
        locked_trade = False
        for _ in range(200):
            with prober.cursor() as cursor:
                cursor.execute(
                    f'SELECT 1 FROM "{trade_table}" WHERE id = %s FOR UPDATE SKIP LOCKED',  # noqa: S608
                    [trade.pk],
                )
                if cursor.fetchone() is None:
                    locked_trade = True
                    break
            threading.Event().wait(0.05)
        assert not results, "the answer was recorded while the refund was locked elsewhere"
        assert locked_trade, "the answer waited for the refund without holding the trade first"
    finally:
        holder.rollback()
        holder.dec_thread_sharing()
        holder.close()
        worker.join(10)
        prober.close()
    assert len(results) == 1
    assert isinstance(results[0], Refund), results
    assert results[0].status == RefundStatus.SUCCEEDED
    stored = Trade.objects.get(pk=trade.pk)
    assert (stored.refunded_amount, stored.refund_pending_amount) == (Decimal("10.00"), Decimal("0.00"))


def test_a_dispatcher_setting_that_cannot_be_imported_leaves_the_refund_stored_requested_not_lost(
    make_trade: Callable[..., Trade], gateway: FakeGateway, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Deciding whether the new refund is sent at once must not make its request fail: the refund is
    stored, its amount reserved, requested for the sweeper, and the hand-over failure logged."""
    import logging

    settings.ALIPAY = {**settings.ALIPAY, "REFUND_DISPATCHER": "no_such_module.dispatch"}
    trade = make_trade()
    with caplog.at_level(logging.WARNING, logger="django_alipay"):
        refund = refunds.request_refund(trade, Decimal("10.00"), idempotency_key="k-bad-dispatcher")

    stored = Refund.objects.get(pk=refund.pk)
    assert (stored.status, stored.attempts) == (RefundStatus.REQUESTED, 0)
    assert Trade.objects.get(pk=trade.pk).refund_pending_amount == Decimal("10.00")
    assert gateway.called("forex_refund") == []
    assert any("could not be handed over" in record.getMessage() for record in caplog.records)
