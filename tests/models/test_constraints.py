"""Database constraints that hold the invariants whatever code writes the rows, and consistent migrations."""

from __future__ import annotations

import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from django_alipay.models import Merchant, Notification, Refund, Trade
from tests.factories import create_refund

pytestmark = pytest.mark.django_db


@pytest.fixture
def trade(make_merchant: Callable[..., Merchant]) -> Trade:
    return Trade.objects.create(
        merchant=make_merchant(), out_trade_no="C-1", amount=Decimal("10.00"), currency="USD", subject="x"
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"amount": Decimal("0")},
        {"amount": Decimal("-1")},
        {"refunded_amount": Decimal("-0.01")},
        {"refund_pending_amount": Decimal("-0.01")},
        {"refunded_amount": Decimal("10.01")},
        {"refunded_amount": Decimal("6.00"), "refund_pending_amount": Decimal("4.01")},
    ],
)
def test_trade_amount_invariants_are_enforced_by_the_database(trade: Trade, fields: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Trade.objects.filter(pk=trade.pk).update(**fields)


def test_the_full_amount_may_be_refunded(trade: Trade) -> None:
    Trade.objects.filter(pk=trade.pk).update(
        refunded_amount=Decimal("6.00"), refund_pending_amount=Decimal("4.00")
    )


def test_an_order_number_is_unique_per_merchant(trade: Trade) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Trade.objects.create(merchant=trade.merchant, out_trade_no="C-1", amount=Decimal(1), currency="USD")


def test_refund_amount_is_positive_and_a_trade_is_reversed_once(trade: Trade) -> None:
    def refund(**fields: Any) -> Refund:
        return create_refund(trade, **fields)

    with pytest.raises(IntegrityError), transaction.atomic():
        refund(amount=Decimal("0"))
    refund(kind="REVERSE", status="failed")
    refund(kind="REVERSE")
    with pytest.raises(IntegrityError), transaction.atomic():
        refund(kind="REVERSE")
    refund(idempotency_key="k")
    with pytest.raises(IntegrityError), transaction.atomic():
        refund(idempotency_key="k")
    refund(idempotency_key="")  # empty keys are not keys
    refund(idempotency_key="")


def test_one_applied_delivery_per_notify_id_and_duplicates_as_rows(trade: Trade) -> None:
    first = Notification.objects.create(merchant=trade.merchant, notify_id="n-1", outcome="processed")
    Notification.objects.create(
        merchant=trade.merchant, notify_id="n-1", outcome="duplicate", duplicate_of=first
    )
    Notification.objects.create(merchant=trade.merchant, notify_id="n-1", outcome="rejected")
    # Deliveries that were not applied never block another one, ignored ones included.
    Notification.objects.create(merchant=trade.merchant, notify_id="n-1", outcome="ignored")
    Notification.objects.create(merchant=trade.merchant, notify_id="n-1", outcome="ignored")
    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(merchant=trade.merchant, notify_id="n-1", outcome="processed")
    Notification.objects.create(merchant=trade.merchant, notify_id="", outcome="processed")
    Notification.objects.create(merchant=trade.merchant, notify_id="", outcome="processed")


def test_migrations_match_the_models() -> None:
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
