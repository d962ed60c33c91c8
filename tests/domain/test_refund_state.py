"""A refund's explicit states: answered or in flight, the life-cycle table, error codes, full refunds."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from django_alipay.domain import lifecycle, refunds
from django_alipay.domain.errors import IdempotencyConflict
from django_alipay.domain.lifecycle import IllegalMove, RefundEvent
from django_alipay.enums import RefundStatus
from django_alipay.models import Refund, Trade
from django_alipay.protocol.codes import TradeStatus
from tests.domain.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db(transaction=True)


def ledger(refund: Refund) -> tuple[Any, ...]:
    """Everything of a refund and its trade that a refused move must leave as it was."""
    fresh = Refund.objects.get(pk=refund.pk)
    trade = Trade.objects.get(pk=fresh.trade_id)
    return (
        fresh.status,
        fresh.answered_at,
        fresh.response,
        fresh.error_code,
        fresh.updated_at,
        trade.refunded_amount,
        trade.refund_pending_amount,
    )


def claimed(refund: Refund, status: RefundStatus = RefundStatus.SUBMITTED) -> Refund:
    """The refund as a caller leaves it once it has claimed it for a gateway call."""
    Refund.objects.filter(pk=refund.pk).update(
        status=status, response={}, answered_at=None, submitted_at=timezone.now(), attempts=1
    )
    return Refund.objects.get(pk=refund.pk)


# --- answered or in flight ----------------------------------------------------------------------------------


def test_an_accepted_answer_without_fields_marks_the_refund_answered_and_invents_no_response(
    settings: Any, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    # Refunds sent asynchronously are answered with a bare is_success=T: accepted, the result comes later.
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SYNC": False}
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    assert refund.status == RefundStatus.SUBMITTED
    assert refund.answered_at is not None
    assert refund.response == {}
    assert (refund.accepted, refund.in_flight) == (True, False)
    assert refunds.call_in_flight(refund) == 0.0


def test_a_claimed_refund_is_in_flight_until_an_outcome_is_recorded(
    make_trade: Callable[..., Trade], recorded_dispatch: list[int]
) -> None:
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    assert (refund.in_flight, refund.accepted) == (False, False)  # requested: nobody has claimed it
    refund = claimed(refund)
    assert (refund.in_flight, refund.accepted) == (True, False)
    assert refunds.call_in_flight(refund) > 0
    refund = refunds.record_result(refund, outcome=RefundStatus.UNKNOWN, code="SYSTEM_ERROR")
    assert refund.answered_at is not None
    assert (refund.in_flight, refund.accepted) == (False, False)
    assert refunds.call_in_flight(refund) == 0.0
    refund = claimed(refund, RefundStatus.UNKNOWN)  # asked again: in flight once more
    assert refund.in_flight


def test_a_stranded_claim_is_found_by_its_missing_answer_not_by_its_last_response(
    make_trade: Callable[..., Trade], recorded_dispatch: list[int]
) -> None:
    from django_alipay.domain import reconciliation

    refund = claimed(refunds.request_refund(make_trade(), Decimal("5.00")))
    long_ago = timezone.now() - timedelta(hours=1)
    # The claim left the previous call's answer in place; what counts is that this call has none.
    Refund.objects.filter(pk=refund.pk).update(response={"error": "SYSTEM_ERROR"}, submitted_at=long_ago)
    assert list(reconciliation.stranded_refunds(after=0)) == [refund]
    Refund.objects.filter(pk=refund.pk).update(answered_at=long_ago, response={})
    assert list(reconciliation.stranded_refunds(after=0)) == []


def test_the_migration_marks_refunds_with_a_recorded_answer_as_answered_when_last_written(
    make_trade: Callable[..., Trade], recorded_dispatch: list[int]
) -> None:
    migration = importlib.import_module("django_alipay.migrations.0007_refund_answered_at")
    trade = make_trade()
    answered = refunds.request_refund(trade, Decimal("1.00"))
    in_flight = refunds.request_refund(trade, Decimal("2.00"))
    Refund.objects.filter(pk=answered.pk).update(status=RefundStatus.SUBMITTED, response={"is_success": "T"})
    Refund.objects.filter(pk=in_flight.pk).update(status=RefundStatus.SUBMITTED, response={})

    migration.mark_answered(apps, None)

    answered.refresh_from_db()
    in_flight.refresh_from_db()
    assert answered.answered_at == answered.updated_at
    assert answered.accepted
    assert in_flight.answered_at is None
    assert in_flight.in_flight


# --- the life-cycle table -----------------------------------------------------------------------------------


def test_every_refund_status_is_in_the_table_and_only_succeeded_and_failed_are_final() -> None:
    moves = lifecycle.REFUND_MOVES
    named = {move.source for move in moves} | {move.target for move in moves}
    assert named == {str(status) for status in RefundStatus}
    final = lifecycle.REFUND_FINAL
    assert final == {RefundStatus.SUCCEEDED, RefundStatus.FAILED}
    assert {move.event for move in lifecycle.REFUND_MOVES} == {event.value for event in RefundEvent}


# Every move the domain, tasks, notification, settlement-file and admin tests make (recorded from a run).
MOVES_MADE = [
    ("requested", RefundEvent.CLAIM, "submitted"),
    ("requested", RefundEvent.EXPIRED, "failed"),
    ("submitted", RefundEvent.ANSWER, "requested"),
    ("submitted", RefundEvent.ANSWER, "submitted"),
    ("submitted", RefundEvent.ANSWER, "unknown"),
    ("submitted", RefundEvent.ANSWER, "succeeded"),
    ("submitted", RefundEvent.ANSWER, "failed"),
    ("submitted", RefundEvent.RESEND, "submitted"),
    ("submitted", RefundEvent.NOTIFICATION, "succeeded"),
    ("submitted", RefundEvent.NOTIFICATION, "failed"),
    ("submitted", RefundEvent.REPORT, "failed"),
    ("submitted", RefundEvent.REPORT, "unknown"),
    ("requested", RefundEvent.REPORT, "failed"),
    ("unknown", RefundEvent.ANSWER, "submitted"),
    ("unknown", RefundEvent.ANSWER, "unknown"),
    ("unknown", RefundEvent.ANSWER, "succeeded"),
    ("unknown", RefundEvent.RESEND, "unknown"),
    ("unknown", RefundEvent.QUERY, "succeeded"),
    ("unknown", RefundEvent.FILE, "succeeded"),
    ("unknown", RefundEvent.REPORT, "succeeded"),
    ("unknown", RefundEvent.REPORT, "unknown"),
]


@pytest.mark.parametrize(("source", "event", "target"), MOVES_MADE)
def test_the_table_allows_every_move_the_library_makes(source: str, event: RefundEvent, target: str) -> None:
    assert lifecycle.refund_move_allowed(source, event, target)


@pytest.mark.parametrize(
    ("source", "event", "target"),
    [
        ("unknown", RefundEvent.ANSWER, "requested"),  # an earlier attempt may have been delivered
        ("submitted", RefundEvent.NOTIFICATION, "unknown"),  # a notification only reports a result
        ("unknown", RefundEvent.FILE, "failed"),  # a file lists refunds that were made
        ("submitted", RefundEvent.CLAIM, "submitted"),  # only a requested refund is claimed
        ("submitted", RefundEvent.EXPIRED, "failed"),  # only a refund not sent yet can expire
    ],
)
def test_the_table_refuses_moves_that_would_lose_track_of_money(
    source: str, event: RefundEvent, target: str
) -> None:
    assert not lifecycle.refund_move_allowed(source, event, target)


def test_recording_a_move_outside_the_table_raises_an_internal_error_and_changes_nothing(
    make_trade: Callable[..., Trade], recorded_dispatch: list[int]
) -> None:
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    refund = refunds.record_result(claimed(refund), outcome=RefundStatus.UNKNOWN, code="SYSTEM_ERROR")
    before = ledger(refund)
    with pytest.raises(IllegalMove, match=f"{refund.gateway_refund_id}.*unknown to requested"):
        refunds.record_result(refund, outcome=RefundStatus.REQUESTED, code="NOT_SENT")
    with pytest.raises(IllegalMove, match="notification"):
        refunds.record_result(refund, outcome=RefundStatus.SUBMITTED, event=RefundEvent.NOTIFICATION)
    assert ledger(refund) == before


def test_a_report_after_the_final_outcome_is_ignored_and_logged_not_raised(
    make_trade: Callable[..., Trade], gateway: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    assert refund.status == RefundStatus.SUCCEEDED
    before = ledger(refund)
    with caplog.at_level(logging.ERROR, logger="django_alipay.refunds"):
        refund = refunds.record_result(
            refund, outcome=RefundStatus.FAILED, code="REFUND_FAIL", event=RefundEvent.NOTIFICATION
        )
    assert refund.status == RefundStatus.SUCCEEDED
    assert ledger(refund) == before
    assert "is already succeeded" in caplog.text


def test_the_trade_table_moves_forward_only() -> None:
    moves = {(move.source, move.target) for move in lifecycle.TRADE_MOVES}
    assert moves == {
        (TradeStatus.WAIT_BUYER_PAY, TradeStatus.TRADE_SUCCESS),
        (TradeStatus.WAIT_BUYER_PAY, TradeStatus.TRADE_FINISHED),
        (TradeStatus.WAIT_BUYER_PAY, TradeStatus.TRADE_CLOSED),
        (TradeStatus.TRADE_SUCCESS, TradeStatus.TRADE_FINISHED),
        (TradeStatus.TRADE_SUCCESS, TradeStatus.TRADE_CLOSED),
    }
    assert not lifecycle.trade_move_allowed("TRADE_FINISHED", "TRADE_SUCCESS")


# --- error codes --------------------------------------------------------------------------------------------


def test_an_error_code_longer_than_the_old_64_characters_is_kept_whole(
    make_trade: Callable[..., Trade], recorded_dispatch: list[int]
) -> None:
    code = "PARTNER_REFUND_ID_" + "X" * 82  # 100 characters
    refund = claimed(refunds.request_refund(make_trade(), Decimal("5.00")))
    refund = refunds.record_result(refund, outcome=RefundStatus.UNKNOWN, code=code)
    assert Refund.objects.get(pk=refund.pk).error_code == code


def test_an_error_code_beyond_the_column_is_cut_with_a_warning_and_kept_in_the_answer(
    make_trade: Callable[..., Trade], recorded_dispatch: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    code = "E" * 300
    refund = claimed(refunds.request_refund(make_trade(), Decimal("5.00")))
    with caplog.at_level(logging.WARNING, logger="django_alipay.refunds"):
        refund = refunds.record_result(
            refund, outcome=RefundStatus.UNKNOWN, code=code, response={"error": code}
        )
    stored = Refund.objects.get(pk=refund.pk)
    assert stored.error_code == code[:255]
    assert stored.response == {"error": code}
    assert f"{refund.gateway_refund_id}: error code of 300 characters cut to 255" in caplog.text


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
