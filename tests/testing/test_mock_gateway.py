"""``mock_gateway``: the library's own calls (a query, a refund) answered in memory, with no socket."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from django_alipay import gateway
from django_alipay.domain import refunds, trades
from django_alipay.enums import RefundStatus
from django_alipay.models import Trade
from django_alipay.protocol.codes import TradeStatus
from django_alipay.protocol.transport import HttpTransport, MockTransport, Request
from django_alipay.testing import build_response
from django_alipay.testing.gateway import mock_gateway
from tests.factories import TEST_MD5_KEY

pytestmark = pytest.mark.django_db


def alipay(request: Request) -> bytes:
    """Alipay as a test plays it: every trade finished, every refund accepted."""
    params = request.params
    if params["service"] == "single_trade_query":
        fields = {
            "out_trade_no": params["out_trade_no"],
            "trade_no": "2026120721001004680000000001",
            "trade_status": "TRADE_FINISHED",
            "total_fee": "100.00",
            "currency": "USD",
        }
        return build_response("single_trade_query", fields, key=TEST_MD5_KEY)
    assert params["service"] == "forex_refund", params
    return build_response("forex_refund")


def test_a_query_and_a_refund_of_the_domain_are_answered_in_memory(
    make_merchant: Any, django_capture_on_commit_callbacks: Any
) -> None:
    merchant = make_merchant()  # its gateway URL is the discard port: over HTTP every call would fail
    trade = Trade.objects.create(
        merchant=merchant, out_trade_no="MOCK-1", amount=Decimal("100.00"), currency="USD", product="web"
    )
    with mock_gateway(alipay) as transport:
        trades.sync_trade(trade)
        trade.refresh_from_db()
        assert trade.status == TradeStatus.TRADE_FINISHED
        with django_capture_on_commit_callbacks(execute=True):  # the refund is sent once its row commits
            refund = refunds.request_refund(trade, Decimal("30.00"), reason="damaged")
        refund.refresh_from_db()
        assert refund.status == RefundStatus.SUCCEEDED
    assert [(r.params["service"], r.params["out_trade_no"]) for r in transport.requests] == [
        ("single_trade_query", "MOCK-1"),
        ("forex_refund", "MOCK-1"),
    ]
    trade.refresh_from_db()
    assert trade.refunded_amount == Decimal("30.00")


def test_after_the_block_the_merchant_s_client_goes_over_http_again(make_merchant: Any) -> None:
    merchant = make_merchant()
    with mock_gateway(alipay):
        assert isinstance(gateway.client(merchant).transport, MockTransport)
    assert isinstance(gateway.client(merchant).transport, HttpTransport)
