"""Full refunds replayed by idempotency key, and one place that says whether a trade was paid online."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import OperationalError, connection, transaction

from django_alipay.domain import refunds
from django_alipay.domain.errors import IdempotencyConflict
from django_alipay.models import Refund, Trade
from tests.domain.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db(transaction=True)


def ledger(refund: Refund) -> tuple[Any, ...]:
    """Everything of a refund and its trade that a refused move must leave as it was."""
    fresh = Refund.objects.get(pk=refund.pk)
    trade = Trade.objects.get(pk=fresh.trade_id)
    return (
        fresh.status,
        fresh.response,
        fresh.error_code,
        fresh.updated_at,
        trade.refunded_amount,
        trade.refund_pending_amount,
    )


# --- full refunds replayed by idempotency key ---------------------------------------------------------------


def test_a_full_refund_replayed_with_the_same_key_and_reason_returns_the_first(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade()
    first = refunds.request_full_refund(trade, reason="broken", idempotency_key="all-1")
    again = refunds.request_full_refund(trade, reason="broken", idempotency_key="all-1")
    assert again.pk == first.pk
    assert len(gateway.called("forex_refund")) == 1


def test_a_full_refund_replayed_with_another_reason_is_an_idempotency_conflict(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade()
    partial = refunds.request_refund(trade, Decimal("10.00"), reason="broken", idempotency_key="part-1")
    first = refunds.request_full_refund(trade, reason="broken", idempotency_key="all-2")
    before = (ledger(first), Refund.objects.count())
    with pytest.raises(IdempotencyConflict, match="all-2"):
        refunds.request_full_refund(trade, reason="changed my mind", idempotency_key="all-2")
    # The reason is compared whatever the key was first used for.
    with pytest.raises(IdempotencyConflict, match="part-1"):
        refunds.request_full_refund(trade, reason="changed my mind", idempotency_key="part-1")
    assert (ledger(first), Refund.objects.count()) == before
    assert partial.amount + first.amount == trade.amount
    assert len(gateway.called("forex_refund")) == 2


@pytest.fixture
def trade_row_locked(postgresql: None) -> Iterator[Callable[[Trade], None]]:
    """Hold a trade's row lock from another connection (another request refunding it) until the test ends."""
    release = threading.Event()
    threads: list[threading.Thread] = []

    def hold(trade: Trade) -> None:
        held = threading.Event()

        def run() -> None:
            try:
                with transaction.atomic():
                    Trade.objects.select_for_update().get(pk=trade.pk)
                    held.set()
                    release.wait()
            finally:
                connection.close()

        thread = threading.Thread(target=run)
        thread.start()
        threads.append(thread)
        held.wait()

    yield hold
    release.set()
    for thread in threads:
        thread.join()


def test_a_full_refund_replay_is_checked_under_the_trades_row_lock(
    make_trade: Callable[..., Trade], gateway: FakeGateway, trade_row_locked: Callable[[Trade], None]
) -> None:
    trade = make_trade()
    refunds.request_full_refund(trade, reason="broken", idempotency_key="all-3")
    trade_row_locked(trade)
    # While another request holds the trade, a replay waits for it, as request_refund's does: it does not
    # answer from a read taken outside the lock. The lock timeout turns the wait into an error to observe.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '200ms'")
        with pytest.raises(OperationalError, match="lock timeout"):
            refunds.request_full_refund(trade, reason="broken", idempotency_key="all-3")


# --- one place for "is this trade paid online" --------------------------------------------------------------


def test_the_library_asks_the_trade_whether_it_is_online_rather_than_rebuilding_its_product() -> None:
    import pathlib
    import re

    package = pathlib.Path(refunds.__file__).resolve().parent.parent
    rebuilt = re.compile(r"Product\(\w+\.product\)\.is_online")
    found = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path != package / "models" / "trade.py" and rebuilt.search(path.read_text(encoding="utf-8"))
    ]
    assert found == []
