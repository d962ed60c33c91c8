"""REVERSE through the REST API at the Beijing-day boundaries, in three server time zones.

The domain clock and the emulator's clock stand at the same instant, so the gateway sees the payment and the
reversal at the times the tests name.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from django_alipay.models import Merchant, Refund, Trade
from django_alipay.protocol.clock import BEIJING
from tests.api.conftest import API, control, gateway_calls, order_number, refund

pytestmark = pytest.mark.django_db(transaction=True)

SERVER_ZONES = ["UTC", "Asia/Shanghai", "America/Los_Angeles"]
CANCEL = "alipay.acquire.cancel"


def beijing(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=BEIJING)  # type: ignore[misc]


@pytest.fixture
def stand_at(emulator: str, shop: Merchant, fixed_clock: Any) -> Callable[[datetime], None]:
    """Put the domain and the emulator at the same instant (the cancel's real-time stamp is not checked)."""
    control(emulator, "config", timestamp_tolerance=None)

    def stand(when: datetime) -> None:
        control(emulator, "clock", now=when.isoformat())
        fixed_clock(when)

    return stand


def state(trade_id: int) -> tuple[Any, ...]:
    fresh = Trade.objects.get(pk=trade_id)
    return (
        fresh.status,
        fresh.refunded_amount,
        fresh.refund_pending_amount,
        fresh.updated_at,
        Refund.objects.count(),
    )


def reverse(api: APIClient, trade_id: int, **headers: str) -> Any:
    return api.post(
        f"{API}trades/{trade_id}/reverse/", {"reason": "wrong item"}, format="json", headers=headers
    )


def unpaid_qr_order(api: APIClient) -> dict[str, Any]:
    body = {"out_trade_no": order_number(), "amount": "100.00", "subject": "Tea", "product": "qrcode"}
    created = api.post(f"{API}trades/", body, format="json")
    assert created.status_code == 201, created.content
    trade: dict[str, Any] = created.json()["trade"]
    return trade


@pytest.mark.parametrize("zone", SERVER_ZONES)
def test_a_payment_is_reversed_at_235959_beijing_the_same_day(
    zone: str,
    api: APIClient,
    stand_at: Callable[[datetime], None],
    paid_in_store: Callable[..., dict[str, Any]],
    emulator: str,
) -> None:
    with override_settings(TIME_ZONE=zone):
        stand_at(beijing(2024, 5, 1, 23, 59, 59))  # 15:59:59Z
        trade = paid_in_store("100.00")
        response = reverse(api, trade["id"])

    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["kind"], body["status"], body["amount"]) == ("REVERSE", "succeeded", "100.00")
    assert response["Location"].endswith(f"{API}refunds/{body['id']}/")
    fresh = Trade.objects.get(pk=trade["id"])
    assert fresh.status == "TRADE_CLOSED"
    assert (fresh.refunded_amount, fresh.refund_pending_amount) == (Decimal("100.00"), Decimal("0.00"))
    [call] = gateway_calls(emulator, CANCEL)
    assert call["params"]["out_trade_no"] == trade["out_trade_no"]


@pytest.mark.parametrize("zone", SERVER_ZONES)
@pytest.mark.parametrize("now", [(2024, 5, 2, 0, 0, 0), (2024, 5, 2, 0, 0, 1)], ids=["000000", "000001"])
def test_the_next_beijing_day_is_refused_with_the_advice_to_refund(
    zone: str,
    now: tuple[int, ...],
    api: APIClient,
    stand_at: Callable[[datetime], None],
    paid_in_store: Callable[..., dict[str, Any]],
    emulator: str,
) -> None:
    with override_settings(TIME_ZONE=zone):
        stand_at(beijing(2024, 5, 1, 23, 59, 59))
        trade = paid_in_store("100.00")
        stand_at(beijing(*now))
        before = state(trade["id"])
        response = reverse(api, trade["id"])

    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "reverse_not_allowed"
    assert error["message"] == (
        f"Order {trade['out_trade_no']} was paid on 2024-05-01 (Beijing time); a reversal is only possible "
        "on the day of payment, so refund it instead."
    )
    assert state(trade["id"]) == before
    assert gateway_calls(emulator, CANCEL) == []  # no gateway call


@pytest.mark.parametrize("zone", SERVER_ZONES)
def test_an_unpaid_order_from_2350_is_cancelled_until_0005(
    zone: str, api: APIClient, stand_at: Callable[[datetime], None], emulator: str
) -> None:
    with override_settings(TIME_ZONE=zone):
        stand_at(beijing(2024, 5, 1, 23, 50, 0))
        trade = unpaid_qr_order(api)
        stand_at(beijing(2024, 5, 2, 0, 4, 59))
        response = reverse(api, trade["id"])

    assert response.status_code == 202, response.content
    assert (response.json()["status"], response.json()["kind"]) == ("succeeded", "REVERSE")
    fresh = Trade.objects.get(pk=trade["id"])
    assert fresh.status == "TRADE_CLOSED"
    assert (fresh.refunded_amount, fresh.refund_pending_amount) == (
        Decimal("0.00"),
        Decimal("0.00"),
    )  # unpaid
    assert len(gateway_calls(emulator, CANCEL)) == 1


@pytest.mark.parametrize("zone", SERVER_ZONES)
def test_an_unpaid_order_from_2350_is_not_cancelled_at_001501(
    zone: str, api: APIClient, stand_at: Callable[[datetime], None], emulator: str
) -> None:
    with override_settings(TIME_ZONE=zone):
        stand_at(beijing(2024, 5, 1, 23, 50, 0))
        trade = unpaid_qr_order(api)
        stand_at(beijing(2024, 5, 2, 0, 15, 1))
        before = state(trade["id"])
        response = reverse(api, trade["id"])

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "reverse_not_allowed"
    assert "can no longer be cancelled" in response.json()["error"]["message"]
    assert state(trade["id"]) == before
    assert gateway_calls(emulator, CANCEL) == []


def test_a_partly_refunded_trade_is_refunded_not_reversed(
    api: APIClient,
    stand_at: Callable[[datetime], None],
    paid_in_store: Callable[..., dict[str, Any]],
    emulator: str,
) -> None:
    stand_at(beijing(2024, 5, 1, 12, 0))
    trade = paid_in_store("100.00")
    assert refund(api, trade["id"], {"amount": "10.00"}).status_code == 201
    before = state(trade["id"])

    response = reverse(api, trade["id"])

    assert response.status_code == 409
    message = response.json()["error"]["message"]
    assert "full amount only" in message
    assert "refund the rest instead" in message
    assert state(trade["id"]) == before
    assert gateway_calls(emulator, CANCEL) == []


def test_reversing_twice_answers_with_the_first_reversal(
    api: APIClient,
    stand_at: Callable[[datetime], None],
    paid_in_store: Callable[..., dict[str, Any]],
    emulator: str,
) -> None:
    stand_at(beijing(2024, 5, 1, 18, 0))
    trade = paid_in_store("100.00")

    first = reverse(api, trade["id"])
    second = reverse(api, trade["id"], **{"Idempotency-Key": "second-try"})

    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert Refund.objects.count() == 1
    assert len(gateway_calls(emulator, CANCEL)) == 1


def test_an_online_payment_is_never_reversed(
    api: APIClient, paid_online: Callable[..., dict[str, Any]]
) -> None:
    trade = paid_online()
    response = reverse(api, trade["id"])
    assert response.status_code == 409
    assert "refund them instead" in response.json()["error"]["message"]


def test_a_reversal_key_is_checked(api: APIClient, paid_in_store: Callable[..., dict[str, Any]]) -> None:
    trade = paid_in_store()
    response = reverse(api, trade["id"], **{"Idempotency-Key": "has space"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "Idempotency-Key"
    assert Refund.objects.count() == 0
