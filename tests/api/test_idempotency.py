"""The Idempotency-Key of refund requests: one refund and one gateway call per key."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from django_alipay.models import Refund, Trade
from tests.api.conftest import client_for, gateway_calls, refund

pytestmark = pytest.mark.django_db(transaction=True)


def refunds_sent(emulator: str) -> list[str]:
    """The out_return_no of every forex_refund call the gateway received."""
    return [call["params"]["out_return_no"] for call in gateway_calls(emulator, "forex_refund")]


def test_the_same_key_and_body_replays_the_first_answer(
    api: APIClient, paid_online: Callable[..., dict[str, Any]], emulator: str
) -> None:
    trade = paid_online()
    key = str(uuid.uuid4())
    body = {"amount": "10.00", "reason": "chipped"}

    first = refund(api, trade["id"], body, key=key)
    second = refund(api, trade["id"], body, key=key)

    assert first.status_code == second.status_code == 201, first.content
    assert first.json() == second.json()
    assert first["Location"] == second["Location"]
    assert first.json()["status"] == "succeeded"
    assert first.json()["idempotency_key"] == key
    assert Refund.objects.count() == 1
    assert refunds_sent(emulator) == [first.json()["gateway_refund_id"]]  # one gateway call
    assert Trade.objects.get(pk=trade["id"]).refunded_amount == 10


def test_equivalent_bodies_are_the_same_request(
    api: APIClient, paid_online: Callable[..., dict[str, Any]], emulator: str
) -> None:
    # The key names the refund (trade, amount, reason); "10.0" is 10.00 and the trade's currency is implied.
    trade = paid_online()
    first = refund(api, trade["id"], {"amount": "10.00"}, key="same-refund")
    again = refund(api, trade["id"], {"amount": "10.0", "currency": "USD", "reason": ""}, key="same-refund")
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert len(refunds_sent(emulator)) == 1


def test_a_double_click_sent_at_once_refunds_once(
    paid_online: Callable[..., dict[str, Any]], admin_user: Any, emulator: str
) -> None:
    trade = paid_online()
    barrier = threading.Barrier(2)
    answers: list[Any] = []
    errors: list[BaseException] = []

    def click() -> None:
        try:
            client = client_for(admin_user)
            barrier.wait(timeout=10)
            answers.append(refund(client, trade["id"], {"amount": "25.00"}, key="double-click"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert [answer.status_code for answer in answers] == [201, 201]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    assert Refund.objects.count() == 1
    assert len(refunds_sent(emulator)) == 1
    assert Trade.objects.get(pk=trade["id"]).refunded_amount == 25


@pytest.mark.parametrize(
    "changed",
    [{"amount": "10.01"}, {"amount": "10.00", "reason": "another reason"}],
    ids=["amount", "reason"],
)
def test_the_same_key_with_other_parameters_is_refused(
    api: APIClient, paid_online: Callable[..., dict[str, Any]], emulator: str, changed: dict[str, str]
) -> None:
    trade = paid_online()
    first = refund(api, trade["id"], {"amount": "10.00"}, key="key-r16")
    before = (Refund.objects.count(), Trade.objects.get(pk=trade["id"]).refunded_amount)

    reused = refund(api, trade["id"], changed, key="key-r16")

    assert reused.status_code == 422, reused.content
    error = reused.json()["error"]
    assert error["code"] == "idempotency_conflict"
    assert "already used" in error["message"]
    assert "other details" in error["message"]
    assert first.json()["gateway_refund_id"] in error["message"]
    assert (Refund.objects.count(), Trade.objects.get(pk=trade["id"]).refunded_amount) == before
    assert len(refunds_sent(emulator)) == 1


def test_a_key_belongs_to_one_trade(
    api: APIClient, paid_online: Callable[..., dict[str, Any]], emulator: str
) -> None:
    first, second = paid_online(), paid_online()
    assert refund(api, first["id"], {"amount": "1.00"}, key="one-trade").status_code == 201
    elsewhere = refund(api, second["id"], {"amount": "1.00"}, key="one-trade")
    assert elsewhere.status_code == 422
    assert elsewhere.json()["error"]["code"] == "idempotency_conflict"
    assert Refund.objects.filter(trade_id=second["id"]).count() == 0
    assert len(refunds_sent(emulator)) == 1


@pytest.mark.parametrize(
    "key",
    [None, "", "k" * 256, "clé-non-ascii", "with space", "tab\there"],
    ids=["missing", "empty", "256-chars", "non-ascii", "space", "control-char"],
)
def test_a_missing_or_malformed_key_is_refused(
    api: APIClient, paid_online: Callable[..., dict[str, Any]], emulator: str, key: str | None
) -> None:
    trade = paid_online()
    url = f"/alipay/api/trades/{trade['id']}/refunds/"
    headers = {} if key is None else {"Idempotency-Key": key}

    response = api.post(url, {"amount": "1.00"}, format="json", headers=headers)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid", "Idempotency-Key")
    assert "Idempotency-Key" in error["message"] or "idempotency key" in error["message"]
    assert Refund.objects.count() == 0
    assert refunds_sent(emulator) == []


def test_a_key_of_255_printable_characters_is_accepted(
    api: APIClient, paid_online: Callable[..., dict[str, Any]]
) -> None:
    trade = paid_online()
    key = "".join(chr(33 + i % 94) for i in range(255))
    response = refund(api, trade["id"], {"amount": "1.00"}, key=key)
    assert response.status_code == 201, response.content
    assert response.json()["idempotency_key"] == key


def test_a_refused_request_does_not_use_up_its_key(
    api: APIClient, paid_online: Callable[..., dict[str, Any]]
) -> None:
    # Nothing is stored for a refusal (409): the key names a refund only once one was made.
    trade = paid_online("20.00")
    too_much = refund(api, trade["id"], {"amount": "20.01"}, key="retry-me")
    assert too_much.status_code == 409
    assert refund(api, trade["id"], {"amount": "20.00"}, key="retry-me").status_code == 201
