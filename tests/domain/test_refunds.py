"""Refunds: bad amounts, states, keys, reasons at the domain level, gateway outcomes, exactly-once sending."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from django_alipay import signals
from django_alipay.domain import refunds
from django_alipay.domain.errors import (
    IdempotencyConflict,
    RefundAmountExceeded,
    RefundNotAllowed,
    RefundWindowClosed,
)
from django_alipay.enums import RefundStatus
from django_alipay.models import Refund, RefundSlot, Trade
from django_alipay.protocol.clock import BEIJING
from django_alipay.protocol.errors import AlipayError, AmountError, InvalidParameterError
from tests.domain.fakegateway import FakeGateway, Reply
from tests.factories import create_refund

pytestmark = pytest.mark.django_db(transaction=True)


def snapshot(trade: Trade) -> tuple[Any, ...]:
    """Everything a refusal must leave untouched."""
    fresh = Trade.objects.get(pk=trade.pk)
    return (
        fresh.status,
        fresh.refunded_amount,
        fresh.refund_pending_amount,
        fresh.updated_at,
        Refund.objects.filter(trade=fresh).count(),
    )


# --- the happy path and the gateway's answers --------------------------------------------------------------


def test_online_refund_is_sent_once_under_its_gateway_id_and_moves_the_balance(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade()
    received: list[dict[str, Any]] = []

    def on_success(sender: type, **kwargs: Any) -> None:
        received.append(kwargs)

    signals.refund_succeeded.connect(on_success)
    try:
        refund = refunds.request_refund(trade, Decimal("30.00"), reason="damaged")
    finally:
        signals.refund_succeeded.disconnect(on_success)

    assert refund.status == RefundStatus.SUCCEEDED
    [call] = gateway.called("forex_refund")
    assert call.params["out_return_no"] == refund.gateway_refund_id
    assert call.params["out_trade_no"] == trade.out_trade_no
    assert call.params["return_amount"] == "30.00"
    assert call.params["currency"] == "USD"
    assert call.params["reason"] == "damaged"
    assert call.params["is_sync"] == "Y"
    trade.refresh_from_db()
    assert (trade.refunded_amount, trade.refund_pending_amount) == (Decimal("30.00"), Decimal("0.00"))
    assert len(received) == 1
    assert received[0]["refund"].pk == refund.pk
    assert received[0]["trade"].pk == trade.pk


def test_in_store_refund_uses_spot_refund_with_partner_refund_id(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade(product="barcode", status="TRADE_SUCCESS")
    refund = refunds.request_refund(trade, "10.00")
    [call] = gateway.called("alipay.acquire.overseas.spot.refund")
    assert call.params["partner_refund_id"] == refund.gateway_refund_id
    assert call.params["partner_trans_id"] == trade.out_trade_no
    assert call.params["refund_amount"] == "10.00"
    assert refund.status == RefundStatus.SUCCEEDED


def test_a_definitive_refusal_fails_the_refund_and_releases_the_amount(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade()
    gateway.once("forex_refund", lambda p: gateway.refused("RETURN_AMOUNT_EXCEED"))
    refund = refunds.request_refund(trade, Decimal("10.00"))
    assert refund.status == RefundStatus.FAILED
    assert refund.error_code == "RETURN_AMOUNT_EXCEED"
    trade.refresh_from_db()
    assert (trade.refunded_amount, trade.refund_pending_amount) == (Decimal("0.00"), Decimal("0.00"))


def test_a_lost_answer_leaves_the_refund_unknown_and_the_amount_reserved(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade()
    gateway.once("forex_refund", lambda p: Reply(b"<html>502 Bad Gateway</html>", status=502))
    refund = refunds.request_refund(trade, Decimal("10.00"))
    assert refund.status == RefundStatus.UNKNOWN
    trade.refresh_from_db()
    assert trade.refund_pending_amount == Decimal("10.00")


def test_resolving_an_unknown_refund_resends_the_same_gateway_id(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade()
    gateway.once("forex_refund", lambda p: Reply(b"", status=503))
    refund = refunds.request_refund(trade, Decimal("10.00"))
    assert refund.status == RefundStatus.UNKNOWN

    refund = refunds.resolve_unknown(refund)

    first, second = gateway.called("forex_refund")
    assert first.params["out_return_no"] == second.params["out_return_no"] == refund.gateway_refund_id
    assert refund.status == RefundStatus.SUCCEEDED
    assert Refund.objects.count() == 1
    trade.refresh_from_db()
    assert (trade.refunded_amount, trade.refund_pending_amount) == (Decimal("10.00"), Decimal("0.00"))


def test_a_refusal_after_a_lost_answer_does_not_release_the_amount(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    # The first request may have refunded already; "amount exceeded" on the resend proves nothing.
    trade = make_trade()
    gateway.once("forex_refund", lambda p: Reply(b"", status=504))
    gateway.once("forex_refund", lambda p: gateway.refused("RETURN_AMOUNT_EXCEED"))
    refund = refunds.request_refund(trade, Decimal("10.00"))
    refund = refunds.resolve_unknown(refund)
    assert refund.status == RefundStatus.UNKNOWN
    trade.refresh_from_db()
    assert trade.refund_pending_amount == Decimal("10.00")


def test_repeated_refundment_request_is_not_a_failure(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade()
    gateway.once("forex_refund", lambda p: gateway.refused("REPEATED_REFUNDMENT_REQUEST"))
    refund = refunds.request_refund(trade, Decimal("10.00"))
    assert refund.status == RefundStatus.UNKNOWN


def test_an_unreachable_gateway_leaves_the_refund_requested_for_a_later_first_attempt(
    make_trade: Callable[..., Trade], merchant: Any
) -> None:
    merchant.gateway_url = "http://127.0.0.1:9/gateway.do"  # discard port: nothing listens
    merchant.save()
    trade = make_trade()
    refund = refunds.request_refund(trade, Decimal("10.00"))
    assert refund.status == RefundStatus.REQUESTED
    assert refund.attempts == 1
    trade.refresh_from_db()
    assert trade.refund_pending_amount == Decimal("10.00")


def test_submit_sends_a_refund_only_once(
    make_trade: Callable[..., Trade], gateway: FakeGateway, recorded_dispatch: list[int]
) -> None:
    trade = make_trade()
    refund = refunds.request_refund(trade, Decimal("5.00"))
    assert recorded_dispatch == [refund.pk]
    assert gateway.called("forex_refund") == []
    refunds.submit(refund.pk)
    refunds.submit(refund.pk)
    assert len(gateway.called("forex_refund")) == 1


def test_a_final_result_is_never_overturned(make_trade: Callable[..., Trade], gateway: FakeGateway) -> None:
    trade = make_trade()
    refund = refunds.request_refund(trade, Decimal("5.00"))
    assert refund.status == RefundStatus.SUCCEEDED
    refunds.record_result(refund, outcome=RefundStatus.FAILED, code="REFUND_FAIL")
    assert refund.status == RefundStatus.SUCCEEDED
    trade.refresh_from_db()
    assert trade.refunded_amount == Decimal("5.00")


# --- R rows ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount",
    [
        Decimal("-1.00"),  # negative
        "-1.00",
        "0",  # zero
        "0.00",
        "-0.00",
        Decimal("0"),
        Decimal("-0.00"),
        "0.001",  # more decimals than the currency allows
        Decimal("0.001"),
        "1e2",  # not plain ASCII decimal text
        " 10.00 ",
        "١٠",
        "１０",
        "1_000",
        10.1,  # a number, not text
        Decimal("NaN"),  # not a number
        Decimal("Infinity"),
        "NaN",
        "1000000.01",  # over the 1,000,000.00 maximum
        Decimal("1000000.01"),
    ],
)
def test_bad_amounts_are_refused_and_change_nothing(
    make_trade: Callable[..., Trade], gateway: FakeGateway, amount: Any
) -> None:
    trade = make_trade()
    before = snapshot(trade)
    with pytest.raises(AmountError):
        refunds.request_refund(trade, amount)
    assert snapshot(trade) == before
    assert gateway.calls == []


@pytest.mark.parametrize(
    ("currency", "amount"), [("JPY", "100.5"), ("KRW", "100.5"), ("JPY", Decimal("0.5"))]
)
def test_zero_decimal_currencies_take_whole_amounts_only(
    make_trade: Callable[..., Trade], currency: str, amount: Any
) -> None:
    trade = make_trade(currency=currency, amount=Decimal("1000"))
    before = snapshot(trade)
    with pytest.raises(AmountError, match=currency):
        refunds.request_refund(trade, amount)
    assert snapshot(trade) == before


def test_a_whole_jpy_amount_is_sent_without_decimals(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade(currency="JPY", amount=Decimal("1000"))
    refunds.request_refund(trade, "100")
    assert gateway.called("forex_refund")[0].params["return_amount"] == "100"


def test_more_than_what_remains_is_refused_with_a_message_for_the_shop_owner(
    make_trade: Callable[..., Trade],
) -> None:
    trade = make_trade(out_trade_no="X")
    refunds.request_refund(trade, Decimal("60.00"))
    before = snapshot(trade)
    with pytest.raises(RefundAmountExceeded) as caught:
        refunds.request_refund(trade, Decimal("40.01"))
    assert caught.value.message == (
        "This refund of 40.01 USD exceeds what is still refundable on order X: 40.00 USD."
    )
    assert snapshot(trade) == before


def test_the_exact_remainder_refunds_the_trade_in_full(make_trade: Callable[..., Trade]) -> None:
    trade = make_trade()
    refunds.request_refund(trade, Decimal("60.00"))
    refunds.request_refund(trade, Decimal("40.00"))
    trade.refresh_from_db()
    assert trade.is_fully_refunded
    assert trade.refundable_amount == Decimal("0.00")


@pytest.mark.parametrize("currency", ["EUR", "usd", "CNY"])
def test_a_refund_is_in_the_trade_currency(make_trade: Callable[..., Trade], currency: str) -> None:
    trade = make_trade()
    before = snapshot(trade)
    with pytest.raises(InvalidParameterError) as caught:
        refunds.request_refund(trade, "10.00", currency=currency)
    assert caught.value.parameter == "currency"
    assert snapshot(trade) == before


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"status": "WAIT_BUYER_PAY", "paid_at": None}, "has not been paid"),  # unpaid
        ({"status": "TRADE_CLOSED", "paid_at": None}, "closed without being paid"),  # closed
        ({"status": "TRADE_CLOSED", "product": "barcode"}, "closed"),
        ({"refunded_amount": Decimal("100.00")}, "refunded in full"),
    ],
)
def test_unpaid_closed_or_fully_refunded_trades_cannot_be_refunded(
    make_trade: Callable[..., Trade], fields: dict[str, Any], expected: str
) -> None:
    trade = make_trade(**fields)
    before = snapshot(trade)
    with pytest.raises(RefundNotAllowed, match=expected):
        refunds.request_refund(trade, "1.00")
    assert snapshot(trade) == before


def test_a_reversed_trade_cannot_be_refunded(make_trade: Callable[..., Trade], fixed_clock: Any) -> None:
    fixed_clock(datetime(2024, 5, 1, 18, 0, tzinfo=BEIJING))
    trade = make_trade(product="barcode", status="TRADE_SUCCESS")
    refunds.reverse(trade)
    with pytest.raises(RefundNotAllowed, match="reversed"):
        refunds.request_refund(trade, "1.00")


def test_the_refund_window_closes(make_trade: Callable[..., Trade], settings: Any, fixed_clock: Any) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_WINDOW_DAYS": 30}
    trade = make_trade()  # paid 2024-05-01 12:00 Beijing
    fixed_clock(datetime(2024, 5, 31, 12, 0, 1, tzinfo=BEIJING))
    before = snapshot(trade)
    with pytest.raises(RefundWindowClosed, match="30 days"):
        refunds.request_refund(trade, "1.00")
    assert snapshot(trade) == before
    fixed_clock(datetime(2024, 5, 31, 12, 0, 0, tzinfo=BEIJING))
    assert refunds.request_refund(trade, "1.00").status == RefundStatus.SUCCEEDED


def test_an_in_store_trade_finished_at_alipay_is_past_its_refund_period(
    make_trade: Callable[..., Trade],
) -> None:
    trade = make_trade(product="qrcode", status="TRADE_FINISHED")
    with pytest.raises(RefundWindowClosed):
        refunds.request_refund(trade, "1.00")


def test_the_same_idempotency_key_returns_the_same_refund_with_one_gateway_call(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade()
    first = refunds.request_refund(trade, "10.00", reason="late", idempotency_key="click-1")
    second = refunds.request_refund(trade, "10.00", reason="late", idempotency_key="click-1")
    assert first.pk == second.pk
    assert len(gateway.called("forex_refund")) == 1
    trade.refresh_from_db()
    assert trade.refunded_amount == Decimal("10.00")


@pytest.mark.parametrize("changed", [{"amount": "10.01"}, {"reason": "other"}, {"other_trade": True}])
def test_a_reused_key_with_other_details_is_an_idempotency_conflict(
    make_trade: Callable[..., Trade], changed: dict[str, Any]
) -> None:
    trade = make_trade()
    other = make_trade()
    refunds.request_refund(trade, "10.00", reason="late", idempotency_key="key-7")
    target = other if changed.get("other_trade") else trade
    before = snapshot(target)
    with pytest.raises(IdempotencyConflict, match="key-7"):
        refunds.request_refund(
            target,
            changed.get("amount", "10.00"),
            reason=changed.get("reason", "late"),
            idempotency_key="key-7",
        )
    assert snapshot(target) == before


@pytest.mark.parametrize("key", ["", "x" * 256, "clé", "has space", "tab\there"])
def test_malformed_idempotency_keys_are_refused(make_trade: Callable[..., Trade], key: str) -> None:
    trade = make_trade()
    with pytest.raises(InvalidParameterError) as caught:
        refunds.request_refund(trade, "1.00", idempotency_key=key)
    assert caught.value.parameter == "idempotency_key"
    assert not Refund.objects.exists()


def test_a_gateway_refund_id_is_unique_per_merchant(
    make_trade: Callable[..., Trade], recorded_dispatch: list[int]
) -> None:
    first = refunds.request_refund(make_trade(), "1.00")
    other_trade = make_trade()
    with pytest.raises(IntegrityError), transaction.atomic():
        create_refund(other_trade, gateway_refund_id=first.gateway_refund_id)


def test_an_unknown_refund_counts_against_the_refundable_amount(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade()
    gateway.once("forex_refund", lambda p: Reply(b"", status=500))
    assert refunds.request_refund(trade, "70.00").status == RefundStatus.UNKNOWN
    with pytest.raises(RefundAmountExceeded, match=r"30\.00 USD"):
        refunds.request_refund(trade, "30.01")
    assert refunds.request_refund(trade, "30.00").status == RefundStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("product", "reason"),
    [("web", "x" * 101), ("barcode", "x" * 129), ("web", 'say "sorry"'), ("web", "nul\x00byte")],
)
def test_reasons_alipay_would_refuse_are_refused_first(
    make_trade: Callable[..., Trade], product: str, reason: str
) -> None:
    trade = make_trade(product=product, status="TRADE_SUCCESS")
    with pytest.raises(InvalidParameterError) as caught:
        refunds.request_refund(trade, "1.00", reason=reason)
    assert caught.value.parameter == "reason"
    assert not Refund.objects.exists()


def test_the_longest_allowed_reasons_pass(make_trade: Callable[..., Trade]) -> None:
    assert refunds.request_refund(make_trade(), "1.00", reason="x" * 100).status == RefundStatus.SUCCEEDED
    in_store = make_trade(product="barcode", status="TRADE_SUCCESS")
    assert refunds.request_refund(in_store, "1.00", reason="y" * 128).status == RefundStatus.SUCCEEDED


def test_refund_calls_of_one_merchant_are_spaced_out(
    make_trade: Callable[..., Trade], gateway: FakeGateway, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 0.3}
    trade = make_trade()
    for _ in range(3):
        assert refunds.request_refund(trade, "1.00").status == RefundStatus.SUCCEEDED
    arrivals = [call.at for call in gateway.called("forex_refund")]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(gaps) == 2
    assert all(gap >= 0.29 for gap in gaps), gaps


def test_a_refund_sent_in_the_request_waits_for_the_spacing_at_most_refund_max_wait(
    make_trade: Callable[..., Trade], gateway: FakeGateway, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SPACING": 30, "REFUND_MAX_WAIT": 0.2}
    trade = make_trade()
    first = refunds.request_refund(trade, "1.00")
    started = time.monotonic()
    second = refunds.request_refund(trade, "2.00")
    assert time.monotonic() - started < 5  # not the 30 s of the spacing
    assert (first.status, second.status) == (RefundStatus.SUCCEEDED, RefundStatus.REQUESTED)
    assert len(gateway.called("forex_refund")) == 1
    trade.refresh_from_db()
    assert (trade.refunded_amount, trade.refund_pending_amount) == (Decimal("1.00"), Decimal("2.00"))

    # Once the slot is free, whoever sends queued refunds (reconciliation, a worker) sends it.
    RefundSlot.objects.update(next_call_at=None)
    assert refunds.submit(second.pk).status == RefundStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("beijing", "sync"),
    [((0, 0, 0), "N"), ((0, 45, 0), "N"), ((1, 29, 59), "N"), ((1, 30, 0), "Y"), ((23, 59, 59), "Y")],
)
def test_refunds_sent_between_midnight_and_half_past_one_beijing_go_asynchronous(
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
    fixed_clock: Any,
    beijing: tuple[int, int, int],
    sync: str,
) -> None:
    fixed_clock(datetime(2024, 5, 2, *beijing, tzinfo=BEIJING))
    refund = refunds.request_refund(make_trade(), "1.00")
    assert gateway.called("forex_refund")[0].params["is_sync"] == sync
    # Asynchronous: accepted is not refunded; the result comes as a notification.
    assert refund.status == (RefundStatus.SUCCEEDED if sync == "Y" else RefundStatus.SUBMITTED)


# --- choosing the kind -------------------------------------------------------------------------------------


def test_choose_refund_kind_prefers_reverse_for_a_full_same_day_in_store_refund(
    make_trade: Callable[..., Trade], fixed_clock: Any
) -> None:
    fixed_clock(datetime(2024, 5, 1, 20, 0, tzinfo=BEIJING))
    in_store = make_trade(product="barcode", status="TRADE_SUCCESS")
    assert refunds.choose_refund_kind(in_store, Decimal("100.00")).kind == "REVERSE"
    partial = refunds.choose_refund_kind(in_store, Decimal("10.00"))
    assert (partial.kind, partial.reason) == (
        "REFUND",
        "A reversal returns the full amount only; a partial amount is refunded.",
    )
    online = refunds.choose_refund_kind(make_trade(), Decimal("100.00"))
    assert online.kind == "REFUND"
    assert "online payments cannot be reversed" in online.reason
    fixed_clock(datetime(2024, 5, 2, 0, 0, tzinfo=BEIJING))
    next_day = refunds.choose_refund_kind(in_store, Decimal("100.00"))
    assert next_day.kind == "REFUND"
    assert "only possible on the day of payment" in next_day.reason


def test_errors_are_part_of_the_library_tree() -> None:
    for error in (RefundNotAllowed, RefundAmountExceeded, RefundWindowClosed, IdempotencyConflict):
        assert issubclass(error, AlipayError)
