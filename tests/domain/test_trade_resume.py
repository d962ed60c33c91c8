"""The same unpaid online order asked for again goes back to its stored payment; WAP sends order_create."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from django_alipay.domain import trades
from django_alipay.domain.errors import TradeNotAllowed
from django_alipay.models import Merchant, Trade

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("product", ["web", "wap"])
def test_the_same_unpaid_order_asked_again_gets_its_stored_payment_url(
    merchant: Merchant, product: str
) -> None:
    first = trades.create_trade(merchant, out_trade_no="R-1", amount="9.90", subject="Tea", product=product)

    again = trades.create_trade(merchant, out_trade_no="R-1", amount="9.90", subject="Tea", product=product)

    assert again.trade.pk == first.trade.pk
    assert again.url == first.url == Trade.objects.get(pk=first.trade.pk).payment_url
    assert 'name="out_trade_no" value="R-1"' in again.form_html
    assert 'name="sign"' in again.form_html
    assert Trade.objects.count() == 1


@pytest.mark.parametrize(
    "change",
    [{"amount": "9.91"}, {"currency": "EUR"}, {"product": "wap"}],
    ids=["another amount", "another currency", "another product"],
)
def test_an_order_number_used_for_another_payment_is_still_refused(merchant: Merchant, change: Any) -> None:
    trades.create_trade(merchant, out_trade_no="R-2", amount="9.90", subject="Tea")
    with pytest.raises(TradeNotAllowed, match="R-2 already exists"):
        trades.create_trade(merchant, **{"out_trade_no": "R-2", "amount": "9.90", "subject": "Tea", **change})


def test_a_paid_order_is_not_paid_again(merchant: Merchant) -> None:
    start = trades.create_trade(merchant, out_trade_no="R-3", amount="9.90", subject="Tea")
    Trade.objects.filter(pk=start.trade.pk).update(status="TRADE_FINISHED")
    with pytest.raises(TradeNotAllowed):
        trades.create_trade(merchant, out_trade_no="R-3", amount="9.90", subject="Tea")


def test_a_wap_payment_with_a_timeout_rule_sends_order_create_in_epoch_seconds(merchant: Merchant) -> None:
    start = trades.create_trade(
        merchant,
        out_trade_no="W-1",
        amount="1.00",
        subject="Tea",
        product="wap",
        extra={"timeout_rule": "3d"},
    )

    sent = parse_qs(urlsplit(start.url).query)
    assert sent["order_create"] == [str(int(start.trade.created_at.timestamp()))]
    assert len(sent["order_create"][0]) == 10


def test_a_wap_payment_without_a_timeout_rule_sends_no_order_create(merchant: Merchant) -> None:
    start = trades.create_trade(merchant, out_trade_no="W-2", amount="1.00", subject="Tea", product="wap")
    assert "order_create" not in parse_qs(urlsplit(start.url).query)
