"""Fixtures of the domain tests: a fake gateway, merchants pointing at it, and trades in a chosen state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from django_alipay.models import Merchant, Trade
from django_alipay.protocol.clock import BEIJING
from tests import factories
from tests.domain.fakegateway import FakeGateway, in_memory

PAID_AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=BEIJING)


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    """The scripted fake gateway, answering this process's calls in memory."""
    with in_memory() as fake:
        yield fake


@pytest.fixture
def merchant(make_merchant: Callable[..., Merchant], gateway: FakeGateway) -> Merchant:
    return make_merchant(gateway_url=gateway.url)


@pytest.fixture
def make_trade(merchant: Merchant) -> Callable[..., Trade]:
    """A trade written directly (tests of refunds start from a known state, not from the payment flow)."""
    return factories.trade_factory(
        merchant,
        numbers=factories.numbered("ORDER-"),
        subject="Test order",
        status="TRADE_FINISHED",
        paid_at=PAID_AT,
        created_at=PAID_AT,
    )


@pytest.fixture
def recorded_dispatch(settings: Any) -> Iterator[list[int]]:
    """Replace the refund dispatcher by a recorder: refunds are created but never sent."""
    sent: list[int] = []
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_DISPATCHER": sent.append}
    return sent
