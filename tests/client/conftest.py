"""Fixtures for the client tests: a stub gateway per test and a client factory with a recorded sleep."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from django_alipay.protocol.client import GatewayClient
from tests.client.stub import MD5_KEY, PARTNER, StubGateway


@pytest.fixture
def stub() -> Iterator[StubGateway]:
    gateway = StubGateway()
    yield gateway
    gateway.close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(stub: StubGateway, sleeps: list[float]) -> Iterator[Callable[..., GatewayClient]]:
    made: list[GatewayClient] = []

    def make(**overrides: Any) -> GatewayClient:
        options: dict[str, Any] = {
            "partner": PARTNER,
            "sign_type": "MD5",
            "key": MD5_KEY,
            "gateway_url": stub.url,
            "timeout": (2.0, 3.0),
            "deadline": 5.0,
            "sleep": sleeps.append,
            "rng": random.Random(7),
        }
        options.update(overrides)
        client = GatewayClient(**options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
