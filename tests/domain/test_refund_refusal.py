"""refund_refusal and request_full_refund: why a trade cannot be refunded, and refunding all that remains."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from django_alipay.domain import refunds
from django_alipay.domain.errors import RefundNotAllowed
from django_alipay.models import Refund, Trade
from django_alipay.protocol.clock import BEIJING
from tests.domain.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def afternoon(fixed_clock: Any) -> None:
    fixed_clock(datetime(2024, 5, 1, 15, 0, tzinfo=BEIJING))


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"status": "WAIT_BUYER_PAY", "paid_at": None}, "has not been paid"),
        ({"status": "TRADE_CLOSED", "paid_at": None}, "closed without being paid"),
        ({"refunded_amount": Decimal("100.00")}, "refunded in full"),
        ({"refund_pending_amount": Decimal("100.00")}, "held by refunds still in progress"),
    ],
)
def test_refund_refusal_says_why(
    make_trade: Callable[..., Trade], fields: dict[str, Any], words: str
) -> None:
    refusal = refunds.refund_refusal(make_trade(**fields))
    assert refusal is not None
    assert words in refusal


def test_a_paid_trade_with_something_left_has_no_refusal(make_trade: Callable[..., Trade]) -> None:
    assert refunds.refund_refusal(make_trade(refunded_amount=Decimal("99.99"))) is None


def test_the_refund_window_is_part_of_the_refusal(make_trade: Callable[..., Trade], settings: Any) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_WINDOW_DAYS": 0}
    refusal = refunds.refund_refusal(make_trade(paid_at=datetime(2024, 4, 1, tzinfo=BEIJING)))
    assert refusal is not None
    assert "0 days after payment" in refusal


def test_a_full_refund_returns_exactly_what_remains(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade(refunded_amount=Decimal("30.00"))
    stale = Trade.objects.get(pk=trade.pk)
    Trade.objects.filter(pk=trade.pk).update(refunded_amount=Decimal("40.00"))  # someone refunded meanwhile
    refund = refunds.request_full_refund(stale, reason="returned")
    assert (refund.amount, refund.status, refund.reason) == (Decimal("60.00"), "succeeded", "returned")
    [call] = gateway.called("forex_refund")
    assert call.params["return_amount"] == "60.00"
    assert Trade.objects.get(pk=trade.pk).refunded_amount == Decimal("100.00")


def test_a_full_refund_of_a_trade_with_nothing_left_is_refused_and_sends_nothing(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    with pytest.raises(RefundNotAllowed, match="refunded in full"):
        refunds.request_full_refund(make_trade(refunded_amount=Decimal("100.00")))
    assert not Refund.objects.exists()
    assert not gateway.calls


def test_a_full_refund_replayed_with_its_key_returns_the_first_refund(
    make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade()
    first = refunds.request_full_refund(trade, idempotency_key="full-1")
    again = refunds.request_full_refund(trade, idempotency_key="full-1")
    assert again.pk == first.pk
    assert len(gateway.called("forex_refund")) == 1
