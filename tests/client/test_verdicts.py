"""What each kind of gateway answer comes out as: a result only for a done operation, else an error whose
verdict says what became of the operation (the one reading of result codes, for every caller)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from django_alipay.protocol.client import GatewayClient
from django_alipay.protocol.codes import Verdict
from django_alipay.protocol.errors import AlipayError, TransportError
from django_alipay.protocol.interpretation import verdict_of
from django_alipay.protocol.services import CancelResult, SpotRefundResult
from django_alipay.protocol.transport import MockTransport, Request, Response
from tests.client.stub import MD5_KEY, PARTNER, xml_failure, xml_success

SPOT_REFUND = {
    "partner_trans_id": "P1",
    "partner_refund_id": "PR1",
    "refund_amount": Decimal("5.00"),
    "currency": "USD",
}


def _client(answer: Callable[[Request], Response]) -> GatewayClient:
    return GatewayClient(
        partner=PARTNER,
        sign_type="MD5",
        key=MD5_KEY,
        gateway_url="http://gateway.test/gateway.do",
        transport=MockTransport(answer),
        retries=0,
    )


def _xml(body: bytes) -> Callable[[Request], Response]:
    return lambda request: Response(200, {"Content-Type": "text/xml; charset=utf-8"}, body)


def _spot_refund(client: GatewayClient) -> Any:
    return client.spot_refund(**SPOT_REFUND)


def _cancel(client: GatewayClient) -> Any:
    return client.cancel(out_trade_no="C1")


def _query(client: GatewayClient) -> Any:
    return client.overseas_query(partner_trans_id="P1")


def test_a_success_is_a_typed_result_not_an_error() -> None:
    refund = _spot_refund(_client(_xml(xml_success({"result_code": "SUCCESS", "partner_refund_id": "PR1"}))))
    cancel = _cancel(_client(_xml(xml_success({"result_code": "SUCCESS", "retry_flag": "N"}))))

    assert isinstance(refund, SpotRefundResult)
    assert isinstance(cancel, CancelResult)


@pytest.mark.parametrize(("call", "fields", "verdict"), [
    (_spot_refund, {"result_code": "FAILED", "error": "REQUEST_AMOUNT_EXCEED"}, Verdict.REFUSED),
    (_cancel, {"result_code": "FAIL", "error": "TRADE_STATUS_ERROR", "retry_flag": "N"}, Verdict.REFUSED),
    (_cancel, {"result_code": "FAIL", "error": "TRADE_STATUS_ERROR", "retry_flag": "Y"}, Verdict.RETRY),
    (_spot_refund, {"result_code": "FAILED", "error": "REPEATED_REFUNDMENT_REQUEST"}, Verdict.UNKNOWN),
    (_spot_refund, {"result_code": "FAILED", "error": "NOT_IN_ANY_CATALOG"}, Verdict.UNKNOWN),
    (_spot_refund, {"result_code": "FAILED"}, Verdict.UNKNOWN),
    # A state-changing call that failed for a system error may still have been carried out.
    (_spot_refund, {"result_code": "FAILED", "error": "SYSTEM_ERROR"}, Verdict.UNKNOWN),
    (_query, {"result_code": "FAIL", "error": "SYSTEM_ERROR"}, Verdict.RETRY),
    (_query, {"result_code": "FAIL", "error": "TRANS_NOT_FOUND"}, Verdict.REFUSED),
    (_spot_refund, {"result_code": "UNKNOW"}, Verdict.UNKNOWN),
    (_cancel, {"result_code": "UNKNOWN"}, Verdict.UNKNOWN),
    (_spot_refund, {"result_code": "PROCESSING"}, Verdict.UNKNOWN),
    (_spot_refund, {"partner_refund_id": "PR1"}, Verdict.UNKNOWN),  # no result_code at all
])  # fmt: skip
def test_a_business_answer_raises_an_error_with_its_verdict(
    call: Callable[[GatewayClient], Any], fields: dict[str, str], verdict: Verdict
) -> None:
    with pytest.raises(AlipayError) as caught:
        call(_client(_xml(xml_success(fields))))

    assert verdict_of(caught.value) is verdict


@pytest.mark.parametrize(("code", "verdict"), [
    ("ILLEGAL_SIGN", Verdict.REFUSED),
    ("ILLEGAL_PARTNER", Verdict.REFUSED),
    ("SYSTEM_ERROR", Verdict.RETRY),
    ("NOT_IN_ANY_CATALOG", Verdict.UNKNOWN),
])  # fmt: skip
def test_a_gateway_refusal_raises_an_error_with_its_verdict(code: str, verdict: Verdict) -> None:
    with pytest.raises(AlipayError) as caught:
        _spot_refund(_client(_xml(xml_failure(code))))

    assert verdict_of(caught.value) is verdict


@pytest.mark.parametrize(("answer", "verdict"), [
    (Response(502, {}, b""), Verdict.UNKNOWN),
    (Response(200, {"Content-Type": "text/html"}, b"<html>busy</html>"), Verdict.UNKNOWN),
    (Response(200, {"Content-Type": "text/xml"}, b"<alipay><is_success>T</is"), Verdict.UNKNOWN),
])  # fmt: skip
def test_an_answer_that_cannot_be_read_is_of_unknown_outcome(answer: Response, verdict: Verdict) -> None:
    with pytest.raises(AlipayError) as caught:
        _spot_refund(_client(lambda request: answer))

    assert verdict_of(caught.value) is verdict


def test_a_request_that_never_left_is_not_sent() -> None:
    def refuse(request: Request) -> Response:
        raise TransportError("connection refused", **request.error_context())

    with pytest.raises(TransportError) as caught:
        _spot_refund(_client(refuse))

    assert verdict_of(caught.value) is Verdict.NOT_SENT
