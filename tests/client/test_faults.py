"""Gateway refusals, bad answers, network faults and clock skew from a loopback stub end in typed errors."""

from __future__ import annotations

import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from django_alipay.protocol.codes import lookup_error
from django_alipay.protocol.errors import (
    AlipayBusinessError,
    AlipayGatewayError,
    AlipaySystemError,
    GatewayResponseError,
    OutcomeUnknownError,
    TransportError,
)
from tests.client.stub import Canned, dead_url, rsa_sign, xml_failure, xml_success

QUERY_OK = {
    "out_trade_no": "T1",
    "trade_no": "2018110922001332950500389138",
    "trade_status": "TRADE_FINISHED",
    "total_fee": "0.01",
    "subject": "test",
}
REFUND = {
    "out_return_no": "R1",
    "out_trade_no": "T1",
    "return_amount": Decimal("1.00"),
    "currency": "USD",
    "reason": "reason",
    "gmt_return": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
}
SPOT_PAY = {
    "partner_trans_id": "P1",
    "trans_name": "coffee",
    "currency": "USD",
    "trans_amount": Decimal("0.01"),
    "buyer_identity_code": "281234567890123456",
}
LOGGER = "django_alipay.protocol.client"
# Guards against a hang; the deadline itself is what the tests are about, not how fast it fires.
HANG_GUARD = 10.0


# --- is_success=F codes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        ("ILLEGAL_SIGN", AlipayGatewayError),
        ("ILLEGAL_PARTNER", AlipayGatewayError),
        ("ILLEGAL_ARGUMENT", AlipayGatewayError),
        ("TRADE_NOT_EXIST", AlipayBusinessError),
        ("SYSTEM_ERROR", AlipaySystemError),
        ("SESSION_TIMEOUT", AlipaySystemError),
    ],
)
def test_query_refusals_map_to_typed_errors(stub, make_client, code, error_type):
    stub.answer(Canned(xml_failure(code)))
    client = make_client(retries=0)
    with pytest.raises(error_type) as caught:
        client.single_trade_query(out_trade_no="T1")
    assert caught.value.code == code
    assert caught.value.description == lookup_error(code).description
    assert caught.value.service == "single_trade_query"
    assert caught.value.out_trade_no == "T1"


@pytest.mark.parametrize(
    "code",
    ["RETURN_AMOUNT_EXCEED", "PURCHASE_TRADE_NOT_EXIST", "REPEATED_REFUNDMENT_REQUEST", "CURRENCY_NOT_SAME"],
)
def test_refund_business_refusals_are_definitive_and_not_resent(stub, make_client, code):
    stub.answer(Canned(xml_failure(code)))
    with pytest.raises(AlipayBusinessError) as caught:
        make_client().forex_refund(**REFUND)
    assert caught.value.code == code
    assert caught.value.retryable is False
    assert len(stub.requests) == 1


def test_gateway_refusal_of_a_query_is_not_retried(stub, make_client, sleeps):
    stub.answer(Canned(xml_failure("ILLEGAL_SIGN")))
    with pytest.raises(AlipayGatewayError):
        make_client(retries=3).single_trade_query(out_trade_no="T1")
    assert len(stub.requests) == 1
    assert sleeps == []


def test_system_error_on_a_query_is_retried(stub, make_client, sleeps):
    stub.answer(Canned(xml_failure("SYSTEM_ERROR")), Canned(xml_success(QUERY_OK, element="trade")))
    result = make_client(retries=2).single_trade_query(out_trade_no="T1")
    assert result.trade_status == "TRADE_FINISHED"
    assert len(stub.requests) == 2
    assert len(sleeps) == 1


def test_unknown_code_is_still_a_typed_refusal(stub, make_client):
    stub.answer(Canned(xml_failure("SOMETHING_NEW")))
    with pytest.raises(AlipayGatewayError) as caught:
        make_client().single_trade_query(out_trade_no="T1")
    assert caught.value.code == "SOMETHING_NEW"
    assert "SOMETHING_NEW" in caught.value.description


# --- is_success=T with a failed result_code ---------------------------------------------------------------


def test_query_result_fail_is_a_business_error(stub, make_client):
    stub.answer(Canned(xml_success({"result_code": "FAIL", "error": "TRANS_NOT_FOUND"})))
    with pytest.raises(AlipayBusinessError) as caught:
        make_client().overseas_query(partner_trans_id="P1")
    assert caught.value.code == "TRANS_NOT_FOUND"
    assert caught.value.description == lookup_error("TRANS_NOT_FOUND").description


def test_precreate_failure_reports_detail_error_code(stub, make_client):
    fields = {
        "detail_error_code": "TRADE_HAS_SUCCESS",
        "detail_error_des": "交易已经支付",
        "out_trade_no": "Q1",
        "result_code": "FAIL",
    }
    stub.answer(Canned(xml_success(fields)))
    with pytest.raises(AlipayBusinessError) as caught:
        make_client().precreate(out_trade_no="Q1", subject="s", total_fee=Decimal("1.00"), currency="SGD")
    assert caught.value.code == "TRADE_HAS_SUCCESS"


def test_spot_refund_failed_is_a_business_error_and_not_resent(stub, make_client):
    stub.answer(Canned(xml_success({"result_code": "FAILED", "error": "REQUEST_AMOUNT_EXCEED"})))
    with pytest.raises(AlipayBusinessError) as caught:
        make_client().spot_refund(
            partner_trans_id="P1", partner_refund_id="PR1", refund_amount=Decimal("5.00"), currency="USD"
        )
    assert caught.value.code == "REQUEST_AMOUNT_EXCEED"
    assert len(stub.requests) == 1


def test_cancel_failure_with_retry_flag_says_retryable(stub, make_client):
    stub.answer(Canned(xml_success({"result_code": "FAIL", "retry_flag": "Y", "error": "SYSTEM_ERROR_X"})))
    with pytest.raises(AlipayBusinessError) as caught:
        make_client().cancel(out_trade_no="C1")
    assert caught.value.retryable is True
    assert len(stub.requests) == 1


@pytest.mark.parametrize(("method", "kwargs", "code"), [
    ("spot_pay", SPOT_PAY, "UNKNOW"),
    ("cancel", {"out_trade_no": "C1"}, "UNKNOWN"),
    ("spot_reverse", {"partner_trans_id": "P1"}, "UNKNOWN"),
])  # fmt: skip
def test_unknown_result_codes_are_outcome_unknown_and_not_resent(stub, make_client, method, kwargs, code):
    stub.answer(Canned(xml_success({"result_code": code, "partner_trans_id": "P1"})))
    with pytest.raises(OutcomeUnknownError):
        getattr(make_client(), method)(**kwargs)
    assert len(stub.requests) == 1


def test_spot_pay_failed_with_system_error_is_outcome_unknown(stub, make_client):
    stub.answer(Canned(xml_success({"result_code": "FAILED", "error": "SYSTEM_ERROR"})))
    with pytest.raises(OutcomeUnknownError) as caught:
        make_client().spot_pay(**SPOT_PAY)
    assert caught.value.code == "SYSTEM_ERROR"
    assert len(stub.requests) == 1


def test_query_failed_with_system_error_is_a_system_error(stub, make_client):
    stub.answer(Canned(xml_success({"result_code": "FAIL", "error": "SYSTEM_ERROR"})))
    with pytest.raises(AlipaySystemError):
        make_client(retries=0).overseas_query(partner_trans_id="P1")


# --- response signature missing or wrong ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        xml_success({"result_code": "SUCCESS", "partner_trans_id": "P1"}, sign=None),
        xml_success({"result_code": "SUCCESS", "partner_trans_id": "P1"}, sign="0" * 32),
        xml_success(
            {"result_code": "SUCCESS", "partner_trans_id": "P1"}, key="another-key-000000000000000000000"
        ),
    ],
    ids=["missing", "wrong", "other-key"],
)
def test_untrusted_signature_is_outcome_unknown(stub, make_client, body):
    stub.answer(Canned(body))
    with pytest.raises(OutcomeUnknownError) as caught:
        make_client().spot_pay(**SPOT_PAY)
    assert not isinstance(caught.value, AlipayBusinessError)
    assert len(stub.requests) == 1


def test_tampered_amount_fails_verification(stub, make_client):
    fields = {"result_code": "SUCCESS", "partner_trans_id": "P1", "trans_amount": "0.01", "currency": "USD"}
    body = xml_success(fields).replace(b"<trans_amount>0.01<", b"<trans_amount>9.99<")
    stub.answer(Canned(body))
    with pytest.raises(OutcomeUnknownError):
        make_client().spot_pay(**SPOT_PAY)


def test_md5_signed_answer_to_an_rsa2_client_is_not_trusted(stub, make_client):
    merchant = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    alipay = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stub.answer(Canned(xml_success({"result_code": "SUCCESS", "partner_trans_id": "P1"})))
    client = make_client(sign_type="RSA2", key=merchant, alipay_public_key=alipay.public_key())
    with pytest.raises(OutcomeUnknownError):
        client.overseas_query(partner_trans_id="P1")


def test_rsa2_signed_answer_verifies(stub, make_client):
    merchant = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    alipay = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fields = {"result_code": "SUCCESS", "partner_trans_id": "P1", "alipay_trans_status": "TRADE_SUCCESS"}
    stub.answer(Canned(xml_success(fields, sign=rsa_sign(fields, alipay), sign_type="RSA2")))
    client = make_client(sign_type="RSA2", key=merchant, alipay_public_key=alipay.public_key())
    result = client.overseas_query(partner_trans_id="P1")
    assert result.sign_verified is True
    assert result.alipay_trans_status == "TRADE_SUCCESS"


# --- hostile XML ------------------------------------------------------------------------------------------

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]><alipay><is_success>&lol9;</is_success></alipay>"
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<alipay><is_success>T</is_success><error>&x;</error></alipay>"
)
QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "'
    + b"x" * 20000
    + b'">]><alipay><is_success>'
    + b"&a;" * 2000
    + b"</is_success></alipay>"
)


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, QUADRATIC], ids=["billion-laughs", "xxe", "quadratic"])
def test_hostile_xml_is_refused(stub, make_client, body):
    stub.answer(Canned(body))
    started = time.monotonic()
    with pytest.raises(GatewayResponseError):
        make_client(retries=0).single_trade_query(out_trade_no="T1")
    assert time.monotonic() - started < HANG_GUARD


# --- truncated, empty, HTML -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "canned",
    [
        Canned(xml_success(QUERY_OK, element="trade")[:-30]),
        Canned(b""),
        Canned(b"<html><body><h1>502 Bad Gateway</h1></body></html>", headers={"Content-Type": "text/html"}),
        Canned(xml_success(QUERY_OK, element="trade"), length=10_000),
    ],
    ids=["truncated-xml", "empty", "html-502-page", "shorter-than-announced"],
)
@pytest.mark.wire
def test_broken_bodies_are_outcome_unknown(stub, make_client, canned):
    stub.answer(canned)
    with pytest.raises(OutcomeUnknownError):
        make_client(retries=0).single_trade_query(out_trade_no="T1")


def test_refund_with_html_answer_is_outcome_unknown_and_not_resent(stub, make_client):
    stub.answer(Canned(b"<!DOCTYPE html><html>Bad Gateway</html>"))
    with pytest.raises(OutcomeUnknownError):
        make_client(retries=3).forex_refund(**REFUND)
    assert len(stub.requests) == 1


# --- charsets ---------------------------------------------------------------------------------------------


def test_gbk_declared_answer_with_chinese_text_is_read_correctly(stub, make_client):
    fields = {**QUERY_OK, "subject": "测试商品"}
    stub.answer(Canned(xml_success(fields, element="trade", encoding="gbk", declare="GBK")))
    result = make_client().single_trade_query(out_trade_no="T1")
    assert result.subject == "测试商品"
    assert result.sign_verified is True


def test_utf8_declared_answer_holding_gbk_bytes_is_refused(stub, make_client):
    fields = {**QUERY_OK, "subject": "测试商品"}
    stub.answer(Canned(xml_success(fields, element="trade", encoding="gbk", declare="utf-8")))
    with pytest.raises(GatewayResponseError):
        make_client(retries=0).single_trade_query(out_trade_no="T1")


# --- unknown and duplicated elements ----------------------------------------------------------------------


def test_unknown_elements_are_kept_and_ignored(stub, make_client):
    fields = {**QUERY_OK, "brand_new_field": "42"}
    stub.answer(Canned(xml_success(fields, element="trade", extra_envelope="<future>x</future>")))
    result = make_client().single_trade_query(out_trade_no="T1")
    assert result.brand_new_field == "42"
    assert result["brand_new_field"] == "42"


def test_duplicated_field_is_refused(stub, make_client):
    fields = {"result_code": "SUCCESS", "refund_amount": "1.00"}
    body = xml_success(fields).replace(
        b"<refund_amount>", b"<refund_amount>2.00</refund_amount><refund_amount>"
    )
    stub.answer(Canned(body))
    with pytest.raises(GatewayResponseError):
        make_client().spot_refund(
            partner_trans_id="P1", partner_refund_id="PR1", refund_amount=Decimal("1.00"), currency="USD"
        )


# --- HTTP 5xx ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_refund_on_5xx_is_outcome_unknown_and_sent_once(stub, make_client, sleeps, status):
    stub.answer(Canned(b"oops", status=status))
    with pytest.raises(OutcomeUnknownError) as caught:
        make_client(retries=3).forex_refund(**REFUND)
    assert str(status) in caught.value.message
    assert caught.value.out_trade_no == "T1"
    assert len(stub.requests) == 1
    assert sleeps == []


def test_query_is_retried_with_bounded_backoff_then_succeeds(stub, make_client, sleeps):
    stub.answer(
        Canned(b"", status=503), Canned(b"", status=502), Canned(xml_success(QUERY_OK, element="trade"))
    )
    result = make_client(retries=3, backoff_base=0.2, backoff_cap=1.0).single_trade_query(out_trade_no="T1")
    assert result.out_trade_no == "T1"
    assert len(stub.requests) == 3
    assert len(sleeps) == 2
    # Full jitter: each pause is drawn from [0, min(cap, base * 2**n)].
    assert 0 <= sleeps[0] <= 0.2
    assert 0 <= sleeps[1] <= 0.4


def test_query_retries_are_bounded(stub, make_client, sleeps):
    stub.answer(Canned(b"", status=500))
    with pytest.raises(OutcomeUnknownError):
        make_client(retries=2).single_trade_query(out_trade_no="T1")
    assert len(stub.requests) == 3
    assert len(sleeps) == 2


# --- no connection (never sent) ---------------------------------------------------------------------------


@pytest.mark.wire
def test_refused_connection_is_a_transport_error(make_client, sleeps):
    client = make_client(gateway_url=dead_url(), retries=0)
    with pytest.raises(TransportError) as caught:
        client.single_trade_query(out_trade_no="T1")
    assert caught.value.retryable is True


@pytest.mark.wire
def test_failover_from_a_dead_url_to_a_live_one(stub, make_client):
    stub.answer(Canned(xml_success(QUERY_OK, element="trade")))
    client = make_client(gateway_url=[dead_url(), stub.url])
    assert client.single_trade_query(out_trade_no="T1").trade_no == QUERY_OK["trade_no"]
    assert len(stub.requests) == 1


@pytest.mark.wire
def test_refund_fails_over_too_because_nothing_was_sent(stub, make_client):
    stub.answer(Canned(b"<alipay><is_success>T</is_success></alipay>"))
    result = make_client(gateway_url=[dead_url(), stub.url]).forex_refund(**REFUND)
    assert result.accepted is True
    assert len(stub.requests) == 1


@pytest.mark.wire
def test_refund_that_never_connected_is_retried(make_client, sleeps):
    client = make_client(gateway_url=dead_url(), retries=2)
    with pytest.raises(TransportError):
        client.forex_refund(**REFUND)
    assert len(sleeps) == 2


@pytest.mark.wire
def test_tls_failure_is_a_transport_error_and_fails_over(stub, make_client):
    stub.answer(Canned(xml_success(QUERY_OK, element="trade")))
    tls_to_plain = stub.url.replace("http://", "https://")
    client = make_client(gateway_url=tls_to_plain, retries=0)
    with pytest.raises(TransportError):
        client.single_trade_query(out_trade_no="T1")
    client = make_client(gateway_url=[tls_to_plain, stub.url], retries=0)
    assert client.single_trade_query(out_trade_no="T1").out_trade_no == "T1"


@pytest.mark.wire
def test_dns_failure_is_a_transport_error(make_client):
    client = make_client(gateway_url="http://gateway.invalid/gateway.do", retries=0)
    with pytest.raises(TransportError):
        client.single_trade_query(out_trade_no="T1")


# --- timeout or reset after sending -----------------------------------------------------------------------


@pytest.mark.wire
def test_read_timeout_after_sending_is_outcome_unknown_and_refund_not_resent(stub, make_client, sleeps):
    stub.answer(Canned(action="hang", hang_seconds=20))
    client = make_client(timeout=(2.0, 1.0), deadline=8.0, retries=3)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknownError) as caught:
        client.forex_refund(**REFUND)
    assert time.monotonic() - started < HANG_GUARD
    assert not isinstance(caught.value, TransportError)
    assert len(stub.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("action", ["reset", "close"])
@pytest.mark.wire
def test_connection_lost_after_sending_is_outcome_unknown(stub, make_client, action):
    stub.answer(Canned(action=action))
    for call in (
        lambda c: c.forex_refund(**REFUND),
        lambda c: c.spot_pay(**SPOT_PAY),
        lambda c: c.spot_reverse(partner_trans_id="P1"),
        lambda c: c.cancel(out_trade_no="C1"),
    ):
        before = len(stub.requests)
        with pytest.raises(OutcomeUnknownError):
            call(make_client(retries=3))
        assert len(stub.requests) == before + 1


@pytest.mark.wire
def test_query_after_a_reset_is_retried(stub, make_client):
    stub.answer(Canned(action="reset"), Canned(xml_success(QUERY_OK, element="trade")))
    assert make_client(retries=1).single_trade_query(out_trade_no="T1").out_trade_no == "T1"
    assert len(stub.requests) == 2


# --- trickling server -------------------------------------------------------------------------------------


@pytest.mark.parametrize("trickle", ["body", "all"])
@pytest.mark.wire
def test_trickle_is_cut_at_the_total_deadline(stub, make_client, trickle):
    stub.answer(Canned(xml_success(QUERY_OK, element="trade"), trickle=trickle, trickle_interval=1.0))
    client = make_client(timeout=(2.0, 5.0), deadline=2.0, retries=3)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknownError):
        client.single_trade_query(out_trade_no="T1")
    assert time.monotonic() - started < HANG_GUARD


# --- oversized answer -------------------------------------------------------------------------------------


@pytest.mark.wire
def test_announced_oversized_answer_is_refused_before_reading(stub, make_client):
    stub.answer(Canned(action="stream", stream_bytes=50_000_000))
    with pytest.raises(GatewayResponseError):
        make_client(max_response_bytes=100_000, retries=0).single_trade_query(out_trade_no="T1")


@pytest.mark.wire
def test_unannounced_oversized_answer_is_cut_with_bounded_memory(stub, make_client):
    stub.answer(Canned(action="stream", stream_bytes=200_000_000, length=-1))
    client = make_client(max_response_bytes=1_000_000, retries=0, deadline=20.0)
    tracemalloc.start()
    try:
        with pytest.raises(GatewayResponseError):
            client.single_trade_query(out_trade_no="T1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16_000_000


# --- clock skew -------------------------------------------------------------------------------------------


def test_clock_skew_on_an_expired_timestamp_is_a_configuration_alarm(stub, make_client, caplog):
    skewed = format_datetime(datetime.now(UTC) + timedelta(hours=2), usegmt=True)
    stub.answer(Canned(xml_failure("ILLEGAL_ARGUMENT"), headers={"Content-Type": "text/xml", "Date": skewed}))
    client = make_client()
    with caplog.at_level("WARNING", logger=LOGGER), pytest.raises(AlipayGatewayError) as caught:
        client.cancel(out_trade_no="C1")
    assert "clock" in caught.value.message
    assert any("clock skew" in r.getMessage() for r in caplog.records)
    assert client.last_clock_skew is not None
    assert client.last_clock_skew > timedelta(minutes=110)


def test_matching_clocks_raise_no_alarm(stub, make_client, caplog):
    now = format_datetime(datetime.now(UTC), usegmt=True)
    stub.answer(Canned(xml_failure("ILLEGAL_ARGUMENT"), headers={"Content-Type": "text/xml", "Date": now}))
    with caplog.at_level("WARNING", logger=LOGGER), pytest.raises(AlipayGatewayError) as caught:
        make_client().cancel(out_trade_no="C1")
    assert "clock" not in caught.value.message
    assert not any("clock skew" in r.getMessage() for r in caplog.records)


# --- notify_verify ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"true", True),
        (b"true\n", True),
        (b"  true \r\n", True),
        (b"TRUE", False),
        (b"false", False),
        (b"invalid", False),
        (b"", False),
        (b"<html><body>true</body></html>", False),
        (b"truex", False),
    ],
)
def test_notify_verify_only_exact_true_is_true(stub, make_client, body, expected):
    stub.answer(Canned(body, headers={"Content-Type": "text/plain"}))
    assert make_client().notify_verify("5b89a773c60af059d96b1693dd3b3d6nc1") is expected
    sent = stub.requests[0].params
    assert sent["service"] == "notify_verify"
    assert sent["notify_id"] == "5b89a773c60af059d96b1693dd3b3d6nc1"


@pytest.mark.parametrize("canned", [Canned(b"", status=503), Canned(action="hang", hang_seconds=20)])
@pytest.mark.wire
def test_notify_verify_transient_failures_raise_outcome_unknown(stub, make_client, canned):
    stub.answer(canned)
    with pytest.raises(OutcomeUnknownError):
        make_client(timeout=(2.0, 1.0), deadline=3.0, retries=0).notify_verify("abc")


@pytest.mark.wire
def test_notify_verify_without_a_connection_raises_transport_error(make_client):
    with pytest.raises(TransportError):
        make_client(gateway_url=dead_url(), retries=0).notify_verify("abc")


def test_notify_verify_refused_by_the_gateway_raises(stub, make_client):
    stub.answer(Canned(xml_failure("ILLEGAL_PARTNER")))
    with pytest.raises(AlipayGatewayError):
        make_client().notify_verify("abc")


@pytest.mark.wire
def test_notify_verify_per_call_deadline(stub, make_client):
    stub.answer(Canned(b"true", trickle="body", trickle_interval=1.0))
    started = time.monotonic()
    with pytest.raises(OutcomeUnknownError):
        make_client(deadline=30.0, retries=0).notify_verify("abc", deadline=1.5)
    assert time.monotonic() - started < HANG_GUARD
