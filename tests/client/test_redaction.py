"""Secrets and signatures never reach logs, reprs or error messages."""

from __future__ import annotations

import logging
import pickle
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from django_alipay.protocol.errors import AlipayError
from tests.client.stub import MD5_KEY, Canned, md5_sign, xml_failure, xml_success

LOGGER = "django_alipay.protocol.client"


def test_debug_log_holds_no_key_and_no_sign(stub, make_client, caplog):
    fields = {"result_code": "SUCCESS", "partner_trans_id": "P1", "trans_amount": "1.00", "currency": "USD"}
    response_sign = md5_sign(fields)
    echo = (
        '<request><param name="partner_trans_id">P1</param>'
        f'<param name="sign">{"e" * 32}</param><param name="sign_type">MD5</param></request>'
    )
    stub.answer(Canned(xml_success(fields, extra_envelope=echo)))
    client = make_client()
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        client.spot_refund(
            partner_trans_id="P1", partner_refund_id="PR1", refund_amount=Decimal("1.00"), currency="USD"
        )
    request_sign = stub.requests[0].params["sign"]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "spot.refund" in text  # the call was logged at all
    assert "[redacted]" in text
    assert MD5_KEY not in text
    assert request_sign not in text
    assert response_sign not in text
    assert "e" * 32 not in text


def test_debug_log_in_get_mode_redacts_the_url(stub, make_client, caplog):
    stub.answer(Canned(xml_success({"out_trade_no": "T1"}, element="trade")))
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        make_client(http_method="GET").single_trade_query(out_trade_no="T1")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert stub.requests[0].query["sign"] not in text
    assert MD5_KEY not in text


def test_rsa_private_key_never_logged_or_shown(stub, make_client, caplog):
    merchant = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = merchant.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    body_line = pem.splitlines()[1]
    stub.answer(Canned(xml_failure("ILLEGAL_SIGN")))
    client = make_client(sign_type="RSA2", key=pem)
    with caplog.at_level(logging.DEBUG, logger=LOGGER), pytest.raises(AlipayError) as caught:
        client.overseas_query(partner_trans_id="P1")
    text = "\n".join(r.getMessage() for r in caplog.records)
    for shown in (text, repr(client), str(caught.value), repr(vars(client))):
        assert body_line not in shown
    assert repr(client) == "GatewayClient(partner='2088101122136241', sign_type='RSA2')"


def test_repr_and_vars_show_no_md5_key(make_client):
    client = make_client()
    assert repr(client) == "GatewayClient(partner='2088101122136241', sign_type='MD5')"
    assert MD5_KEY not in repr(vars(client))
    with pytest.raises(TypeError):
        pickle.dumps(client)


def test_errors_carry_no_key(stub, make_client):
    stub.answer(Canned(b"", status=502))
    with pytest.raises(AlipayError) as caught:
        make_client(retries=0).forex_refund(
            out_return_no="R1", out_trade_no="T1", return_amount=Decimal("1.00"), currency="USD"
        )
    assert MD5_KEY not in str(caught.value)
    assert MD5_KEY not in repr(caught.value.context())
