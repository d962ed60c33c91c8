"""Races on PostgreSQL: threads with their own connections must never refund more than was paid."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from django_alipay.domain import refunds
from django_alipay.domain.errors import RefundAmountExceeded
from django_alipay.enums import RefundStatus
from django_alipay.models import Refund, Trade

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 20
ROUNDS = 100
# Amounts cycle so that the sums of the winners vary from round to round.
AMOUNTS = [Decimal(text) for text in ("0.50", "1.00", "1.50", "0.70", "2.30")]


# Two thousand refunds raced on twenty connections take 20 s or more: `make test` runs it, `make quick` not.
@pytest.mark.slow
def test_twenty_threads_racing_partial_refunds_never_exceed_the_paid_amount(
    postgresql: None, make_trade: Callable[..., Trade], recorded_dispatch: list[int]
) -> None:
    barrier = threading.Barrier(THREADS + 1)
    trade_for_round: list[int] = []
    outcomes: list[list[tuple[Decimal, str]]] = [[] for _ in range(ROUNDS)]
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        try:
            for round_number in range(ROUNDS):
                barrier.wait()
                amount = AMOUNTS[(index + round_number) % len(AMOUNTS)]
                trade = Trade.objects.get(pk=trade_for_round[round_number])
                try:
                    refunds.request_refund(trade, amount)
                    result = "ok"
                except RefundAmountExceeded:
                    result = "refused"
                with lock:
                    outcomes[round_number].append((amount, result))
                barrier.wait()
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(ROUNDS):
            trade_for_round.append(make_trade(amount=Decimal("10.00")).pk)
            barrier.wait()  # go
            barrier.wait()  # all done
    finally:
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []

    for round_number, pk in enumerate(trade_for_round):
        trade = Trade.objects.get(pk=pk)
        reserved = sum(
            (r.amount for r in Refund.objects.filter(trade=trade, status=RefundStatus.REQUESTED)), Decimal(0)
        )
        accepted = [amount for amount, result in outcomes[round_number] if result == "ok"]
        refused = [amount for amount, result in outcomes[round_number] if result == "refused"]
        assert len(accepted) + len(refused) == THREADS
        assert reserved == sum(accepted, Decimal(0)) == trade.refund_pending_amount
        assert reserved <= trade.amount
        # Every refusal was justified: what is left is less than the smallest amount refused.
        if refused:
            assert trade.amount - reserved < min(refused)
    assert len(recorded_dispatch) == Refund.objects.count()


def test_the_database_refuses_an_overrun_even_without_the_domain(postgresql: None, make_trade: Any) -> None:
    from django.db import IntegrityError, transaction
    from django.db.models import F

    trade = make_trade(amount=Decimal("10.00"), refunded_amount=Decimal("6.00"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Trade.objects.filter(pk=trade.pk).update(
            refund_pending_amount=F("refund_pending_amount") + Decimal("4.01")
        )
    Trade.objects.filter(pk=trade.pk).update(
        refund_pending_amount=F("refund_pending_amount") + Decimal("4.00")
    )


def _wait_for_a_lock_wait(other_pid: int) -> None:
    """Until the backend ``other_pid`` waits for a row lock (the caller holds it)."""
    from django.db import connections

    prober = connections.create_connection("default")
    try:
        for _ in range(400):
            with prober.cursor() as cursor:
                cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [other_pid])
                row = cursor.fetchone()
            if row is not None and row[0] == "Lock":
                return
            threading.Event().wait(0.025)
        raise AssertionError("the other refund never waited for the trade's lock")
    finally:
        prober.close()


@pytest.mark.parametrize("paid", ["30.00", "5.00"], ids=["room-left", "nothing-left"])
def test_a_key_used_for_the_same_refund_while_waiting_for_the_trades_lock_replays_that_refund(
    postgresql: None, make_trade: Callable[..., Trade], recorded_dispatch: list[int], paid: str
) -> None:
    """The resend of a request whose original holds the trade's lock gets the original's refund once it
    commits: not a conflict, not a second refund, and not a refusal when the original took what was left."""
    from django.db import transaction

    trade = make_trade(amount=Decimal(paid))
    pid: list[int] = []
    answers: list[Any] = []
    ready = threading.Event()

    def resend() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pid.append(cursor.fetchone()[0])
            ready.set()
            fresh = Trade.objects.get(pk=trade.pk)
            answers.append(refunds.request_refund(fresh, "5.00", idempotency_key="k"))
        except BaseException as exc:
            answers.append(exc)
        finally:
            ready.set()
            connection.close()

    worker = threading.Thread(target=resend)
    with transaction.atomic():
        Trade.objects.select_for_update().get(pk=trade.pk)
        worker.start()
        ready.wait(10)
        _wait_for_a_lock_wait(pid[0])
        original = refunds.request_refund(trade, "5.00", idempotency_key="k")
    worker.join(30)

    assert len(answers) == 1
    assert isinstance(answers[0], Refund), answers[0]
    assert answers[0].pk == original.pk
    assert Refund.objects.filter(trade=trade).count() == 1
    assert Trade.objects.get(pk=trade.pk).refund_pending_amount == Decimal("5.00")
    assert recorded_dispatch == [original.pk]


def test_a_reversal_failed_while_waiting_for_the_trades_lock_no_longer_refuses_the_refund(
    postgresql: None, make_trade: Callable[..., Trade], recorded_dispatch: list[int]
) -> None:
    """A refund decided after the trade's lock is decided on the trade's refunds as they are then."""
    from django.db import transaction

    from django_alipay.domain.lifecycle import RefundEvent

    trade = make_trade(amount=Decimal("30.00"), product="barcode", status="TRADE_SUCCESS")
    reversal = Refund.objects.create(
        merchant_id=trade.merchant_id,
        trade=trade,
        kind="REVERSE",
        gateway_refund_id="RV-IN-THE-WAY",
        amount=Decimal("30.00"),
        currency=trade.currency,
        status=RefundStatus.SUBMITTED,
        debits_balance=False,
    )
    pid: list[int] = []
    answers: list[Any] = []
    ready = threading.Event()

    def refund() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pid.append(cursor.fetchone()[0])
            ready.set()
            answers.append(refunds.request_refund(Trade.objects.get(pk=trade.pk), "5.00"))
        except BaseException as exc:
            answers.append(exc)
        finally:
            ready.set()
            connection.close()

    worker = threading.Thread(target=refund)
    with transaction.atomic():
        Trade.objects.select_for_update().get(pk=trade.pk)
        worker.start()
        ready.wait(10)
        _wait_for_a_lock_wait(pid[0])
        refunds.record_result(reversal, outcome=RefundStatus.FAILED, code="X", event=RefundEvent.ANSWER)
    worker.join(30)

    assert len(answers) == 1
    assert isinstance(answers[0], Refund), answers[0]
    assert Trade.objects.get(pk=trade.pk).refund_pending_amount == Decimal("5.00")
