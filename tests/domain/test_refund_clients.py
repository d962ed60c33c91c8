"""The refund path gets its gateway client the one way: built once per merchant and process, then kept."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from django_alipay import gateway as django_gateway
from django_alipay.domain import refunds
from django_alipay.enums import RefundStatus
from django_alipay.models import Trade
from tests.domain.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db(transaction=True)


def test_refunds_build_at_most_one_client_per_merchant_and_process(
    make_trade: Callable[..., Trade], gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[tuple[int, bool]] = []
    real = django_gateway.client_for

    def counting(merchant: Any, *, instore: bool = False, **kwargs: Any) -> Any:
        built.append((merchant.pk, instore))
        return real(merchant, instore=instore, **kwargs)

    monkeypatch.setattr(django_gateway, "client_for", counting)
    first, second = make_trade(), make_trade()
    done = [
        refunds.request_refund(first, Decimal("10.00")),
        refunds.request_refund(first, Decimal("5.00")),
        refunds.request_refund(second, Decimal("20.00")),
    ]

    assert [refund.status for refund in done] == [RefundStatus.SUCCEEDED] * 3
    assert len(gateway.called("forex_refund")) == 3
    assert built == [(first.merchant_id, False)]
