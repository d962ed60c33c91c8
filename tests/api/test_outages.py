"""The API while a part of the shop is down: the database (a JSON 503), the task queue (a refund kept)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from celery import Celery
from celery import current_app as celery_current_app
from django.db import connection
from rest_framework.test import APIClient

from django_alipay.enums import RefundStatus
from django_alipay.models import Refund, Trade
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


@pytest.fixture
def broker_down(settings: Any) -> Iterator[Celery]:
    """Refunds go to Celery (CELERY_ENABLED), whose broker does not answer: nothing listens on its port."""
    app = Celery("django_alipay_test_broker_down", set_as_current=False)
    app.conf.update(
        broker_url=f"redis://127.0.0.1:{_closed_port()}/0",
        broker_connection_retry=False,
        broker_connection_timeout=1,
        task_publish_retry=False,
    )
    previous = celery_current_app._get_current_object()
    app.set_current()
    settings.ALIPAY = {
        **{key: value for key, value in settings.ALIPAY.items() if key != "REFUND_DISPATCHER"},
        "CELERY_ENABLED": True,
    }
    try:
        yield app
    finally:
        previous.set_current()
        app.close()


def test_a_refund_the_task_queue_could_not_take_is_kept_logged_and_said_to_be_queued_for_the_sweeper(
    api: APIClient,
    make_trade: Callable[..., Trade],
    broker_down: Celery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    trade = make_trade()
    with caplog.at_level(logging.WARNING, logger="django_alipay"):
        response = refund(api, trade.pk, {"amount": "7.00"})

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["queued_for_sweeper"]) == ("requested", True)
    stored = Refund.objects.get(pk=body["id"])
    assert (stored.status, stored.task_due_at, stored.attempts) == (RefundStatus.REQUESTED, None, 0)
    trade.refresh_from_db()
    assert str(trade.refund_pending_amount) == "7.00"  # kept reserved: it will be sent
    [warning] = [
        r for r in caplog.records if r.name.startswith("django_alipay") and r.levelno == logging.WARNING
        and "sweeper" in r.getMessage()
    ]  # fmt: skip
    assert f"refund id {stored.pk} " in warning.getMessage()
    assert "could not be handed over" in warning.getMessage()
