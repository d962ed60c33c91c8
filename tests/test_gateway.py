"""Gateway clients built from merchants: per call, pooled for a run, shared across a process's requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from django_alipay import gateway
from django_alipay.models import Merchant

pytestmark = pytest.mark.django_db


def test_the_shared_client_is_reused_for_the_same_merchant(make_merchant: Callable[..., Merchant]) -> None:
    merchant = make_merchant()
    client = gateway.shared_client(merchant)
    assert gateway.shared_client(Merchant.objects.get(pk=merchant.pk)) is client
    assert gateway.shared_client(merchant, instore=True) is not client
    assert gateway.shared_client(make_merchant()) is not client


@pytest.mark.parametrize(
    "change",
    [
        {"md5_key": "a" * 32},
        {"gateway_url": "http://127.0.0.1:10/gateway.do"},
        {"partner": "2088999999999999"},
    ],
)
def test_the_shared_client_is_rebuilt_when_the_merchant_changes(
    make_merchant: Callable[..., Merchant], change: dict[str, Any]
) -> None:
    merchant = make_merchant()
    before = gateway.shared_client(merchant)
    for name, value in change.items():
        setattr(merchant, name, value)
    merchant.save()
    after = gateway.shared_client(Merchant.objects.get(pk=merchant.pk))
    assert after is not before
    assert after.partner == merchant.partner
    assert after.gateway_urls == (merchant.resolved_gateway_url(),)


def test_the_shared_client_follows_the_timeout_settings(
    make_merchant: Callable[..., Merchant], settings: Any
) -> None:
    merchant = make_merchant()
    before = gateway.shared_client(merchant)
    settings.ALIPAY = {**settings.ALIPAY, "HTTP_TOTAL_TIMEOUT": 7}
    after = gateway.shared_client(merchant)
    assert after is not before
    assert after.deadline == 7


def test_a_client_pool_builds_one_client_per_merchant_and_closes_them(
    make_merchant: Callable[..., Merchant],
) -> None:
    first, second = make_merchant(), make_merchant()
    with gateway.ClientPool() as pool:
        client = pool.client(first)
        assert pool.client(first) is client
        assert pool.client(second) is not client
        assert pool.client(first, instore=True) is not client
    assert pool.client(first) is not client  # closed and forgotten on leaving the block
