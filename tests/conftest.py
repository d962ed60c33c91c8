"""Shared fixtures: a PostgreSQL guard for lock tests, the domain clock, and a merchant factory."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
from django.db import connection

from django_alipay.domain import clock as domain_clock
from django_alipay.protocol.clock import FixedClock

# One control token for this test run: every emulator it starts (subprocesses inherit the environment) and
# the mounted one take it, and the tests send it with each POST to control/.
os.environ.setdefault("ALIPAY_EMULATOR_CONTROL_TOKEN", secrets.token_urlsafe(24))
#: The header that lets a test change an emulator through control/.
CONTROL_HEADERS = {"X-Emulator-Token": os.environ["ALIPAY_EMULATOR_CONTROL_TOKEN"]}

TEST_PARTNER = "2088101122136241"
# A made-up MD5 key in the portal's shape (32 letters and digits); never a real merchant's.
TEST_MD5_KEY = "k3y4testsOnly0f32charsXYZ7890abc"


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
    from django_alipay.models import Merchant

    counter = iter(range(1, 10_000))

    def make(**fields: Any) -> Merchant:
        number = next(counter)
        values: dict[str, Any] = {
            "name": f"Shop {number}",
            "partner": TEST_PARTNER,
            "environment": "emulator",
            "gateway_url": "http://127.0.0.1:9/gateway.do",
            "sign_type": "MD5",
            "md5_key": TEST_MD5_KEY,
            "currency": "USD",
        }
        values.update(fields)
        if "partner" not in fields and number > 1:
            values["partner"] = f"2088{number:012d}"
        return Merchant.objects.create(**values)

    return make


@contextmanager
def standalone_emulator() -> Iterator[str]:
    """The standalone emulator, without notifier or refund spacing; yields its base URL (``.../``)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "django_alipay.emulator", "--host", "127.0.0.1", "--port", "0",
         "--partner", TEST_PARTNER, "--md5-key", TEST_MD5_KEY, "--refund-interval", "0",
         "--no-notifier", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("ready "), f"the emulator did not start: {line!r}"
        yield line.split()[1].removesuffix("gateway.do")
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
