"""A notification writes the trade's new status in one constant statement (a model signal receiver still
hears of that write), and the row helpers behind it read and write as the ORM does."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.db.models.signals import post_save

from django_alipay.domain import rows
from django_alipay.models import Merchant, Refund, Trade
from tests import factories
from tests.domain.fakegateway import FakeGateway
from tests.domain.test_notifications import deliver, sign_form, trade_params

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def unpaid(make_trade: Callable[..., Trade]) -> Trade:
    return make_trade(status="WAIT_BUYER_PAY", paid_at=None)


def test_a_notification_moves_the_trade_without_the_orm_save(
    merchant: Merchant, unpaid: Trade, gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Trade, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("Trade.save() compiled an UPDATE for a notification")

    before = Trade.objects.get(pk=unpaid.pk).updated_at
    monkeypatch.setattr(Trade, "save", refuse)
    answer = deliver(merchant, sign_form(trade_params(unpaid)))
    assert (answer.status, answer.body) == (200, "success")
    monkeypatch.undo()
    trade = Trade.objects.get(pk=unpaid.pk)
    assert trade.status == "TRADE_FINISHED"
    assert trade.trade_no == "2024050122001332950500389138"
    assert trade.paid_at is not None
    assert trade.updated_at > before


def test_a_post_save_receiver_on_trade_still_hears_the_notifications_write(
    merchant: Merchant, unpaid: Trade, gateway: FakeGateway
) -> None:
    heard: list[tuple[str, frozenset[str] | None]] = []

    def receiver(sender: type[Trade], instance: Trade, update_fields: Any = None, **kwargs: Any) -> None:
        heard.append((instance.status, frozenset(update_fields) if update_fields else None))

    post_save.connect(receiver, sender=Trade, dispatch_uid="test-trade-writes")
    try:
        answer = deliver(merchant, sign_form(trade_params(unpaid)))
    finally:
        post_save.disconnect(sender=Trade, dispatch_uid="test-trade-writes")
    assert (answer.status, answer.body) == (200, "success")
    assert len(heard) == 1
    status, fields = heard[0]
    assert status == "TRADE_FINISHED"
    assert fields is not None
    assert {"status", "paid_at", "trade_no", "updated_at"} <= fields


def test_a_row_read_by_a_constant_statement_equals_the_orms(
    merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(status="TRADE_FINISHED", gateway_response={"trade_status": "TRADE_FINISHED", "n": "1"})
    Trade.objects.filter(pk=trade.pk).update(refunded_amount=Decimal("0.50"))
    expected = Trade.objects.get(pk=trade.pk)
    with transaction.atomic():
        found = rows.select_one(Trade, lock=True, merchant_id=merchant.pk, out_trade_no=trade.out_trade_no)
    assert found is not None
    for field in Trade._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    assert found.gateway_response == {"trade_status": "TRADE_FINISHED", "n": "1"}
    assert isinstance(found.refunded_amount, Decimal)
    assert found._state.adding is False
    assert rows.select_one(Trade, merchant_id=merchant.pk, out_trade_no="no such order") is None


def test_amounts_added_by_a_constant_statement_land_on_the_row(make_trade: Callable[..., Trade]) -> None:
    trade = make_trade(status="TRADE_FINISHED")
    Trade.objects.filter(pk=trade.pk).update(refund_pending_amount=Decimal("1.00"))
    rows.add_to_columns(
        Trade, trade.pk, refund_pending_amount=Decimal("-0.40"), refunded_amount=Decimal("0.40")
    )
    trade.refresh_from_db()
    assert (trade.refund_pending_amount, trade.refunded_amount) == (Decimal("0.60"), Decimal("0.40"))


def test_a_refund_read_with_its_trade_by_a_constant_statement_equals_the_orms(
    make_trade: Callable[..., Trade],
) -> None:
    trade = make_trade(status="TRADE_FINISHED")
    refund = factories.create_refund(trade, response={"refund_status": "REFUND_SUCCESS"})
    expected = Refund.objects.select_related("trade").get(pk=refund.pk)
    with transaction.atomic():
        found = rows.select_with_parent_locked(Refund, "trade", refund.pk)
        for field in Refund._meta.concrete_fields:
            assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
        assert Refund.trade.is_cached(found)
        for field in Trade._meta.concrete_fields:
            assert getattr(found.trade, field.attname) == getattr(expected.trade, field.attname), field.name
    assert found.response == {"refund_status": "REFUND_SUCCESS"}
    with pytest.raises(Refund.DoesNotExist):
        rows.select_with_parent_locked(Refund, "trade", refund.pk + 1000)
