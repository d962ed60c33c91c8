"""What the domain gained for the tasks: spacing without a held lock, calls in flight, partial reconciling."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from django_alipay.domain import reconciliation, refunds
from django_alipay.domain.errors import RefundSpacingNotReached
from django_alipay.enums import RefundStatus
from django_alipay.models import Merchant, Refund, Trade
from django_alipay.protocol.clock import BEIJING
from tests.domain.fakegateway import FakeGateway, Reply

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2024, 5, 2, 12, 0, tzinfo=BEIJING)


@pytest.fixture(autouse=True)
def _midday(fixed_clock: Callable[[datetime], Any]) -> None:
    fixed_clock(NOW)


@pytest.fixture
def held(settings: Any) -> list[int]:
    kept: list[int] = []
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_DISPATCHER": kept.append}
    return kept


def stamp(merchant: Merchant, when: datetime) -> None:
    Merchant.objects.filter(pk=merchant.pk).update(last_refund_sent_at=when)


def test_a_caller_that_will_not_wait_is_told_how_long_and_nothing_changes(
    held: list[int], settings: Any, merchant: Merchant, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 3}
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    stamp(merchant, timezone.now())

    with pytest.raises(RefundSpacingNotReached) as caught:
        refunds.submit(refund.pk, wait=False)

    assert 2.5 < caught.value.retry_after <= 3 + refunds.SPACING_MARGIN
    assert caught.value.retryable
    assert "3 seconds between refunds" in caught.value.message
    refund.refresh_from_db()
    assert (refund.status, refund.attempts, refund.request_params) == (RefundStatus.REQUESTED, 0, {})
    assert gateway.called("forex_refund") == []


def test_resolving_also_keeps_the_spacing(
    held: list[int], settings: Any, merchant: Merchant, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    gateway.once("forex_refund", lambda params: Reply(b"", status=502))
    refund = refunds.submit(refunds.request_refund(make_trade(), Decimal("5.00")).pk)
    assert refund.status == RefundStatus.UNKNOWN
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 3}
    stamp(merchant, timezone.now())

    with pytest.raises(RefundSpacingNotReached):
        refunds.resolve_unknown(refund, wait=False)

    refund.refresh_from_db()
    assert (refund.status, refund.attempts) == (RefundStatus.UNKNOWN, 1)
    assert len(gateway.called("forex_refund")) == 1


def test_a_caller_waiting_for_its_turn_does_not_hold_the_merchant_row_locked(
    postgresql: None,
    held: list[int],
    settings: Any,
    merchant: Merchant,
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 1.5}
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    stamp(merchant, timezone.now())
    outcome: list[Any] = []

    def send() -> None:
        try:
            outcome.append(refunds.submit(refund.pk).status)
        except BaseException as exc:  # reported below
            outcome.append(exc)
        finally:
            connection.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        # While the sender waits for its slot, anyone may lock the merchant row at once (NOWAIT).
        for _ in range(5):
            threading.Event().wait(0.15)
            with transaction.atomic():
                Merchant.objects.select_for_update(nowait=True).get(pk=merchant.pk)
        assert outcome == [], "the refund went out before its turn"
    finally:
        sender.join(timeout=30)
    assert outcome == [RefundStatus.SUCCEEDED]
    assert len(gateway.called("forex_refund")) == 1


def test_a_stamp_in_the_future_does_not_block_the_merchant(
    held: list[int], settings: Any, merchant: Merchant, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    # The database clock was set back after this stamp was taken.
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 3}
    stamp(merchant, timezone.now() + timedelta(hours=1))
    refund = refunds.submit(refunds.request_refund(make_trade(), Decimal("5.00")).pk, wait=False)
    assert refund.status == RefundStatus.SUCCEEDED
    assert Merchant.objects.get(pk=merchant.pk).last_refund_sent_at < timezone.now() + timedelta(minutes=1)


def test_a_claimed_refund_without_an_answer_is_in_flight_until_the_deadline_has_passed(
    held: list[int], make_trade: Callable[..., Trade]
) -> None:
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    window = 10 + refunds.IN_FLIGHT_SLACK  # the test settings' HTTP_TOTAL_TIMEOUT is 10 s
    assert refunds.call_in_flight(refund) == 0.0  # REQUESTED: nobody has claimed it

    def claimed(seconds_ago: float, **fields: Any) -> Refund:
        values = {"status": "submitted", "response": {}, **fields}
        values["submitted_at"] = NOW - timedelta(seconds=seconds_ago)
        Refund.objects.filter(pk=refund.pk).update(**values)
        return Refund.objects.get(pk=refund.pk)

    assert refunds.call_in_flight(claimed(0)) == window
    assert refunds.call_in_flight(claimed(4)) == window - 4
    assert refunds.call_in_flight(claimed(window + 1)) == 0.0
    assert refunds.call_in_flight(claimed(1, status="unknown")) == window - 1  # a resend under way
    assert refunds.call_in_flight(claimed(1, response={"is_success": "T"})) == 0.0  # answered


def test_a_resend_that_cannot_reach_the_gateway_leaves_the_refund_unknown_not_requested(
    held: list[int], merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    # The first call may have been delivered before its process died: a later "never sent" proves
    # nothing about it, so the refund must not become a fresh first attempt (whose refusal would count).
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    merchant.gateway_url = "http://127.0.0.1:9/gateway.do"
    merchant.save()
    refunds.submit(refund.pk)  # builds and stores the request; the connection is refused
    Refund.objects.filter(pk=refund.pk).update(
        status=RefundStatus.SUBMITTED, response={}, submitted_at=NOW - timedelta(minutes=5)
    )
    refund = refunds.resolve_unknown(Refund.objects.get(pk=refund.pk))
    assert refund.status == RefundStatus.UNKNOWN
    assert refund.response  # the answer ("not sent") is recorded: no call is in flight
    assert Trade.objects.get(pk=refund.trade_id).refund_pending_amount == Decimal("5.00")


def test_a_bare_success_answer_is_recorded_as_an_answer(
    held: list[int], settings: Any, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    # forex_refund answers a bare is_success=T; refunds sent between 00:00 and 01:30 Beijing go asynchronous.
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SYNC": False}
    refund = refunds.submit(refunds.request_refund(make_trade(), Decimal("5.00")).pk)
    assert (refund.status, refund.response) == (RefundStatus.SUBMITTED, {"is_success": "T"})
    assert refunds.call_in_flight(refund) == 0.0  # accepted, waiting for the notification


def test_reconcile_can_run_either_half_and_lists_what_it_changed(
    held: list[int], make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    stale = make_trade(status="WAIT_BUYER_PAY", paid_at=None, created_at=NOW - timedelta(hours=1))
    gateway.trades[stale.out_trade_no] = {
        "out_trade_no": stale.out_trade_no,
        "trade_no": "2024050222001332950500389139",
        "trade_status": "TRADE_FINISHED",
        "total_fee": "100.00",
        "currency": "USD",
        "gmt_payment": "2024-05-02 11:00:00",
    }
    gateway.once("forex_refund", lambda params: Reply(b"", status=502))
    unknown = refunds.submit(refunds.request_refund(make_trade(), Decimal("5.00")).pk)
    Refund.objects.filter(pk=unknown.pk).update(submitted_at=NOW - timedelta(hours=1))
    seen: list[str] = []

    only_trades = reconciliation.reconcile(include_refunds=False, on_progress=seen.append)
    assert (only_trades.trades_checked, only_trades.refunds_checked, seen) == (1, 0, ["trade"])
    assert [(c.kind, c.out_trade_no, c.before, c.after) for c in only_trades.changes] == [
        ("trade", stale.out_trade_no, "WAIT_BUYER_PAY", "TRADE_FINISHED")
    ]

    seen.clear()
    only_refunds = reconciliation.reconcile(include_trades=False, on_progress=seen.append)
    assert (only_refunds.trades_checked, only_refunds.refunds_checked, seen) == (0, 1, ["refund"])
    [change] = only_refunds.changes
    assert (change.kind, change.reference, change.before, change.after) == (
        "refund",
        unknown.gateway_refund_id,
        "unknown",
        "succeeded",
    )
    assert only_refunds.refunds_settled == 1
    assert only_refunds.ok
