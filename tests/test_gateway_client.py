"""gateway.client: one kept client per merchant and service family, rebuilt when the merchant changes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from django_alipay import gateway
from django_alipay.domain import clock as domain_clock
from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.models import Merchant
from django_alipay.protocol.clock import BEIJING, SystemClock
from django_alipay.protocol.errors import InvalidParameterError

pytestmark = pytest.mark.django_db


def test_the_same_merchant_gets_the_same_client_until_its_key_changes(
    make_merchant: Callable[..., Merchant], monkeypatch: pytest.MonkeyPatch
) -> None:
    merchant = make_merchant()
    first = gateway.client(merchant)
    assert gateway.client(Merchant.objects.get(pk=merchant.pk)) is first
    assert gateway.client(merchant) is first
    closed: list[bool] = []
    monkeypatch.setattr(first, "close", lambda: closed.append(True))

    merchant.md5_key = "b" * 32
    merchant.save()
    second = gateway.client(Merchant.objects.get(pk=merchant.pk))

    assert second is not first
    assert closed == [True]  # the replaced client's connections are released, not left to the collector
    assert gateway.client(merchant) is second
    assert gateway.shared_client(merchant) is second  # the older name is the same thing


def test_a_client_asked_for_under_a_fixed_clock_uses_that_clock(
    make_merchant: Callable[..., Merchant], fixed_clock: Callable[[datetime], Any]
) -> None:
    merchant = make_merchant()
    shared = gateway.client(merchant)
    fixed = fixed_clock(datetime(2024, 3, 10, 12, 0, tzinfo=BEIJING))
    on_fixed = gateway.client(merchant, clock=domain_clock.get_clock())
    # The file services take only days before today: under the fixed clock 2024-03-10 is today.
    with pytest.raises(InvalidParameterError, match="before today"):
        on_fixed.forex_compare_file(start_date="20240309", end_date="20240310")
    assert gateway.client(merchant, clock=fixed) is on_fixed
    assert gateway.client(merchant) is shared  # the system clock's client is not replaced
    assert gateway.client(merchant, clock=SystemClock()) is shared


def test_the_configuration_check_names_a_missing_key_without_calling_the_gateway(
    make_merchant: Callable[..., Merchant],
) -> None:
    merchant = make_merchant()
    Merchant.objects.filter(pk=merchant.pk).update(md5_key=None)
    with pytest.raises(AlipayConfigurationError):
        gateway.check_configuration(Merchant.objects.get(pk=merchant.pk))
    gateway.check_configuration(make_merchant())
