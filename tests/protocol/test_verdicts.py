"""Every result code and error code has one verdict, and every error the client raises maps to one."""

from __future__ import annotations

import pytest

from django_alipay.protocol.codes import (
    ERROR_CODES,
    OUTCOME_UNKNOWN_CODES,
    ResultCode,
    Verdict,
    lookup_error,
    result_code_verdict,
)
from django_alipay.protocol.errors import (
    AlipayBusinessError,
    AlipayError,
    AlipayGatewayError,
    AlipaySystemError,
    GatewayResponseError,
    InvalidParameterError,
    OutcomeUnknownError,
    SignatureError,
    TransportError,
)
from django_alipay.protocol.interpretation import verdict_of


@pytest.mark.parametrize(("result_code", "verdict"), [
    ("SUCCESS", Verdict.DONE),
    ("FAIL", Verdict.REFUSED),
    ("FAILED", Verdict.REFUSED),
    ("UNKNOW", Verdict.UNKNOWN),
    ("UNKNOWN", Verdict.UNKNOWN),
    # Not in the catalog: nothing says whether the operation happened.
    ("PROCESSING", Verdict.UNKNOWN),
    ("success", Verdict.UNKNOWN),
    ("", Verdict.UNKNOWN),
])  # fmt: skip
def test_each_result_code_has_its_verdict(result_code: str, verdict: Verdict) -> None:
    assert result_code_verdict(result_code) is verdict


def test_every_catalog_result_code_has_a_verdict_of_its_own() -> None:
    assert {code: code.verdict for code in ResultCode} == {
        ResultCode.SUCCESS: Verdict.DONE,
        ResultCode.FAIL: Verdict.REFUSED,
        ResultCode.FAILED: Verdict.REFUSED,
        ResultCode.UNKNOW: Verdict.UNKNOWN,
        ResultCode.UNKNOWN: Verdict.UNKNOWN,
    }


@pytest.mark.parametrize(("code", "verdict"), [
    ("ILLEGAL_SIGN", Verdict.REFUSED),  # gateway check
    ("RETURN_AMOUNT_EXCEED", Verdict.REFUSED),  # business refusal
    ("TRADE_NOT_EXIST", Verdict.REFUSED),
    ("REPEATED_REFUNDMENT_REQUEST", Verdict.UNKNOWN),  # the request arrived before: what became of it?
    ("SYSTEM_ERROR", Verdict.RETRY),  # passing trouble at Alipay
    ("SESSION_TIMEOUT", Verdict.RETRY),
    ("ILLEGAL_TARGET_SERVICE", Verdict.UNKNOWN),  # Alipay's own systems refusing proves nothing
    ("NOT_A_CATALOG_CODE", Verdict.UNKNOWN),
    (None, Verdict.UNKNOWN),
])  # fmt: skip
def test_each_error_code_has_its_verdict(code: str | None, verdict: Verdict) -> None:
    assert lookup_error(code).verdict is verdict


def test_the_verdict_of_an_error_code_follows_its_catalog_category() -> None:
    for entry in ERROR_CODES.values():
        if entry.category == "system":
            expected = Verdict.RETRY if entry.retryable else Verdict.UNKNOWN
        elif entry.code in OUTCOME_UNKNOWN_CODES:
            expected = Verdict.UNKNOWN
        else:
            expected = Verdict.REFUSED
        assert entry.verdict is expected, entry.code
    assert set(OUTCOME_UNKNOWN_CODES) - set(ERROR_CODES) == set()


@pytest.mark.parametrize(("error", "verdict"), [
    (TransportError("connection refused"), Verdict.NOT_SENT),
    (OutcomeUnknownError("read timed out"), Verdict.UNKNOWN),
    (GatewayResponseError("truncated"), Verdict.UNKNOWN),
    # A system error of a state-changing call comes as OutcomeUnknownError, whatever its code.
    (OutcomeUnknownError(code="SYSTEM_ERROR"), Verdict.UNKNOWN),
    (AlipaySystemError(code="SYSTEM_ERROR"), Verdict.RETRY),
    (AlipaySystemError(code="ILLEGAL_TARGET_SERVICE", retryable=False), Verdict.UNKNOWN),
    (AlipayGatewayError(code="ILLEGAL_SIGN"), Verdict.REFUSED),
    (AlipayBusinessError(code="RETURN_AMOUNT_EXCEED"), Verdict.REFUSED),
    # retry_flag=Y: refused for now.
    (AlipayBusinessError(code="RETURN_AMOUNT_EXCEED", retryable=True), Verdict.RETRY),
    (AlipayBusinessError(code="REPEATED_REFUNDMENT_REQUEST"), Verdict.UNKNOWN),
    (AlipayBusinessError(code="NEVER_HEARD_OF_IT"), Verdict.UNKNOWN),
    (AlipayGatewayError("is_success=F without an error code"), Verdict.UNKNOWN),
    # Raised before anything was known of the gateway's side.
    (InvalidParameterError("bad amount"), Verdict.UNKNOWN),
    (SignatureError("bad signature"), Verdict.UNKNOWN),
    (AlipayError("something else"), Verdict.UNKNOWN),
])  # fmt: skip
def test_each_error_type_has_its_verdict(error: AlipayError, verdict: Verdict) -> None:
    assert verdict_of(error) is verdict
