"""The REST API on PostgreSQL: racing partial refunds never refund more than was paid."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from django_alipay.models import Refund, Trade
from tests.api.conftest import client_for, gateway_calls, refund

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 5


def race(trade_id: int, user: Any, amounts: list[str]) -> list[Any]:
    """Send one refund request per amount at the same moment, each from its own thread and connection."""
    barrier = threading.Barrier(len(amounts))
    answers: dict[int, Any] = {}
    errors: list[BaseException] = []

    def send(index: int, amount: str) -> None:
        try:
            client = client_for(user)
            barrier.wait(timeout=10)
            answers[index] = refund(client, trade_id, {"amount": amount})
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=pair) for pair in enumerate(amounts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return [answers[index] for index in range(len(amounts))]


def test_two_partial_refunds_exceeding_the_rest_one_201_one_409(
    paid_online: Callable[..., dict[str, Any]], admin_user: Any, emulator: str
) -> None:
    for _ in range(ROUNDS):
        trade = paid_online("100.00")
        answers = race(trade["id"], admin_user, ["60.00", "60.00"])

        assert sorted(answer.status_code for answer in answers) == [201, 409]
        [won] = [answer for answer in answers if answer.status_code == 201]
        [lost] = [answer for answer in answers if answer.status_code == 409]
        assert won.json()["status"] == "succeeded"
        assert lost.json()["error"]["code"] == "refund_amount_exceeded"
        assert "40.00 USD" in lost.json()["error"]["message"]
        fresh = Trade.objects.get(pk=trade["id"])
        assert (fresh.refunded_amount, fresh.refund_pending_amount) == (Decimal("60.00"), Decimal("0.00"))
        assert fresh.refunded_amount <= fresh.amount
    assert Refund.objects.count() == ROUNDS
    assert len(gateway_calls(emulator, "forex_refund")) == ROUNDS


def test_many_racing_refunds_add_up_to_at_most_the_paid_amount(
    paid_online: Callable[..., dict[str, Any]], admin_user: Any
) -> None:
    trade = paid_online("10.00")
    amounts = ["1.50", "2.30", "0.70", "3.00", "2.50", "1.00", "0.50", "2.00"]  # 13.50 asked of 10.00

    answers = race(trade["id"], admin_user, amounts)

    accepted = [Decimal(amounts[i]) for i, answer in enumerate(answers) if answer.status_code == 201]
    refused = [Decimal(amounts[i]) for i, answer in enumerate(answers) if answer.status_code == 409]
    assert len(accepted) + len(refused) == len(amounts)
    assert refused, "13.50 cannot fit in 10.00"
    fresh = Trade.objects.get(pk=trade["id"])
    assert fresh.refunded_amount == sum(accepted, Decimal(0)) <= fresh.amount
    assert fresh.amount - fresh.refunded_amount < min(refused)  # every refusal was justified
