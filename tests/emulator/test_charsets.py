"""Charsets: Chinese text in GBK, GB2312 and UTF-8, signed over the bytes of the request's _input_charset."""

from __future__ import annotations

import hashlib
from urllib.parse import urlencode

import pytest
import requests

from .conftest import EmulatorProcess, Merchant, new_id
from .signer import parse_envelope, sign

SUBJECT = "测试商品"
QUERY = "single_trade_query"


def _create(merchant: Merchant, charset: str, *, method: str = "GET", include_charset: bool = True) -> str:
    out_trade_no = new_id()
    params = {
        "out_trade_no": out_trade_no,
        "subject": SUBJECT,
        "currency": "USD",
        "total_fee": "1.00",
        "product_code": "NEW_OVERSEAS_SELLER",
    }
    response = merchant.request(
        "create_forex_trade", params, charset=charset, method=method, include_charset=include_charset
    )
    assert response.status_code == 302, response.text
    return out_trade_no


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "gbk", "GBK", "gb2312"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_chinese_subject_round_trips_in_each_charset(merchant: Merchant, charset: str, method: str) -> None:
    out_trade_no = _create(merchant, charset, method=method)
    envelope = merchant.xml(QUERY, {"out_trade_no": out_trade_no}, charset=charset)
    assert envelope.fields["subject"] == SUBJECT
    # The answer is written, declared and signed in the request's charset (checked by Merchant.xml).
    assert envelope.charset == charset.lower()
    assert SUBJECT.encode(charset) in envelope.raw


def test_gbk_is_assumed_when_no_charset_is_sent(merchant: Merchant) -> None:
    out_trade_no = _create(merchant, "gbk", include_charset=False)
    envelope = merchant.xml(QUERY, {"out_trade_no": out_trade_no}, charset="gbk", include_charset=False)
    assert envelope.charset == "gbk"
    assert envelope.fields["subject"] == SUBJECT


def test_signing_other_bytes_than_the_declared_charset_fails(merchant: Merchant) -> None:
    params = {
        "out_trade_no": new_id(),
        "subject": SUBJECT,
        "currency": "USD",
        "total_fee": "1.00",
        "product_code": "NEW_OVERSEAS_SELLER",
    }
    # Declared and sent as GBK, but signed over the UTF-8 bytes.
    built = merchant.build("create_forex_trade", params, charset="gbk", signing_charset="utf-8")
    response = merchant.send(built, charset="gbk")
    assert response.status_code == 200
    assert 'id="error-code">ILLEGAL_SIGN<' in response.text


def test_the_md5_vectors_for_gbk_and_utf8_differ_and_both_verify(emu: EmulatorProcess) -> None:
    # Golden vectors: the same Chinese parameters, signed as UTF-8 and as GBK.
    emu.control("partners", {"partner": "2088101122136241", "md5_key": "760bdzec6y9goq7ctyx96ezkz78287de"})
    # Both vectors name T1: the second is the same order, which this knob value lets through to the cashier.
    emu.control("config", {"duplicate_trade": "resume_identical"})
    base = {
        "service": "create_forex_trade",
        "partner": "2088101122136241",
        "out_trade_no": "T1",
        "subject": "测试",
        "currency": "USD",
        "total_fee": "1.00",
        "product_code": "NEW_OVERSEAS_SELLER",
        "sign_type": "MD5",
    }
    vectors = {"utf-8": "9f8c719ad8ea6c4261c30dd0253e3e59", "gbk": "6ca8cf4fb6e5f94a34ac3f440500654d"}
    for charset, signature in vectors.items():
        params = {**base, "_input_charset": charset, "sign": signature, "out_trade_no": "T1"}
        response = requests.get(
            f"{emu.gateway}?{urlencode(params, encoding=charset)}", allow_redirects=False, timeout=30
        )
        # T1 is created by the first call and found again by the second, same amount: both go to the cashier.
        assert response.status_code == 302, response.text


def test_bytes_invalid_in_the_declared_charset_cannot_verify(merchant: Merchant) -> None:
    # Signed over the very bytes sent, but \xff is not UTF-8: the gateway cannot decode, so cannot verify.
    presign = f"_input_charset=utf-8&out_trade_no=x\xff&partner={merchant.partner}&service={QUERY}"
    raw = presign.encode("latin-1")
    signature = hashlib.md5(raw + merchant.md5_key.encode()).hexdigest()
    query = f"service={QUERY}&partner={merchant.partner}&_input_charset=utf-8&out_trade_no=x%FF"
    query += f"&sign_type=MD5&sign={signature}"
    envelope = parse_envelope(requests.get(f"{merchant.emu.gateway}?{query}", timeout=30).content)
    assert envelope.error == "ILLEGAL_SIGN"


def test_an_emoji_cannot_be_sent_in_gbk_but_can_in_utf8(merchant: Merchant) -> None:
    out_trade_no = new_id()
    params = {
        "out_trade_no": out_trade_no,
        "subject": "礼物 🎁",
        "currency": "USD",
        "total_fee": "1.00",
        "product_code": "NEW_OVERSEAS_SELLER",
    }
    assert merchant.request("create_forex_trade", params).status_code == 302
    assert merchant.ok(QUERY, {"out_trade_no": out_trade_no})["subject"] == "礼物 🎁"


def test_a_post_body_in_gbk_with_the_charset_only_in_the_url(merchant: Merchant) -> None:
    out_trade_no = new_id()
    params = {
        "service": "create_forex_trade",
        "partner": merchant.partner,
        "_input_charset": "gbk",
        "out_trade_no": out_trade_no,
        "subject": SUBJECT,
        "currency": "EUR",
        "total_fee": "9.99",
        "product_code": "NEW_OVERSEAS_SELLER",
    }
    params["sign"] = sign(params, "MD5", merchant.md5_key, "gbk")
    params["sign_type"] = "MD5"
    body = {k: v for k, v in params.items() if k != "_input_charset"}
    response = requests.post(
        f"{merchant.emu.gateway}?_input_charset=gbk",
        data=urlencode(body, encoding="gbk"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text
    assert merchant.ok(QUERY, {"out_trade_no": out_trade_no}, charset="gbk")["subject"] == SUBJECT
