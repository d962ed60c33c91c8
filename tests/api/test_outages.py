"""The API while a part of the shop is down: the database (a JSON 503), the task queue (a refund kept)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from django_alipay.models import Trade
from tests.api.conftest import API, refund

pytestmark = pytest.mark.django_db(transaction=True)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def database_down() -> Iterator[None]:
    """Every new connection of this process goes to a port where no database listens (as when it is down)."""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(_closed_port()))
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@pytest.mark.parametrize("method", ["get", "post"])
def test_while_the_database_is_down_the_api_answers_a_json_503_with_retry_after(
    api: APIClient, make_trade: Callable[..., Trade], method: str
) -> None:
    trade = make_trade()
    with database_down():
        if method == "get":
            response = api.get(f"{API}trades/{trade.pk}/")
        else:
            response = refund(api, trade.pk, {"amount": "1.00"})

    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/json")
    assert response["Retry-After"] == "30"
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "database_unavailable"
    assert "database" in error["message"]
    assert set(error) >= {"code", "message", "alipay_code", "description", "field"}
