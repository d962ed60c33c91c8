"""Fixtures of the command tests: a scripted gateway, a merchant on it, trades, and the emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from django_alipay.models import Merchant, Trade
from django_alipay.protocol.clock import BEIJING
from tests import factories
from tests.conftest import TEST_MD5_KEY, TEST_PARTNER
from tests.domain.fakegateway import FakeGateway, in_memory
from tests.tasks.support import Emulator

NOW = datetime(2024, 5, 2, 12, 0, tzinfo=BEIJING)


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    """The scripted fake gateway, answering this process's calls in memory."""
    with in_memory() as fake:
        yield fake


@pytest.fixture
def merchant(make_merchant: Callable[..., Merchant], gateway: FakeGateway) -> Merchant:
    return make_merchant(name="Tea House", gateway_url=gateway.url)


@pytest.fixture
def make_trade(merchant: Merchant) -> Callable[..., Trade]:
    """A trade written directly, awaiting payment by default."""
    return factories.trade_factory(
        merchant,
        numbers=factories.numbered("ORDER-"),
        subject="Tea set",
        status="WAIT_BUYER_PAY",
        paid_at=None,
        created_at=NOW,
    )


@pytest.fixture
def midday(fixed_clock: Callable[[datetime], Any]) -> datetime:
    fixed_clock(NOW)
    return NOW


class Ran:
    """The output of one command run, and whether it ended in an error (exit status 1)."""

    def __init__(self, out: str, err: str, failed: bool, error: str = "") -> None:
        self.out = out
        self.err = err
        self.failed = failed
        self.error = error

    def __repr__(self) -> str:
        return f"<Ran failed={self.failed} error={self.error!r}\n{self.out}>"


@pytest.fixture
def run_command() -> Callable[..., Ran]:
    """Run a management command, capturing its output; a CommandError becomes ``failed`` (exit status 1)."""
    from django.core.management.base import CommandError

    def run(name: str, *args: str, **options: Any) -> Ran:
        out, err = StringIO(), StringIO()
        try:
            call_command(name, *args, stdout=out, stderr=err, no_color=True, **options)
        except CommandError as exc:
            return Ran(out.getvalue(), err.getvalue(), True, str(exc))
        return Ran(out.getvalue(), err.getvalue(), False)

    return run


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    log = tmp_path_factory.mktemp("emulator-commands") / "emulator.log"
    running = Emulator(TEST_PARTNER, TEST_MD5_KEY, log)
    try:
        yield running
    finally:
        running.stop()
