"""Fixtures for the client tests: a gateway of canned answers per test (in memory; on a loopback socket for
the tests of the wire) and a client factory with a recorded sleep."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from django_alipay.protocol.client import GatewayClient
from tests.client.stub import MD5_KEY, PARTNER, InMemoryGateway, StubGateway

#: Options that configure the HTTP transport: a client given one of them gets no in-memory transport.
WIRE_OPTIONS = frozenset({"session", "proxies", "verify", "transport"})


@pytest.fixture
def stub(request: pytest.FixtureRequest) -> Iterator[InMemoryGateway | StubGateway]:
    """Canned answers played to the real client through MockTransport; for a test marked ``wire`` (faults of
    the connection, timeouts, failover, the HTTP transport itself) served on a loopback socket instead."""
    if request.node.get_closest_marker("wire") is None:
        yield InMemoryGateway()
        return
    gateway = StubGateway()
    yield gateway
    gateway.close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(
    stub: InMemoryGateway | StubGateway, sleeps: list[float]
) -> Iterator[Callable[..., GatewayClient]]:
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
        if isinstance(stub, InMemoryGateway) and not WIRE_OPTIONS & overrides.keys():
            options["transport"] = stub.transport
        options.update(overrides)
        client = GatewayClient(**options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
