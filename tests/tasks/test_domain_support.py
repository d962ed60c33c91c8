"""What the domain gained for the tasks: spacing without a held lock, calls in flight, partial reconciling."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.utils import timezone

from django_alipay.domain import reconciliation, refunds
from django_alipay.domain.errors import RefundSpacingNotReached
from django_alipay.enums import RefundStatus
from django_alipay.models import Merchant, Refund, RefundSlot, Trade
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
    """A refund call of the merchant's partner answered at ``when``: the next may go the spacing later."""
    spacing = float(django_settings.ALIPAY.get("REFUND_SPACING", 3)) + refunds.SPACING_MARGIN
    RefundSlot.objects.update_or_create(
        partner=merchant.partner, defaults={"next_call_at": when + timedelta(seconds=spacing)}
    )


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


def test_a_caller_waiting_for_its_turn_does_not_hold_the_slot_row_locked(
    postgresql: None,
    held: list[int],
    settings: Any,
    merchant: Merchant,
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 3}
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    stamp(merchant, timezone.now())
    outcome: list[Any] = []
    slept: list[float] = []
    waiting, time_passed = threading.Event(), threading.Event()

    def sleep(seconds: float) -> None:
        # The sender waits here for its turn; the test looks at the slot row, then lets the gap pass.
        slept.append(seconds)
        waiting.set()
        assert time_passed.wait(timeout=30)
        RefundSlot.objects.filter(partner=merchant.partner).update(next_call_at=timezone.now())

    monkeypatch.setattr(refunds, "send_slot_sleep", sleep)

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
        assert waiting.wait(timeout=30), outcome
        # While the sender waits for its slot, anyone may lock the partner's slot row at once (NOWAIT).
        with transaction.atomic():
            RefundSlot.objects.select_for_update(nowait=True).get(partner=merchant.partner)
        assert outcome == [], "the refund went out before its turn"
        assert gateway.called("forex_refund") == []
    finally:
        time_passed.set()
        sender.join(timeout=30)
    assert outcome == [RefundStatus.SUCCEEDED]
    (waited,) = slept
    assert 2.5 < waited <= 3 + refunds.SPACING_MARGIN  # the rest of the gap, in one wait
    assert len(gateway.called("forex_refund")) == 1


def test_a_stamp_in_the_future_does_not_block_the_merchant(
    held: list[int], settings: Any, merchant: Merchant, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    # The database clock was set back after this stamp was taken.
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 3}
    stamp(merchant, timezone.now() + timedelta(hours=1))
    refund = refunds.submit(refunds.request_refund(make_trade(), Decimal("5.00")).pk, wait=False)
    assert refund.status == RefundStatus.SUCCEEDED
    slot = RefundSlot.objects.get(partner=merchant.partner)
    assert slot.next_call_at is not None
    assert slot.next_call_at < timezone.now() + timedelta(minutes=1)


def test_a_claimed_refund_without_an_answer_is_in_flight_until_the_deadline_has_passed(
    held: list[int], make_trade: Callable[..., Trade]
) -> None:
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    window = 10 + refunds.IN_FLIGHT_SLACK  # the test settings' HTTP_TOTAL_TIMEOUT is 10 s
    assert refunds.call_in_flight(refund) == 0.0  # REQUESTED: nobody has claimed it

    def claimed(seconds_ago: float, **fields: Any) -> Refund:
        values = {"status": "submitted", "response": {}, "answered_at": None, **fields}
        values["submitted_at"] = NOW - timedelta(seconds=seconds_ago)
        Refund.objects.filter(pk=refund.pk).update(**values)
        return Refund.objects.get(pk=refund.pk)

    assert refunds.call_in_flight(claimed(0)) == window
    assert refunds.call_in_flight(claimed(4)) == window - 4
    assert refunds.call_in_flight(claimed(window + 1)) == 0.0
    assert refunds.call_in_flight(claimed(1, status="unknown")) == window - 1  # a resend under way
    assert refunds.call_in_flight(claimed(1, answered_at=NOW)) == 0.0  # answered


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
        status=RefundStatus.SUBMITTED, response={}, answered_at=None, submitted_at=NOW - timedelta(minutes=5)
    )
    refund = refunds.resolve_unknown(Refund.objects.get(pk=refund.pk))
    assert refund.status == RefundStatus.UNKNOWN
    assert refund.answered_at is not None  # the outcome ("not sent") is recorded: no call is in flight
    assert not refund.in_flight
    assert Trade.objects.get(pk=refund.trade_id).refund_pending_amount == Decimal("5.00")


def test_a_bare_success_answer_is_recorded_as_an_answer(
    held: list[int], settings: Any, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    # forex_refund answers a bare is_success=T; refunds sent between 00:00 and 01:30 Beijing go asynchronous.
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SYNC": False}
    refund = refunds.submit(refunds.request_refund(make_trade(), Decimal("5.00")).pk)
    assert (refund.status, refund.answered_at is not None) == (RefundStatus.SUBMITTED, True)
    assert refund.accepted
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


def test_two_merchant_rows_of_one_alipay_partner_share_its_refund_spacing(
    held: list[int],
    settings: Any,
    merchant: Merchant,
    make_merchant: Callable[..., Merchant],
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    # Alipay spaces the refunds of a partner, however many rows (environments, keys) the shop keeps for it.
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 3}
    twin = make_merchant(partner=merchant.partner, environment="sandbox", gateway_url=gateway.url)
    first = refunds.submit(refunds.request_refund(make_trade(), Decimal("5.00")).pk, wait=False)
    assert first.status == RefundStatus.SUCCEEDED
    other = refunds.request_refund(make_trade(merchant=twin, out_trade_no="TWIN-1"), Decimal("5.00"))

    with pytest.raises(RefundSpacingNotReached) as caught:
        refunds.submit(other.pk, wait=False)

    assert 2.5 < caught.value.retry_after <= 3 + refunds.SPACING_MARGIN
    other.refresh_from_db()
    assert (other.status, other.attempts) == (RefundStatus.REQUESTED, 0)
    assert len(gateway.called("forex_refund")) == 1


def test_the_spacing_counts_from_when_the_previous_call_answered_not_from_when_it_started(
    postgresql: None,
    held: list[int],
    settings: Any,
    merchant: Merchant,
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    # A spacing long enough that a busy machine still checks within it once the first call has answered.
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 1.0}
    gap = 1.0 + refunds.SPACING_MARGIN
    answer = threading.Event()

    def slow(params: dict[str, str]) -> Reply:
        answer.wait(timeout=20)  # the gateway holds the first call until the test lets it answer
        return gateway.accepted()

    gateway.once("forex_refund", slow)
    first = refunds.request_refund(make_trade(), Decimal("5.00"))
    second = refunds.request_refund(make_trade(out_trade_no="SECOND-1"), Decimal("5.00"))
    outcome: list[Any] = []

    def send() -> None:
        try:
            outcome.append(refunds.submit(first.pk).status)
        finally:
            connection.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        wait = threading.Event()
        for _ in range(200):
            if gateway.called("forex_refund"):
                break
            wait.wait(0.05)
        assert len(gateway.called("forex_refund")) == 1
        wait.wait(3 * gap)  # long past the spacing counted from the first call's start
        with pytest.raises(RefundSpacingNotReached) as caught:
            refunds.submit(second.pk, wait=False)  # the first has not answered: not yet
        assert 0 < caught.value.retry_after <= gap
    finally:
        answer.set()
        sender.join(timeout=30)
    assert outcome == [RefundStatus.SUCCEEDED]

    with pytest.raises(RefundSpacingNotReached) as caught:
        refunds.submit(second.pk, wait=False)  # it answered just now: a whole gap from now
    assert 0 < caught.value.retry_after <= gap
    assert refunds.submit(second.pk).status == RefundStatus.SUCCEEDED  # waits its turn
    first_call, second_call = gateway.called("forex_refund")
    assert second_call.at - first_call.at > 4 * gap
    assert len({first_call.params["out_return_no"], second_call.params["out_return_no"]}) == 2


def test_a_call_that_never_answered_holds_its_partner_until_it_can_no_longer_be_under_way(
    held: list[int], settings: Any, merchant: Merchant, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    # A worker took the turn and died mid-call: nobody releases it; its deadline (the client's total
    # timeout, plus slack) and then the spacing must pass before the partner's next call.
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 3, "HTTP_TOTAL_TIMEOUT": 10}
    refund = refunds.request_refund(make_trade(), Decimal("5.00"))
    until = timezone.now() + timedelta(seconds=8)
    RefundSlot.objects.create(partner=merchant.partner, in_flight_until=until, claim="dead-worker")

    with pytest.raises(RefundSpacingNotReached) as caught:
        refunds.submit(refund.pk, wait=False)
    assert 0 < caught.value.retry_after <= 3 + refunds.SPACING_MARGIN  # it may answer any moment

    RefundSlot.objects.filter(partner=merchant.partner).update(
        in_flight_until=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(RefundSpacingNotReached) as caught:
        refunds.submit(refund.pk, wait=False)  # it timed out a second ago: the gap runs from there
    assert 1.5 < caught.value.retry_after <= 2 + refunds.SPACING_MARGIN

    RefundSlot.objects.filter(partner=merchant.partner).update(
        in_flight_until=timezone.now() - timedelta(seconds=4)
    )
    assert refunds.submit(refund.pk, wait=False).status == RefundStatus.SUCCEEDED
    assert len(gateway.called("forex_refund")) == 1
