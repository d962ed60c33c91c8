"""The client where the references leave the gateway open: response charset, notify_verify, the sandbox."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from django_alipay.protocol.client import INTL_URL, NOTIFY_VERIFY_URL, SANDBOX_URL, GatewayClient
from django_alipay.protocol.errors import InvalidParameterError
from tests.client.stub import MD5_KEY, PARTNER, Canned, md5_sign, xml_success

TRADE = {
    "out_trade_no": "CN-0001",
    "subject": "龙井茶 250g",
    "total_fee": "12.00",
    "trade_no": "2024010122001300000000000001",
    "trade_status": "TRADE_FINISHED",
}
PRIVATE_PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    .decode()
)


def test_a_gbk_answer_signed_in_the_utf8_request_charset_is_trusted(stub, make_client):
    body = xml_success(TRADE, element="trade", sign=md5_sign(TRADE, MD5_KEY, "utf-8"), encoding="gbk")
    stub.answer(Canned(body, headers={"Content-Type": "text/xml; charset=GBK"}))

    result = make_client(charset="utf-8").single_trade_query(out_trade_no="CN-0001")

    assert (result.sign_verified, result.sign_charset) == (True, "utf-8")
    assert result.fields["subject"] == "龙井茶 250g"


def test_notify_verify_is_a_get_by_default(stub, make_client):
    stub.answer(Canned(b"true", headers={"Content-Type": "text/plain"}))

    assert make_client().notify_verify("5b89a773c60af059d96b1693dd3b3d6nc1") is True

    sent = stub.requests[0]
    assert sent.method == "GET"
    assert sent.params["service"] == "notify_verify"
    assert "sign" not in sent.params


@pytest.mark.wire
def test_notify_verify_goes_where_and_how_the_merchant_says(stub, make_client):
    stub.answer(Canned(b"true", headers={"Content-Type": "text/plain"}))
    client = make_client(gateway_url="http://127.0.0.1:9/gateway.do", notify_verify_url=stub.url)
    client.notify_verify_method = "POST"

    assert client.notify_verify("abc") is True
    assert stub.requests[0].method == "POST"


def test_in_production_notify_verify_defaults_to_get_on_mapi(make_client):
    client = make_client(gateway_url=INTL_URL)
    assert (client.notify_verify_url, client.notify_verify_method) == (NOTIFY_VERIFY_URL, "GET")


def test_notify_verify_method_must_be_get_or_post(make_client):
    with pytest.raises(InvalidParameterError):
        make_client(notify_verify_method="PUT")


@pytest.mark.parametrize("sign_type", ["RSA", "RSA2"])
def test_a_non_md5_call_to_the_sandbox_is_refused_before_sending(sign_type):
    client = GatewayClient(partner=PARTNER, sign_type=sign_type, key=PRIVATE_PEM, gateway_url=SANDBOX_URL)
    with pytest.raises(InvalidParameterError) as caught:
        client.create_forex_trade(out_trade_no="S-1", subject="Tea", currency="USD", total_fee="1.00")
    assert caught.value.parameter == "sign_type"
    assert "MD5" in caught.value.message
    with pytest.raises(InvalidParameterError):
        client.single_trade_query(out_trade_no="S-1")
    with pytest.raises(InvalidParameterError):
        client.notify_verify("abc")


def test_an_md5_call_to_the_sandbox_is_signed_as_usual():
    client = GatewayClient(partner=PARTNER, sign_type="MD5", key=MD5_KEY, gateway_url=SANDBOX_URL)
    page = client.create_forex_trade(out_trade_no="S-1", subject="Tea", currency="USD", total_fee="1.00")
    assert page.url.startswith(SANDBOX_URL + "?")
