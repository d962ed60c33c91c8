"""Fixtures of the task tests: Redis (required), the emulator, Celery apps, and Celery worker processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery import current_app as celery_current_app

from django_alipay import schedule
from django_alipay.models import Merchant, Trade
from django_alipay.protocol.clock import BEIJING
from tests import factories
from tests.conftest import TEST_MD5_KEY, TEST_PARTNER
from tests.domain.fakegateway import FakeGateway, in_memory
from tests.tasks.support import Emulator, Workers

PAID_AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=BEIJING)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis of scripts/with-services; a missing or unreachable Redis fails the test, never skips it."""
    url = os.environ.get("REDIS_URL", "")
    assert url, (
        "REDIS_URL is not set: the task tests need a real Redis broker. Run them through "
        "scripts/with-services, e.g. scripts/with-services .venv/bin/python -m pytest tests/tasks"
    )
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=3) as client:
            client.ping()
    except redis.RedisError as exc:
        raise AssertionError(f"Redis at {url} does not answer: {exc}") from exc
    return url


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[redis.Redis]:
    """The broker's database, emptied: no message of an earlier test is left in a queue."""
    with redis.Redis.from_url(redis_url) as client:  # closed after the test: no socket left to the GC
        client.flushdb()
        yield client


@pytest.fixture
def celery_app(clean_redis: redis.Redis, redis_url: str) -> Iterator[Celery]:
    """A Celery app of this (the test) process sending to the real Redis, made the current app."""
    app = Celery("django_alipay_test_client", set_as_current=False)
    app.conf.update(
        broker_url=redis_url,
        result_backend=redis_url,
        task_routes=schedule.task_routes(),
        broker_connection_retry_on_startup=False,
    )
    previous = celery_current_app._get_current_object()
    app.set_current()
    try:
        yield app
    finally:
        previous.set_current()
        app.close()


@pytest.fixture
def eager_celery() -> Iterator[Celery]:
    """A Celery app that runs tasks in-process (CELERY_TASK_ALWAYS_EAGER), for the unit tests."""
    app = Celery("django_alipay_test_eager", set_as_current=False)
    app.conf.update(task_always_eager=True, task_eager_propagates=True, broker_url="memory://")
    previous = celery_current_app._get_current_object()
    app.set_current()
    try:
        yield app
    finally:
        previous.set_current()
        app.close()


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    running = Emulator(TEST_PARTNER, TEST_MD5_KEY, log)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def fresh_emulator(emulator: Emulator) -> Emulator:
    """The emulator with no trades, calls, notifications or faults left by an earlier test."""
    emulator.post("reset")
    return emulator


@pytest.fixture
def shop(make_merchant: Callable[..., Merchant], fresh_emulator: Emulator) -> Merchant:
    """A merchant (the emulator's registered partner) pointing at the emulator."""
    return make_merchant(gateway_url=fresh_emulator.gateway, partner=TEST_PARTNER)


@pytest.fixture
def workers(transactional_db: None, tmp_path: Path, redis_url: str, clean_redis: Any) -> Iterator[Workers]:
    """Start Celery worker processes on the test database (``workers.make(...).start()``); all are stopped
    at teardown, before pytest-django empties the tables."""
    from django.db import connection

    started = Workers(tmp_path, str(connection.settings_dict["NAME"]), redis_url)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    """The scripted fake gateway, answering this process's calls in memory (the worker tests use the
    emulator)."""
    with in_memory() as fake:
        yield fake


@pytest.fixture
def merchant(make_merchant: Callable[..., Merchant], gateway: FakeGateway) -> Merchant:
    return make_merchant(gateway_url=gateway.url)


@pytest.fixture
def make_trade(merchant: Merchant) -> Callable[..., Trade]:
    """A trade written directly in a chosen state (paid online by default)."""
    return factories.trade_factory(
        merchant,
        numbers=factories.numbered("ORDER-"),
        subject="Test order",
        status="TRADE_FINISHED",
        paid_at=PAID_AT,
        created_at=PAID_AT,
    )
