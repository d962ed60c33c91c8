"""Shared fixtures: a PostgreSQL guard for lock tests, the domain clock, and a merchant factory; transactional
tests end with the cheaper emptying of tests/emptying.py."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
from django.db import connection

from django_alipay.domain import clock as domain_clock
from django_alipay.protocol.clock import FixedClock
from tests import emptying, factories
from tests.factories import TEST_MD5_KEY, TEST_PARTNER
from tests.standalone import StandaloneEmulator

# One control token for this test run: every emulator it starts (subprocesses inherit the environment) and
# the mounted one take it, and the tests send it with each POST to control/.
os.environ.setdefault("ALIPAY_EMULATOR_CONTROL_TOKEN", secrets.token_urlsafe(24))
#: The header that lets a test change an emulator through control/.
CONTROL_HEADERS = {"X-Emulator-Token": os.environ["ALIPAY_EMULATOR_CONTROL_TOKEN"]}


def _redis_database_of_this_worker(url: str, worker: str) -> str:
    """``url`` on the Redis database numbered after the pytest-xdist worker (gw0 -> 0, gw1 -> 1, ...).

    Under ``pytest -n`` each worker flushes and fills a broker database of its own, as pytest-django gives
    each its own test database; a serial run keeps the database of ``url``.
    """
    if not url or not worker.startswith("gw"):
        return url
    number = int(worker[2:])
    assert number < 16, f"xdist worker {worker}: Redis has databases 0-15 only; run with fewer workers"
    base, _, _database = url.rpartition("/")
    return f"{base}/{number}"


# Set before any fixture runs, so the Celery workers and shops the tests start inherit it too.
if "REDIS_URL" in os.environ:
    os.environ["REDIS_URL"] = _redis_database_of_this_worker(
        os.environ["REDIS_URL"], os.environ.get("PYTEST_XDIST_WORKER", "")
    )

emptying.install()


@pytest.fixture
def postgresql(db: None) -> None:
    """Fail (not skip) when the database cannot take row locks: SQLite ignores SELECT ... FOR UPDATE."""
    assert connection.vendor == "postgresql", (
        "this test needs PostgreSQL (row locks); run it through scripts/with-services, e.g. "
        "scripts/with-services .venv/bin/python -m pytest tests/domain"
    )


@pytest.fixture
def fixed_clock() -> Iterator[Callable[[datetime], FixedClock]]:
    """Set the domain clock to a fixed instant: ``fixed_clock(datetime(..., tzinfo=BEIJING))``."""

    def stand_at(when: datetime) -> FixedClock:
        fixed = FixedClock(when)
        domain_clock.set_clock(fixed)
        return fixed

    yield stand_at
    domain_clock.set_clock(None)


@pytest.fixture
def make_merchant(db: None) -> Callable[..., Any]:
    """Create a Merchant (MD5, emulator environment) with any field overridden."""
    return factories.merchant_factory()


@contextmanager
def standalone_emulator() -> Iterator[str]:
    """The standalone emulator, without notifier or refund spacing; yields its base URL (``.../``)."""
    args = ("--partner", TEST_PARTNER, "--md5-key", TEST_MD5_KEY, "--refund-interval", "0", "--no-notifier")
    with StandaloneEmulator(*args) as emulator:
        yield emulator.base
