"""How many SQL statements one refund through the REST API costs: counted on PostgreSQL, never timed.

The request authenticates (one read, as a token would), loads the user's permissions, reads the trade with
its merchant, then refunds as the domain does; nothing is read twice. Transaction control (BEGIN, COMMIT,
SAVEPOINT, RELEASE) is not counted.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from django_alipay.models import Refund, Trade
from tests.api.conftest import API, gateway_calls
from tests.statements import listing, statements

pytestmark = pytest.mark.django_db(transaction=True)

#: Authentication (1), the user's permissions (2), the trade with its merchant (1), the refund sent at once
#: and answered SUCCESS (3).
API_REFUND_MAX = 7


def test_a_refund_through_the_api_takes_at_most_seven_statements(
    paid_online: Callable[..., dict[str, Any]], make_user: Callable[..., Any], emulator: str
) -> None:
    trade = paid_online("100.00")
    # A staff user holding exactly what refunding needs (not a superuser, whose permissions cost nothing).
    make_user("refunder", staff=True, perms=["view_merchant", "refund_trade"])
    client = APIClient()
    credentials = base64.b64encode(b"refunder:pw").decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {credentials}")
    key = uuid.uuid4().hex

    with CaptureQueriesContext(connection) as captured:
        response = client.post(
            f"{API}trades/{trade['id']}/refunds/",
            {"amount": "10.00", "reason": "late"},
            format="json",
            headers={"Idempotency-Key": key},
        )

    assert response.status_code == 201, response.content
    sql = statements(captured)
    assert len(sql) <= API_REFUND_MAX, listing(sql)
    body = response.json()
    assert (body["status"], body["amount"], body["out_trade_no"]) == (
        "succeeded",
        "10.00",
        trade["out_trade_no"],
    )
    assert len(gateway_calls(emulator, "forex_refund")) == 1
    stored = Trade.objects.get(pk=trade["id"])
    assert (stored.refunded_amount, stored.refund_pending_amount) == (Decimal("10.00"), Decimal("0.00"))
    # The same key and body again answers with the same refund and sends nothing more.
    again = client.post(
        f"{API}trades/{trade['id']}/refunds/",
        {"amount": "10.00", "reason": "late"},
        format="json",
        headers={"Idempotency-Key": key},
    )
    assert again.status_code == 201, again.content
    assert again.json()["id"] == body["id"]
    assert Refund.objects.filter(trade_id=trade["id"]).count() == 1
    assert len(gateway_calls(emulator, "forex_refund")) == 1
