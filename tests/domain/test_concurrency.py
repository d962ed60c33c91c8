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
