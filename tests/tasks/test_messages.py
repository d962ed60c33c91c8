"""What goes over the broker: task messages read raw from Redis carry ids only, on the configured queues."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis
from celery import Celery
from celery.exceptions import Retry
from django.utils import timezone

from django_alipay import tasks
from django_alipay.domain import refunds
from django_alipay.enums import RefundStatus
from django_alipay.models import Merchant, Refund, Trade
from tests.conftest import TEST_MD5_KEY
from tests.domain.fakegateway import FakeGateway
from tests.tasks.support import answered_just_now

pytestmark = pytest.mark.django_db(transaction=True)

FERNET_KEY = "Pfb9ofqBIaATt0WUh3VQZz7Wk7q2n2aBoXCvtp0Jm8Q="  # the test settings' key


def messages(client: redis.Redis, queue: str) -> list[tuple[bytes, dict[str, Any], list[Any]]]:
    """Each message waiting in ``queue``: its raw bytes, its headers, and its decoded body."""
    found = []
    for raw in client.lrange(queue, 0, -1):
        envelope = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        found.append((raw, envelope["headers"], body))
    return found


def assert_no_secret(raw: bytes, merchant: Merchant, refund: Refund) -> None:
    for secret in (TEST_MD5_KEY, FERNET_KEY, merchant.notify_token, refund.gateway_refund_id, refund.reason):
        assert not secret or secret.encode() not in raw, secret


def test_a_refund_dispatched_on_commit_is_one_message_carrying_its_id_only(
    celery_app: Celery, clean_redis: redis.Redis, settings: Any, make_trade: Callable[..., Trade]
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "CELERY_ENABLED": True, "REFUND_TASK_QUEUE": "shop_refunds"}
    trade = make_trade()
    refund = refunds.request_refund(trade, Decimal("9.99"), reason="Arrived late")
    assert refund.status == RefundStatus.REQUESTED  # queued, not sent by this process

    [(raw, headers, body)] = messages(clean_redis, "shop_refunds")
    args, kwargs, _ = body
    assert (args, kwargs) == ([refund.pk], {})
    assert headers["task"] == "django_alipay.tasks.submit_refund"
    assert headers["argsrepr"] == f"({refund.pk},)"
    assert_no_secret(raw, trade.merchant, refund)
    assert b"9.99" not in raw


def test_a_reverse_is_dispatched_to_its_own_task(
    celery_app: Celery, clean_redis: redis.Redis, settings: Any, make_trade: Callable[..., Trade]
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "CELERY_ENABLED": True}
    trade = make_trade(product="barcode", status="TRADE_SUCCESS", paid_at=timezone.now())
    reversal = refunds.reverse(trade)
    [(raw, headers, body)] = messages(clean_redis, "alipay_refunds")
    assert (headers["task"], body[0]) == ("django_alipay.tasks.submit_reverse", [reversal.pk])
    assert_no_secret(raw, trade.merchant, reversal)


def test_a_retry_waiting_for_the_spacing_is_a_message_with_the_id_only(
    celery_app: Celery,
    clean_redis: redis.Redis,
    settings: Any,
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_DISPATCHER": lambda refund_id: None, "REFUND_SPACING": 3}
    trade = make_trade()
    refund = refunds.request_refund(trade, Decimal("1.00"))
    answered_just_now(trade.merchant)

    task = tasks.submit_refund._get_current_object()
    task.push_request(
        id="spacing-retry", args=[refund.pk], kwargs={}, retries=0, is_eager=False, called_directly=False,
        delivery_info={"exchange": "", "routing_key": "alipay_refunds"},
    )  # fmt: skip
    try:
        with pytest.raises(Retry):
            task.run(refund.pk)
    finally:
        task.pop_request()

    assert gateway.called("forex_refund") == []
    [(raw, headers, body)] = messages(clean_redis, "alipay_refunds")
    assert (body[0], body[1], headers["retries"]) == ([refund.pk], {}, 1)
    eta = timezone.datetime.fromisoformat(headers["eta"])
    assert timedelta(seconds=2.5) < eta - timezone.now() < timedelta(seconds=4)
    assert_no_secret(raw, trade.merchant, refund)


def test_without_celery_the_refund_is_sent_at_once_and_nothing_is_queued(
    celery_app: Celery,
    clean_redis: redis.Redis,
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    # CELERY_ENABLED is False in the test settings: the default dispatcher (domain.refunds.submit) runs.
    assert refunds.refund_dispatcher() is refunds.submit
    refund = refunds.request_refund(make_trade(), Decimal("2.00"))
    assert refund.status == RefundStatus.SUCCEEDED
    assert len(gateway.called("forex_refund")) == 1
    assert clean_redis.keys("alipay*") == []
