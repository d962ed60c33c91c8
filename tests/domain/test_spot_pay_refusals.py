"""A barcode payment's error closes the trade only when it proves the payment was not made: a refusal.

An error whose outcome is unknown (a code in no catalog, an UNKNOW result) or that says "try again later"
leaves the trade waiting for payment, so that a query finds out what became of it; closing it would lose a
payment the buyer may have made.
"""

from __future__ import annotations

import pytest

from django_alipay.domain import trades
from django_alipay.models import Merchant, Trade
from tests.domain.fakegateway import FakeGateway, Reply

pytestmark = pytest.mark.django_db

BARCODE = "286123456789012345"


def status_after(merchant: Merchant, gateway: FakeGateway, reply: Reply) -> str:
    """The trade's status after a barcode payment the gateway answered with ``reply`` (an error)."""
    gateway.on("alipay.acquire.overseas.spot.pay", lambda params: reply)
    start = trades.create_trade(
        merchant, out_trade_no="SPOT-1", amount="12.00", subject="Lunch", product="barcode",
        buyer_identity_code=BARCODE,
    )  # fmt: skip
    assert start.error is not None
    return Trade.objects.get(pk=start.trade.pk).status


@pytest.mark.parametrize(("answer", "closed"), [
    ({"result_code": "FAIL", "error": "SOUNDWAVE_PARSER_FAIL"}, True),  # a catalog refusal
    ({"result_code": "FAIL", "error": "NOT_IN_ANY_CATALOG"}, False),  # unknown: maybe paid
    ({"result_code": "FAIL", "error": "SYSTEM_ERROR", "retry_flag": "Y"}, False),  # refused for now
])  # fmt: skip
def test_a_business_error_closes_the_trade_only_when_it_is_a_refusal(
    merchant: Merchant, gateway: FakeGateway, answer: dict[str, str], closed: bool
) -> None:
    status = status_after(merchant, gateway, gateway.signed(answer))

    assert status == ("TRADE_CLOSED" if closed else "WAIT_BUYER_PAY"), answer


@pytest.mark.parametrize(("code", "closed"), [
    ("ILLEGAL_SIGN", True),  # refused before anything was done
    ("NOT_IN_ANY_CATALOG", False),
    ("SYSTEM_ERROR", False),
])  # fmt: skip
def test_a_gateway_error_closes_the_trade_only_when_it_is_a_refusal(
    merchant: Merchant, gateway: FakeGateway, code: str, closed: bool
) -> None:
    status = status_after(merchant, gateway, gateway.refused(code))

    assert status == ("TRADE_CLOSED" if closed else "WAIT_BUYER_PAY"), code
