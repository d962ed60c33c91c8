"""Refunds through the REST API: bad amounts, keys and reasons, refusals, listing, and the error body."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from django_alipay.models import Merchant, Refund, Trade
from django_alipay.protocol.clock import BEIJING
from tests.api.conftest import API, gateway_calls, refund
from tests.factories import create_refund

pytestmark = pytest.mark.django_db(transaction=True)

ERROR_KEYS = {"code", "message", "alipay_code", "description", "field"}


def state(trade: Trade | int) -> tuple[Any, ...]:
    """Everything a refused refund must leave as it was."""
    fresh = Trade.objects.get(pk=trade if isinstance(trade, int) else trade.pk)
    return (
        fresh.status,
        fresh.refunded_amount,
        fresh.refund_pending_amount,
        fresh.updated_at,
        Refund.objects.count(),
    )


def refused(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    error: dict[str, Any] = response.json()["error"]
    assert set(error) >= ERROR_KEYS
    assert (error["code"], error["field"]) == (code, field)
    assert (error["alipay_code"], error["description"]) == (None, None)  # refused before Alipay
    return error


# --- amounts: canonical text, in range ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        ("-1.00", "not a plain decimal amount"),  # negative
        ("0", "out of range"),  # zero
        ("0.00", "out of range"),
        ("-0.00", "not a plain decimal amount"),
        ("0.001", "too many decimals for USD"),  # more decimals than the currency allows
        ("1e2", "not a plain decimal amount"),  # not plain ASCII decimal text
        (" 10.00 ", "not a plain decimal amount"),
        ("١٠", "not a plain decimal amount"),
        ("１０", "not a plain decimal amount"),
        ("1_000", "not a plain decimal amount"),
        ("NaN", "not a plain decimal amount"),  # not a number
        ("Infinity", "not a plain decimal amount"),
        ("1000000.01", "out of range"),  # over the 1,000,000.00 maximum
        ("", "not a plain decimal amount"),
    ],
)
def test_amounts_must_be_canonical_text_in_range(
    api: APIClient, make_trade: Callable[..., Trade], amount: str, words: str
) -> None:
    trade = make_trade(amount=Decimal("100.00"))
    before = state(trade)
    error = refused(refund(api, trade.pk, {"amount": amount}), 400, "invalid_amount", "amount")
    assert words in error["message"]
    assert state(trade) == before


def test_the_message_says_usd_allows_two_decimals(api: APIClient, make_trade: Callable[..., Trade]) -> None:
    trade = make_trade()
    error = refused(refund(api, trade.pk, {"amount": "0.001"}), 400, "invalid_amount", "amount")
    assert "at most 2 decimals" in error["message"]


@pytest.mark.parametrize("currency", ["JPY", "KRW"])
def test_yen_and_won_take_no_decimals(
    api: APIClient, make_trade: Callable[..., Trade], currency: str
) -> None:
    trade = make_trade(amount=Decimal("1000"), currency=currency)
    before = state(trade)
    error = refused(refund(api, trade.pk, {"amount": "100.5"}), 400, "invalid_amount", "amount")
    assert f"too many decimals for {currency}" in error["message"]
    assert "whole numbers" in error["message"]
    assert state(trade) == before


def test_the_refund_maximum_applies_even_to_a_larger_in_store_payment(
    api: APIClient, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(product="barcode", status="TRADE_SUCCESS", amount=Decimal("5000000.00"))
    refused(refund(api, trade.pk, {"amount": "1000000.01"}), 400, "invalid_amount", "amount")


@pytest.mark.parametrize("amount", [10.1, 10, 1e2, None, True, {"value": "10.00"}])
def test_a_json_number_is_not_an_amount(
    api: APIClient, make_trade: Callable[..., Trade], amount: Any
) -> None:
    trade = make_trade()
    before = state(trade)
    error = refused(refund(api, trade.pk, {"amount": amount}), 400, "invalid_amount", "amount")
    if amount is not None:
        assert "JSON string" in error["message"]
    assert state(trade) == before


def test_an_amount_is_required(api: APIClient, make_trade: Callable[..., Trade]) -> None:
    trade = make_trade()
    refused(refund(api, trade.pk, {"reason": "no amount"}), 400, "invalid_amount", "amount")
    refused(refund(api, trade.pk, ["10.00"]), 400, "invalid")


def test_a_body_that_is_not_json_is_refused(api: APIClient, make_trade: Callable[..., Trade]) -> None:
    trade = make_trade()
    headers = {"Idempotency-Key": "k1"}
    url = f"{API}trades/{trade.pk}/refunds/"
    broken = api.post(url, "{amount: 10", content_type="application/json", headers=headers)
    refused(broken, 400, "parse_error")
    form = api.post(url, "amount=10.00", content_type="application/x-www-form-urlencoded", headers=headers)
    refused(form, 415, "unsupported_media_type")
    assert Refund.objects.count() == 0


def test_the_browsable_apis_form_names_its_refund_by_its_key_field(
    api: APIClient, paid_online: Callable[..., dict[str, Any]]
) -> None:
    trade = paid_online("100.00")
    url = f"{API}trades/{trade['id']}/refunds/"
    form = {"amount": "10.00", "currency": "", "reason": "", "idempotency_key": "form-key-1"}

    first = api.post(url, form, format="multipart")
    again = api.post(url, form, format="multipart")  # the browser sends the same form again

    assert (first.status_code, again.status_code) == (201, 201), first.content
    assert first.json()["id"] == again.json()["id"]
    assert Refund.objects.get().amount == Decimal("10.00")
    refused(api.post(url, {"amount": "10.00"}, format="multipart"), 415, "unsupported_media_type")


# --- the refundable balance ---------------------------------------------------------------------------------


def test_a_refund_up_to_the_remainder_only(
    api: APIClient, paid_online: Callable[..., dict[str, Any]], emulator: str
) -> None:
    trade = paid_online("100.00")
    first = refund(api, trade["id"], {"amount": "60.00", "reason": "one broken"})
    assert first.status_code == 201, first.content
    assert (first.json()["status"], first.json()["amount"], first.json()["kind"]) == (
        "succeeded",
        "60.00",
        "REFUND",
    )
    before = state(trade["id"])

    over = refund(api, trade["id"], {"amount": "40.01"})

    error = refused(over, 409, "refund_amount_exceeded")
    assert "exceeds" in error["message"]
    assert "40.00 USD" in error["message"]
    assert state(trade["id"]) == before
    rest = refund(api, trade["id"], {"amount": "40.00"})
    assert rest.status_code == 201, rest.content
    assert rest.json()["status"] == "succeeded"
    after = api.get(f"{API}trades/{trade['id']}/").json()
    assert (after["refunded_amount"], after["refund_pending_amount"], after["refundable_amount"]) == (
        "100.00",
        "0.00",
        "0.00",
    )
    assert len(gateway_calls(emulator, "forex_refund")) == 2  # the refused one never reached Alipay
    refused(refund(api, trade["id"], {"amount": "0.01"}), 409, "refund_not_allowed")  # fully refunded


def test_a_refund_answer_renders_yen_without_decimals(
    api: APIClient, paid_online: Callable[..., dict[str, Any]]
) -> None:
    trade = paid_online("1000", "JPY")
    response = refund(api, trade["id"], {"amount": "300"})
    assert response.status_code == 201, response.content
    assert (response.json()["amount"], response.json()["currency"]) == ("300", "JPY")
    assert api.get(f"{API}trades/{trade['id']}/").json()["refundable_amount"] == "700"


def test_a_refund_of_unknown_outcome_still_counts(
    api: APIClient, make_trade: Callable[..., Trade], shop: Merchant
) -> None:
    trade = make_trade(refund_pending_amount=Decimal("60.00"))
    create_refund(trade, gateway_refund_id="RF-UNKNOWN", amount=Decimal("60.00"), status="unknown")
    before = state(trade)
    error = refused(refund(api, trade.pk, {"amount": "40.01"}), 409, "refund_amount_exceeded")
    assert "40.00 USD" in error["message"]
    assert state(trade) == before


# --- currency -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("currency", ["EUR", "usd", "CNY", "", 840])
def test_the_refund_currency_is_the_trade_s(
    api: APIClient, make_trade: Callable[..., Trade], currency: Any
) -> None:
    trade = make_trade()
    before = state(trade)
    refused(refund(api, trade.pk, {"amount": "10.00", "currency": currency}), 400, "invalid", "currency")
    assert state(trade) == before


# --- the trade's state --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code", "words"),
    [
        ({"status": "WAIT_BUYER_PAY", "paid_at": None}, "refund_not_allowed", "has not been paid"),  # unpaid
        (
            {"status": "TRADE_CLOSED", "paid_at": None},
            "refund_not_allowed",
            "closed without being paid",
        ),  # closed
        ({"status": "TRADE_CLOSED"}, "refund_not_allowed", "closed"),
        ({"refunded_amount": Decimal("100.00")}, "refund_not_allowed", "refunded in full"),
    ],
)
def test_only_a_paid_open_trade_is_refunded(
    api: APIClient, make_trade: Callable[..., Trade], fields: dict[str, Any], code: str, words: str
) -> None:
    trade = make_trade(**fields)
    before = state(trade)
    error = refused(refund(api, trade.pk, {"amount": "1.00"}), 409, code)
    assert words in error["message"]
    assert state(trade) == before


def test_a_reversed_trade_is_not_refunded(
    api: APIClient, make_trade: Callable[..., Trade], shop: Merchant
) -> None:
    trade = make_trade(product="barcode", status="TRADE_SUCCESS")
    create_refund(trade, kind="REVERSE", gateway_refund_id="RV-1", amount=trade.amount, status="submitted")
    error = refused(refund(api, trade.pk, {"amount": "1.00"}), 409, "refund_not_allowed")
    assert "reversed" in error["message"]


def test_no_refund_after_the_refund_window(
    api: APIClient, make_trade: Callable[..., Trade], settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_WINDOW_DAYS": 90}
    trade = make_trade(paid_at=timezone.now() - timedelta(days=91))
    before = state(trade)
    error = refused(refund(api, trade.pk, {"amount": "1.00"}), 409, "refund_window_closed")
    assert "90 days" in error["message"]
    assert state(trade) == before


# --- the reason ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("product", "reason", "words"),
    [
        ("web", "x" * 101, "at most 100"),
        ("barcode", "x" * 129, "no more than 128"),
        ("web", 'the "best" mug', "double quotes"),
        ("web", "nul\x00byte", "Null characters"),
        ("web", 42, "JSON string"),
    ],
)
def test_the_reason_fits_alipay_s_field(
    api: APIClient, make_trade: Callable[..., Trade], product: str, reason: Any, words: str
) -> None:
    trade = make_trade(product=product, status="TRADE_SUCCESS")
    before = state(trade)
    error = refused(refund(api, trade.pk, {"amount": "1.00", "reason": reason}), 400, "invalid", "reason")
    assert words in error["message"]
    assert state(trade) == before


# --- Alipay's night window for synchronous refunds ----------------------------------------------------------


def test_a_refund_sent_between_0000_and_0130_beijing_goes_asynchronous(
    api: APIClient, paid_online: Callable[..., dict[str, Any]], fixed_clock: Any, emulator: str
) -> None:
    trade = paid_online()
    today = timezone.now().astimezone(BEIJING).date()
    fixed_clock(datetime(today.year, today.month, today.day, 0, 30, tzinfo=BEIJING))
    response = refund(api, trade["id"], {"amount": "5.00"})
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "submitted"  # accepted; the result comes later
    [call] = gateway_calls(emulator, "forex_refund")
    assert call["params"]["is_sync"] == "N"
    assert api.get(f"{API}trades/{trade['id']}/").json()["refund_pending_amount"] == "5.00"


# --- listing, and what a refusal leaves behind -------------------------------------------------------------


def test_refunds_are_listed_under_their_trade_and_on_their_own(
    api: APIClient, paid_online: Callable[..., dict[str, Any]]
) -> None:
    trade = paid_online()
    other = paid_online()
    first = refund(api, trade["id"], {"amount": "1.00"}).json()
    second = refund(api, trade["id"], {"amount": "2.00"}).json()
    elsewhere = refund(api, other["id"], {"amount": "3.00"}).json()

    under_trade = api.get(f"{API}trades/{trade['id']}/refunds/").json()
    assert [r["id"] for r in under_trade["results"]] == [second["id"], first["id"]]
    everything = api.get(f"{API}refunds/").json()
    assert everything["count"] == 3
    assert [r["id"] for r in api.get(f"{API}refunds/?trade={other['id']}").json()["results"]] == [
        elsewhere["id"]
    ]
    assert api.get(f"{API}refunds/?status=failed").json()["count"] == 0
    assert api.get(f"{API}refunds/?kind=REVERSE").json()["count"] == 0
    detail = api.get(f"{API}refunds/{first['id']}/")
    assert detail.status_code == 200
    assert detail.json()["out_trade_no"] == trade["out_trade_no"]
    assert detail.json()["gateway_refund_id"].startswith("RF")
    assert api.get(f"{API}refunds/999999/").status_code == 404


def test_a_refusal_is_logged_with_its_reason(
    api: APIClient, make_trade: Callable[..., Trade], caplog: pytest.LogCaptureFixture
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    with caplog.at_level(logging.INFO, logger="django_alipay.api"):
        refund(api, trade.pk, {"amount": "1.00"})
    [record] = [r for r in caplog.records if r.name == "django_alipay.api"]
    assert "refund_not_allowed" in record.getMessage()
    assert f"/trades/{trade.pk}/refunds/" in record.getMessage()


def test_a_body_nested_deeper_than_any_api_body_is_a_parse_error(
    api: APIClient, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade()
    url = f"{API}trades/{trade.pk}/refunds/"
    nested = '{"amount": "1.00", "reason": ' + "[" * 33 + "]" * 33 + "}"
    refused(
        api.post(url, nested, content_type="application/json", headers={"Idempotency-Key": "n"}),
        400,
        "parse_error",
    )
    brackets_in_text = '{"amount": "1.00", "reason": "' + "[" * 40 + '"}'
    answer = api.post(
        url, brackets_in_text, content_type="application/json", headers={"Idempotency-Key": "t"}
    )
    assert answer.status_code == 201, answer.content  # brackets inside a string are text, not nesting
