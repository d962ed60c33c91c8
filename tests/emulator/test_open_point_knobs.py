"""The emulator plays each behaviour of the gateway's open points, one named knob per point, over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from django_alipay.protocol.envelope import parse_response
from tests.conftest import CONTROL_HEADERS

from .conftest import EmulatorProcess, Merchant, Receiver, new_id
from .signer import verify

WAP = {
    "subject": "Tea",
    "currency": "USD",
    "total_fee": "1.00",
    "product_code": "NEW_WAP_OVERSEAS_SELLER",
    "timeout_rule": "3d",
}


def configure(emu: EmulatorProcess, **knobs: str) -> None:
    answer = emu.control("config", knobs)
    for name, value in knobs.items():
        assert answer[name] == value


def page_error(response: requests.Response) -> str | None:
    if response.status_code == 302:
        return None
    assert response.status_code == 200
    marker = 'id="error-code">'
    start = response.text.index(marker) + len(marker)
    return response.text[start : response.text.index("<", start)]


def test_an_unknown_knob_value_is_refused(emu: EmulatorProcess) -> None:
    response = requests.post(
        f"{emu.base}/control/config", json={"sandbox": "maybe"}, headers=CONTROL_HEADERS, timeout=10
    )
    assert response.status_code == 400
    assert "sandbox must be one of off, on" in response.text


# --- item: files answer the recorded texts


def test_a_file_request_without_dates_answers_the_recorded_text(
    emu: EmulatorProcess, merchant: Merchant
) -> None:
    assert merchant.request("forex_compare_file", {}).text == "File download failed:Illegal Date period!"
    configure(emu, file_date_error="date_format_incorrect")
    assert merchant.request("forex_compare_file", {}).text == "Date format incorrect YYYYMMDD"


# --- duplicate create_forex_trade


def test_a_duplicate_out_trade_no_is_refused_by_default(merchant: Merchant) -> None:
    out_trade_no, _ = merchant.online_trade("5.00")
    params = {
        "out_trade_no": out_trade_no,
        "subject": "Test order",
        "currency": "USD",
        "total_fee": "5.00",
        "product_code": "NEW_OVERSEAS_SELLER",
    }
    again = merchant.request("create_forex_trade", params)
    assert page_error(again) == "ILLEGAL_ARGUMENT"
    assert "duplicated" in again.text


# --- order_create


@pytest.mark.parametrize(
    ("knob", "order_create", "error"),
    [
        ("seconds", "1704081600", None),
        ("seconds", "1704081600000", "ILLEGAL_ARGUMENT"),
        ("seconds", "2024-01-01", "ILLEGAL_ARGUMENT"),
        ("seconds_or_millis", "1704081600000", None),
        ("seconds_or_millis", "1704081600", None),
    ],
)
def test_order_create_is_checked_as_the_knob_says(
    emu: EmulatorProcess, merchant: Merchant, knob: str, order_create: str, error: str | None
) -> None:
    configure(emu, order_create_format=knob)
    params = {**WAP, "out_trade_no": new_id(), "order_create": order_create}
    assert page_error(merchant.request("create_forex_trade_wap", params)) == error


# --- the sandbox


def test_the_sandbox_refuses_rsa2_and_serves_md5(emu: EmulatorProcess, rsa_key: Any) -> None:
    configure(emu, sandbox="on")
    merchant = emu.merchant(private_key=rsa_key)
    query = {"out_trade_no": new_id()}

    assert merchant.error("single_trade_query", query, sign_type="RSA2") == "ILLEGAL_SIGN_TYPE"
    assert merchant.error("single_trade_query", query, sign_type="MD5") == "TRADE_NOT_EXIST"


# --- the response charset


@pytest.mark.parametrize(
    ("knob", "declared", "signed_in"),
    [
        ("request", "utf-8", "utf-8"),
        ("gbk_signed_as_declared", "gbk", "gbk"),
        ("gbk_signed_as_request", "gbk", "utf-8"),
    ],
)
def test_the_response_charset_knob(
    emu: EmulatorProcess, merchant: Merchant, knob: str, declared: str, signed_in: str
) -> None:
    configure(emu, response_charset=knob)
    out_trade_no, _ = merchant.online_trade("5.00", subject="龙井茶")

    response = merchant.request("single_trade_query", {"out_trade_no": out_trade_no})
    parsed = parse_response(response.content, key=merchant.md5_key, request_charset="utf-8")

    assert (parsed.charset, parsed.sign_charset) == (declared, signed_in)
    assert parsed.fields["subject"] == "龙井茶"


# --- notify_verify's method


def test_notify_verify_get_only(emu: EmulatorProcess, merchant: Merchant) -> None:
    configure(emu, notify_verify_method="get_only")
    params = {"service": "notify_verify", "partner": merchant.partner, "notify_id": "unknown-id"}
    get = requests.get(emu.gateway, params=params, timeout=10)
    post = requests.post(emu.gateway, data=params, timeout=10)
    assert (get.text, post.text) == ("false", "invalid")


# --- notifications: notify_id, signature layout, charset


def delivered(emu: EmulatorProcess, receiver: Receiver, merchant: Merchant, **extra: str) -> Any:
    receiver.answer("/knob", "success")
    merchant.paid_online_trade(notify_url=receiver.url("/knob"), **extra)
    (record,) = receiver.wait("/knob", 1)
    return record


def test_long_notify_ids(emu: EmulatorProcess, merchant: Merchant, receiver: Receiver) -> None:
    configure(emu, notify_id_format="long")
    record = delivered(emu, receiver, merchant)
    notify_id = record.params["notify_id"]
    assert len(notify_id) == 128
    assert all(0x21 <= ord(char) <= 0x7E for char in notify_id)
    assert verify(record.params, "MD5", merchant.md5_key, "utf-8")


def test_wrapped_rsa_signatures(emu: EmulatorProcess, rsa_key: Any, receiver: Receiver) -> None:
    configure(emu, signature_layout="wrapped")
    merchant = emu.merchant(private_key=rsa_key, sign_types=["RSA2"])
    receiver.answer("/wrapped", "success")
    out_trade_no, _ = merchant_trade(merchant, notify_url=receiver.url("/wrapped"))
    emu.control("pay", {"partner": merchant.partner, "out_trade_no": out_trade_no})
    (record,) = receiver.wait("/wrapped", 1)

    lines = record.params["sign"].split("\n")
    assert len(lines) > 1
    assert all(len(line) <= 60 for line in lines)


def merchant_trade(merchant: Merchant, **extra: str) -> tuple[str, str]:
    out_trade_no = new_id()
    params = {
        "out_trade_no": out_trade_no,
        "subject": "Tea",
        "currency": "USD",
        "total_fee": "2.00",
        "product_code": "NEW_OVERSEAS_SELLER",
        **extra,
    }
    response = merchant.request("create_forex_trade", params, sign_type="RSA2")
    assert response.status_code == 302, response.text
    return out_trade_no, response.headers["Location"]


@pytest.mark.parametrize(
    ("knob", "content_type", "in_form"),
    [
        ("content_type", "application/x-www-form-urlencoded; charset=utf-8", False),
        ("form_field", "application/x-www-form-urlencoded", True),
        ("none", "application/x-www-form-urlencoded", False),
    ],
)
def test_where_a_notification_names_its_charset(
    emu: EmulatorProcess, merchant: Merchant, receiver: Receiver, knob: str, content_type: str, in_form: bool
) -> None:
    configure(emu, notify_charset=knob)
    record = delivered(emu, receiver, merchant)
    headers = {name.lower(): value for name, value in record.headers.items()}
    assert headers["content-type"] == content_type
    assert ("_input_charset" in record.params) is in_form
    assert verify(record.params, "MD5", merchant.md5_key, "utf-8")
