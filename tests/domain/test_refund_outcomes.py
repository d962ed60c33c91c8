"""What a refund call's typed result or error makes of the refund, by the error's verdict alone.

The protocol layer reads the gateway's codes (``interpretation.verdict_of``); the refund domain maps the
verdict to a status, and only the first answer to a request no earlier attempt may have delivered
(``conclusive``) can put a refund back to REQUESTED or make it FAILED.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from django_alipay.domain import refunds
from django_alipay.enums import RefundKind, RefundStatus
from django_alipay.models import Refund
from django_alipay.protocol.codes import Verdict
from django_alipay.protocol.errors import (
    AlipayBusinessError,
    AlipayError,
    AlipayGatewayError,
    AlipaySystemError,
    OutcomeUnknownError,
    TransportError,
)
from django_alipay.protocol.interpretation import verdict_of
from django_alipay.protocol.services import (
    CancelResult,
    ForexRefundResult,
    ServiceResult,
    SpotRefundResult,
    SpotReverseResult,
)

#: One error of each verdict an error can have (an error is never DONE).
ERRORS: dict[Verdict, AlipayError] = {
    Verdict.NOT_SENT: TransportError("connection refused"),
    Verdict.REFUSED: AlipayBusinessError(code="RETURN_AMOUNT_EXCEED", description="too much"),
    Verdict.RETRY: AlipaySystemError(code="SYSTEM_ERROR"),
    Verdict.UNKNOWN: OutcomeUnknownError("read timed out"),
}
STATUS = {
    # (verdict, conclusive): the refund's status after the answer.
    (Verdict.NOT_SENT, True): RefundStatus.REQUESTED,
    (Verdict.NOT_SENT, False): RefundStatus.UNKNOWN,
    (Verdict.REFUSED, True): RefundStatus.FAILED,
    (Verdict.REFUSED, False): RefundStatus.UNKNOWN,
    (Verdict.RETRY, True): RefundStatus.UNKNOWN,
    (Verdict.RETRY, False): RefundStatus.UNKNOWN,
    (Verdict.UNKNOWN, True): RefundStatus.UNKNOWN,
    (Verdict.UNKNOWN, False): RefundStatus.UNKNOWN,
}


def test_every_verdict_of_an_error_has_a_status_for_either_kind_of_attempt() -> None:
    assert set(ERRORS) == set(Verdict) - {Verdict.DONE}
    assert {verdict for verdict, _ in STATUS} == set(ERRORS)
    assert all(verdict_of(error) is verdict for verdict, error in ERRORS.items())


@pytest.mark.parametrize(("verdict", "conclusive"), sorted(STATUS, key=str))
def test_an_error_makes_the_status_its_verdict_says(verdict: Verdict, conclusive: bool) -> None:
    outcome = refunds._outcome_of_error(ERRORS[verdict], conclusive=conclusive)

    assert outcome.status == STATUS[verdict, conclusive]


@pytest.mark.parametrize(("error", "status"), [
    (AlipayGatewayError(code="ILLEGAL_SIGN"), RefundStatus.FAILED),
    (AlipayBusinessError(code="RETURN_AMOUNT_EXCEED", retryable=True), RefundStatus.UNKNOWN),  # retry_flag=Y
    (AlipayBusinessError(code="REPEATED_REFUNDMENT_REQUEST"), RefundStatus.UNKNOWN),
    (AlipayBusinessError(code="NOT_IN_ANY_CATALOG"), RefundStatus.UNKNOWN),
    (OutcomeUnknownError(code="SYSTEM_ERROR"), RefundStatus.UNKNOWN),
])  # fmt: skip
def test_a_first_refusal_fails_the_refund_only_when_it_proves_nothing_was_done(
    error: AlipayError, status: RefundStatus
) -> None:
    outcome = refunds._outcome_of_error(error, conclusive=True)

    assert (outcome.status, outcome.code) == (status, error.code)


def test_the_error_keeps_its_code_and_description_on_the_refund() -> None:
    outcome = refunds._outcome_of_error(ERRORS[Verdict.REFUSED], conclusive=True)

    assert (outcome.code, outcome.description) == ("RETURN_AMOUNT_EXCEED", "too much")
    assert outcome.fields == {"error": "RETURN_AMOUNT_EXCEED", "description": "too much"}


@pytest.mark.parametrize(("kind", "answer", "is_sync", "status"), [
    (RefundKind.REFUND, ForexRefundResult, "Y", RefundStatus.SUCCEEDED),
    (RefundKind.REFUND, ForexRefundResult, "N", RefundStatus.SUBMITTED),  # accepted; made later
    (RefundKind.REFUND, SpotRefundResult, "Y", RefundStatus.SUCCEEDED),
    (RefundKind.REFUND, SpotRefundResult, "N", RefundStatus.SUBMITTED),
    (RefundKind.REVERSE, SpotReverseResult, None, RefundStatus.SUCCEEDED),
    (RefundKind.REVERSE, CancelResult, None, RefundStatus.SUCCEEDED),
])  # fmt: skip
def test_a_typed_result_is_a_refund_made_or_accepted(
    kind: RefundKind, answer: type[ServiceResult], is_sync: str | None, status: RefundStatus
) -> None:
    refund = Refund(kind=kind, amount=Decimal("5.00"), currency="USD")
    fields = {"result_code": "SUCCESS", "partner_trans_id": "P1"}
    request = {} if is_sync is None else {"is_sync": is_sync}

    outcome = refunds._interpret(refund, answer(service="s", fields=fields), request)

    assert (outcome.status, outcome.code) == (status, "")
    assert outcome.fields == fields
