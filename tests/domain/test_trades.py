"""Trades: creation for each product, forward-only status changes, and queries."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from django_alipay import signals
from django_alipay.domain import trades
from django_alipay.domain.errors import TradeNotAllowed
from django_alipay.models import Merchant, Trade
from django_alipay.protocol import signing
from django_alipay.protocol.errors import AmountError, InvalidParameterError
from tests.conftest import TEST_MD5_KEY
from tests.domain.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_online_trade_gets_a_signed_cashier_url_without_a_gateway_call(
    merchant: Merchant, gateway: FakeGateway, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_URL_BASE": "https://shop.example/alipay/notify/"}
    start = trades.create_trade(merchant, out_trade_no="A-1", amount="12.50", currency="USD", subject="Mug")
    assert start.trade.status == "WAIT_BUYER_PAY"
    assert start.trade.amount == Decimal("12.50")
    query = {k: v[0] for k, v in parse_qs(urlsplit(start.url).query).items()}
    assert query["service"] == "create_forex_trade"
    assert (query["out_trade_no"], query["total_fee"], query["currency"]) == ("A-1", "12.50", "USD")
    assert query["notify_url"] == f"https://shop.example/alipay/notify/{merchant.notify_token}/"
    assert signing.verify(query, key=TEST_MD5_KEY, charset="utf-8")
    assert 'name="out_trade_no" value="A-1"' in start.form_html
    assert Trade.objects.get().payment_url == start.url
    assert gateway.calls == []


def test_a_wap_trade_uses_the_wap_service(merchant: Merchant) -> None:
    start = trades.create_trade(merchant, out_trade_no="W-1", amount="1.00", subject="x", product="wap")
    assert "service=create_forex_trade_wap" in start.url


@pytest.mark.parametrize("amount", ["0", "0.001", "1e2", 10.0, Decimal("-1"), "1000000.01"])
def test_bad_amounts_create_nothing(merchant: Merchant, amount: Any) -> None:
    with pytest.raises(AmountError):
        trades.create_trade(merchant, out_trade_no="B-1", amount=amount, subject="x")
    assert not Trade.objects.exists()


@pytest.mark.parametrize("out_trade_no", ["", "x" * 65, "has space", "ＦＵＬＬ", 'quote"d'])
def test_bad_order_numbers_create_nothing(merchant: Merchant, out_trade_no: str) -> None:
    with pytest.raises(InvalidParameterError):
        trades.create_trade(merchant, out_trade_no=out_trade_no, amount="1.00", subject="x")
    assert not Trade.objects.exists()


@pytest.mark.parametrize(
    ("product", "extra", "parameter"),
    [
        ("web", {"timeout_rule": "forever"}, "timeout_rule"),
        ("wap", {"no_such_parameter": "1"}, "no_such_parameter"),
        ("qrcode", {"timeout_rule": "forever"}, "timeout_rule"),
        ("barcode", {"sign": "x"}, "sign"),
    ],
)
def test_a_bad_extra_parameter_creates_nothing_and_keeps_the_order_number_free(
    merchant: Merchant, gateway: FakeGateway, product: str, extra: dict[str, str], parameter: str
) -> None:
    code = {"buyer_identity_code": "281234567890123456"} if product == "barcode" else {}
    with pytest.raises(InvalidParameterError) as caught:
        trades.create_trade(
            merchant, out_trade_no="E-1", amount="1.00", subject="x", product=product, extra=extra, **code
        )
    assert caught.value.parameter == parameter
    assert not Trade.objects.exists()
    assert gateway.calls == []
    trades.create_trade(merchant, out_trade_no="E-1", amount="1.00", subject="x", product=product, **code)
    assert Trade.objects.filter(out_trade_no="E-1").count() == 1


def test_an_order_number_is_used_once_per_merchant(merchant: Merchant, make_merchant: Any) -> None:
    trades.create_trade(merchant, out_trade_no="D-1", amount="1.00", subject="x")
    with pytest.raises(TradeNotAllowed, match="D-1 already exists"):
        trades.create_trade(merchant, out_trade_no="D-1", amount="2.00", subject="x")
    other = make_merchant()
    trades.create_trade(other, out_trade_no="D-1", amount="1.00", subject="x")


def test_an_inactive_merchant_takes_no_payment(make_merchant: Any) -> None:
    with pytest.raises(TradeNotAllowed):
        trades.create_trade(make_merchant(is_active=False), out_trade_no="I-1", amount="1.00", subject="x")


def test_a_barcode_payment_is_charged_after_the_commit_and_applied(
    merchant: Merchant, gateway: FakeGateway
) -> None:
    start = trades.create_trade(
        merchant, out_trade_no="S-1", amount="8.80", subject="Tea", product="barcode",
        buyer_identity_code="281234567890123456",
    )  # fmt: skip
    [call] = gateway.called("alipay.acquire.overseas.spot.pay")
    assert (call.params["partner_trans_id"], call.params["trans_amount"]) == ("S-1", "8.80")
    assert start.error is None
    trade = Trade.objects.get()
    assert (trade.status, trade.trade_no, trade.buyer_id) == (
        "TRADE_SUCCESS", "2024050122001400000000000001", "2088000000000001"
    )  # fmt: skip
    assert trade.paid_at is not None


def test_a_refused_barcode_payment_closes_the_trade(merchant: Merchant, gateway: FakeGateway) -> None:
    gateway.once(
        "alipay.acquire.overseas.spot.pay",
        lambda p: gateway.signed({"result_code": "FAILED", "error": "BUYER_NOT_EXIST"}),
    )
    start = trades.create_trade(
        merchant, out_trade_no="S-2", amount="1.00", subject="Tea", product="barcode",
        buyer_identity_code="281234567890123456",
    )  # fmt: skip
    assert start.error is not None
    assert start.error.code == "BUYER_NOT_EXIST"
    assert Trade.objects.get().status == "TRADE_CLOSED"


def test_an_unknown_barcode_outcome_leaves_the_trade_open_for_a_query(
    merchant: Merchant, gateway: FakeGateway
) -> None:
    gateway.once("alipay.acquire.overseas.spot.pay", lambda p: gateway.signed({"result_code": "UNKNOW"}))
    start = trades.create_trade(
        merchant, out_trade_no="S-3", amount="1.00", subject="Tea", product="barcode",
        buyer_identity_code="281234567890123456",
    )  # fmt: skip
    assert start.error is not None
    trade = Trade.objects.get()
    assert trade.status == "WAIT_BUYER_PAY"
    gateway.trades["S-3"] = {
        "alipay_trans_status": "TRADE_SUCCESS",
        "trans_amount": "1.00",
        "currency": "USD",
    }
    change = trades.sync_trade(trade)
    assert change is not None
    assert change.changed
    assert trade.status == "TRADE_SUCCESS"


def test_a_qr_code_payment_shows_the_code(merchant: Merchant, gateway: FakeGateway) -> None:
    start = trades.create_trade(merchant, out_trade_no="Q-1", amount="3.00", subject="Tea", product="qrcode")
    assert start.qr_code == "https://qr.alipay.com/bax0000test"
    assert Trade.objects.get().status == "WAIT_BUYER_PAY"


def test_status_moves_forward_only_and_repeats_change_nothing(make_trade: Callable[..., Trade]) -> None:
    seen: list[dict[str, Any]] = []

    def on_paid(sender: type, **kwargs: Any) -> None:
        seen.append(kwargs)

    trade = make_trade(product="barcode", status="WAIT_BUYER_PAY", paid_at=None)
    signals.trade_paid.connect(on_paid)
    try:
        first = trades.apply_status(trade, status="TRADE_SUCCESS", amount="100.00", currency="USD")
        again = trades.apply_status(trade, status="TRADE_SUCCESS", amount="100.00", currency="USD")
        closed = trades.apply_status(trade, status="TRADE_CLOSED")
        late = trades.apply_status(trade, status="TRADE_SUCCESS")
    finally:
        signals.trade_paid.disconnect(on_paid)
    assert (first.changed, first.applied) == (True, True)
    assert (again.changed, again.applied) == (False, True)
    assert closed.changed
    assert (late.applied, late.flag) == (False, "stale_transition")
    assert trade.status == "TRADE_CLOSED"
    assert trade.closed_at is not None
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("report", "flag"),
    [
        ({"amount": "99.99"}, "amount_mismatch"),
        ({"currency": "EUR"}, "currency_mismatch"),
        ({"partner": "2088000000000000"}, "partner_mismatch"),
        ({"amount": "1e2"}, "bad_amount"),
        ({"status": "NOT_A_STATUS"}, "unknown_status"),
    ],
)
def test_reports_that_do_not_match_the_trade_change_nothing(
    make_trade: Callable[..., Trade], report: dict[str, str], flag: str
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    change = trades.apply_status(trade, **{"status": "TRADE_FINISHED", **report})
    assert (change.applied, change.flag) == (False, flag)
    trade.refresh_from_db()
    assert (trade.status, trade.paid_at) == ("WAIT_BUYER_PAY", None)


def test_sync_trade_applies_the_online_query(make_trade: Callable[..., Trade], gateway: FakeGateway) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    gateway.trades[trade.out_trade_no] = {
        "out_trade_no": trade.out_trade_no,
        "trade_no": "2024050122001332950500000001",
        "trade_status": "TRADE_FINISHED",
        "total_fee": "100.00",
        "gmt_payment": "2024-05-01 12:03:04",
        "payment_type": "1",
    }
    change = trades.sync_trade(trade)
    assert change is not None
    assert change.changed
    trade.refresh_from_db()
    assert (trade.status, trade.payment_type) == ("TRADE_FINISHED", "1")
    assert trade.paid_at is not None
    assert trade.paid_at.isoformat() == "2024-05-01T04:03:04+00:00"
    assert trade.gateway_response["trade_no"] == "2024050122001332950500000001"
    assert trade.last_synced_at is not None


def test_sync_trade_of_a_trade_alipay_does_not_know(make_trade: Callable[..., Trade]) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    assert trades.sync_trade(trade) is None
    trade.refresh_from_db()
    assert trade.status == "WAIT_BUYER_PAY"
    assert trade.last_synced_at is not None
