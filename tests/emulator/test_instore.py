"""In-store services: spot.pay, precreate and its QR code, overseas.query, spot.refund, reverse and cancel."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import requests

from .conftest import (
    BARCODE,
    FROZEN_BARCODE,
    HK_BARCODE,
    PHONE_BARCODE,
    POOR_BARCODE,
    SLOW_BARCODE,
    EmulatorProcess,
    Merchant,
    Receiver,
    new_id,
)
from .signer import verify
from .test_online import Browser

PAY = "alipay.acquire.overseas.spot.pay"
QUERY = "alipay.acquire.overseas.query"
REFUND = "alipay.acquire.overseas.spot.refund"
REVERSE = "alipay.acquire.overseas.spot.reverse"
CANCEL = "alipay.acquire.cancel"
PRECREATE = "alipay.acquire.precreate"


def _balance(emu: EmulatorProcess, login_id: str) -> Decimal:
    buyers = emu.control("buyers")["buyers"]
    return Decimal(next(b["balance"] for b in buyers if b["login_id"] == login_id))


def test_spot_pay_success_fields(emu: EmulatorProcess, merchant: Merchant) -> None:
    emu.control("clock", {"now": "2024-05-01T18:30:00+00:00"})  # 2024-05-02 02:30:00 Beijing
    before = _balance(emu, "buyer@alitest.com")
    fields = merchant.spot_pay(BARCODE, "10.00", "USD", partner_trans_id="P-1-" + new_id())
    assert fields["result_code"] == "SUCCESS"
    assert fields["alipay_buyer_login_id"] == "buy***@alitest.com"
    assert re.fullmatch(r"2088[0-9]{12}", fields["alipay_buyer_user_id"])
    assert re.fullmatch(r"202405022200[0-9]{16}", fields["alipay_trans_id"])
    assert fields["alipay_pay_time"] == "20240502023000"
    assert (fields["currency"], fields["trans_amount"]) == ("USD", "10.00")
    # 10.00 USD at the emulator's fixed 6.64640000 CNY per USD.
    assert (fields["exchange_rate"], fields["trans_amount_cny"]) == ("6.64640000", "66.46")
    assert "payment_inst" not in fields
    assert _balance(emu, "buyer@alitest.com") == before - Decimal("66.46")


def test_hk_wallet_and_phone_login_masking(merchant: Merchant) -> None:
    hk = merchant.spot_pay(HK_BARCODE, "100.00", "HKD")
    assert (hk["result_code"], hk["payment_inst"]) == ("SUCCESS", "ALIPAYHK")
    phone = merchant.spot_pay(PHONE_BARCODE, "1000", "JPY")
    assert (phone["alipay_buyer_login_id"], phone["trans_amount"]) == ("138****8000", "1000")


def test_spot_pay_is_idempotent_per_partner_trans_id(merchant: Merchant) -> None:
    partner_trans_id = new_id("P")
    first = merchant.spot_pay(BARCODE, "5.00", partner_trans_id=partner_trans_id)
    again = merchant.spot_pay(BARCODE, "5.00", partner_trans_id=partner_trans_id)
    assert again == first
    other = merchant.spot_pay(PHONE_BARCODE, "5.00", partner_trans_id=partner_trans_id)
    assert (other["result_code"], other["error"]) == ("FAILED", "TRADE_BUYER_NOT_MATCH")
    query = merchant.ok(QUERY, {"partner_trans_id": partner_trans_id})
    assert query["alipay_trans_status"] == "TRADE_SUCCESS"


@pytest.mark.parametrize(
    ("barcode", "amount", "error"),
    [
        (POOR_BARCODE, "10.00", "BUYER_ENABLE_STATUS_FORBID"),  # 66.46 CNY > 10.00 CNY balance
        (FROZEN_BARCODE, "1.00", "BUYER_ENABLE_STATUS_FORBID"),
        ("281111111111111111", "1.00", "BUYER_NOT_EXIST"),
        ("123456789012345678", "1.00", "INVALID_PARAMETER"),
        ("28123", "1.00", "INVALID_PARAMETER"),
        ("28" + "1" * 23, "1.00", "INVALID_PARAMETER"),  # 25 digits
        ("31" + "1" * 16, "1.00", "INVALID_PARAMETER"),
    ],
)
def test_spot_pay_failures(merchant: Merchant, barcode: str, amount: str, error: str) -> None:
    fields = merchant.spot_pay(barcode, amount)
    assert (fields["result_code"], fields["error"]) == ("FAILED", error)


def test_a_refused_spot_payment_is_closed_and_repeats_its_answer(merchant: Merchant) -> None:
    partner_trans_id = new_id("P")
    first = merchant.spot_pay(POOR_BARCODE, "10.00", partner_trans_id=partner_trans_id)
    assert first == merchant.spot_pay(POOR_BARCODE, "10.00", partner_trans_id=partner_trans_id)
    assert merchant.ok(QUERY, {"partner_trans_id": partner_trans_id})["alipay_trans_status"] == "TRADE_CLOSED"


def test_seller_id_must_be_the_partner(merchant: Merchant) -> None:
    fields = merchant.spot_pay(BARCODE, "1.00", alipay_seller_id="2088000000000009")
    assert (fields["result_code"], fields["error"]) == ("FAILED", "SELLER_NOT_EXIST")


@pytest.mark.parametrize(
    "change",
    [
        {"biz_product": ""},
        {"biz_product": "NEW_OVERSEAS_SELLER"},
        {"identity_code_type": "sound"},
        {"trans_create_time": "2024-05-01 12:00:00"},
        {"trans_amount": "1.005"},
        {"currency": "JPY", "trans_amount": "1.5"},
        {"trans_name": ""},
    ],
)
def test_spot_pay_malformed_requests_are_refused_at_the_gateway(merchant: Merchant, change: dict) -> None:
    params = {
        "alipay_seller_id": merchant.partner,
        "trans_name": "Coffee",
        "partner_trans_id": new_id("P"),
        "currency": "USD",
        "trans_amount": "1.00",
        "buyer_identity_code": BARCODE,
        "identity_code_type": "barcode",
        "trans_create_time": "20240501120000",
        "biz_product": "OVERSEAS_MBARCODE_PAY",
    }
    params = {k: v for k, v in {**params, **change}.items() if v != ""}
    assert merchant.error(PAY, params) == "ILLEGAL_ARGUMENT"


def test_a_payment_waiting_for_the_buyer_is_completed_by_control_pay(merchant: Merchant) -> None:
    partner_trans_id = new_id("P")
    fields = merchant.spot_pay(SLOW_BARCODE, "3.00", partner_trans_id=partner_trans_id)
    assert fields["result_code"] == "UNKNOW"
    query = merchant.ok(QUERY, {"partner_trans_id": partner_trans_id})
    assert query["alipay_trans_status"] == "WAIT_BUYER_PAY"
    assert "alipay_pay_time" not in query
    merchant.emu.control("pay", {"partner": merchant.partner, "partner_trans_id": partner_trans_id})
    assert (
        merchant.ok(QUERY, {"partner_trans_id": partner_trans_id})["alipay_trans_status"] == "TRADE_SUCCESS"
    )
    assert (
        merchant.spot_pay(SLOW_BARCODE, "3.00", partner_trans_id=partner_trans_id)["result_code"] == "SUCCESS"
    )


def test_overseas_query(merchant: Merchant) -> None:
    first = merchant.spot_pay(BARCODE, "2.00")
    second = merchant.spot_pay(BARCODE, "3.00")
    by_id = merchant.ok(QUERY, {"alipay_trans_id": first["alipay_trans_id"]})
    assert by_id["partner_trans_id"] == first["partner_trans_id"]
    assert by_id["out_trade_no"] == first["partner_trans_id"]
    # alipay_trans_id is checked first when both are given.
    both = merchant.ok(
        QUERY, {"alipay_trans_id": first["alipay_trans_id"], "partner_trans_id": second["partner_trans_id"]}
    )
    assert both["trans_amount"] == "2.00"
    missing = merchant.ok(QUERY, {"partner_trans_id": "nope"})
    assert (missing["result_code"], missing["error"]) == ("FAIL", "TRANS_NOT_FOUND")
    assert merchant.error(QUERY, {}) == "ILLEGAL_ARGUMENT"


def _refund(merchant: Merchant, partner_trans_id: str, amount: str, **extra: str) -> dict[str, str]:
    params = {
        "partner_trans_id": partner_trans_id,
        "partner_refund_id": extra.pop("partner_refund_id", None) or new_id("F"),
        "refund_amount": amount,
        "currency": extra.pop("currency", "USD"),
        **extra,
    }
    return merchant.ok(REFUND, params)


def test_spot_refunds_partial_several_and_never_beyond_the_payment(
    emu: EmulatorProcess, merchant: Merchant
) -> None:
    paid = merchant.spot_pay(BARCODE, "10.00")
    ptid = paid["partner_trans_id"]
    before = _balance(emu, "buyer@alitest.com")
    first = _refund(merchant, ptid, "4.00", is_sync="Y")
    assert first["result_code"] == "SUCCESS"
    assert (first["refund_amount"], first["refund_amount_cny"], first["exchange_rate"]) == (
        "4.00",
        "26.59",
        "6.64640000",
    )
    assert _refund(merchant, ptid, "6.01")["error"] == "RETURN_AMOUNT_EXCEED"
    assert _refund(merchant, ptid, "10.01")["error"] == "REQUEST_AMOUNT_EXCEED"
    assert merchant.ok(QUERY, {"partner_trans_id": ptid})["alipay_trans_status"] == "TRADE_SUCCESS"
    assert _refund(merchant, ptid, "6.00")["result_code"] == "SUCCESS"
    # Fully refunded: closed, and the whole CNY amount is back with the buyer.
    assert merchant.ok(QUERY, {"partner_trans_id": ptid})["alipay_trans_status"] == "TRADE_CLOSED"
    assert _balance(emu, "buyer@alitest.com") == before + Decimal("66.46")
    assert _refund(merchant, ptid, "0.01")["error"] == "TRADE_HAS_CLOSE"


def test_duplicate_partner_refund_id_answers_the_original_result(merchant: Merchant) -> None:
    ptid = merchant.spot_pay(BARCODE, "10.00")["partner_trans_id"]
    refund_id = new_id("F")
    first = _refund(merchant, ptid, "4.00", partner_refund_id=refund_id)
    assert _refund(merchant, ptid, "4.00", partner_refund_id=refund_id) == first
    assert _refund(merchant, ptid, "9.00", partner_refund_id=refund_id) == first
    assert _refund(merchant, ptid, "6.00")["result_code"] == "SUCCESS"


def test_spot_refund_errors(merchant: Merchant) -> None:
    waiting = merchant.spot_pay(SLOW_BARCODE, "1.00")["partner_trans_id"]
    assert _refund(merchant, waiting, "1.00")["error"] == "TRADE_STATUS_ERROR"
    assert _refund(merchant, "no-such-payment", "1.00")["error"] == "TRADE_NOT_EXIST"
    paid = merchant.spot_pay(BARCODE, "10.00")
    ptid = paid["partner_trans_id"]
    assert (
        _refund(merchant, ptid, "1.00", alipay_trans_id="2024050122000000000000000000")["error"]
        == "TRADE_NOT_EXIST"
    )
    assert _refund(merchant, ptid, "1.00", currency="EUR")["error"] == "CURRENCY_NOT_SAME"
    yen = merchant.spot_pay(BARCODE, "1000", "JPY")["partner_trans_id"]
    assert _refund(merchant, yen, "1.50", currency="JPY")["error"] == "REFUND_AMT_RESTRICTION"
    assert _refund(merchant, yen, "500", currency="JPY")["result_code"] == "SUCCESS"
    params = {"partner_trans_id": ptid, "partner_refund_id": ptid, "refund_amount": "1.00", "currency": "USD"}
    assert merchant.error(REFUND, params) == "ILLEGAL_ARGUMENT"


def test_async_spot_refund_notifies_its_notify_url(merchant: Merchant, receiver: Receiver) -> None:
    receiver.answer("/spot-refund", "success")
    ptid = merchant.spot_pay(BARCODE, "10.00")["partner_trans_id"]
    _refund(merchant, ptid, "2.50", notify_url=receiver.url("/spot-refund"))
    (record,) = receiver.wait("/spot-refund", 1)
    assert record.params["refund_status"] == "REFUND_SUCCESS"
    assert record.params["refund_amount"] == "2.50"
    assert verify(record.params, "MD5", merchant.md5_key)


def test_precreate_qr_code_scanned_and_paid_at_the_cashier(emu: EmulatorProcess, receiver: Receiver) -> None:
    merchant = emu.merchant()
    receiver.answer("/qr", "success")
    out_trade_no = new_id("Q")
    params = {
        "out_trade_no": out_trade_no,
        "subject": "奶茶",
        "product_code": "OVERSEAS_MBARCODE_PAY",
        "total_fee": "8.80",
        "currency": "SGD",
        "notify_url": receiver.url("/qr"),
    }
    fields = merchant.ok(PRECREATE, params, charset="gbk")
    assert (fields["result_code"], fields["voucher_type"], fields["out_trade_no"]) == (
        "SUCCESS",
        "qrcode",
        out_trade_no,
    )
    assert fields["qr_code"].startswith(emu.base + "/cashier/")
    for name, size in (("small_pic_url", "S"), ("pic_url", "M"), ("big_pic_url", "L")):
        assert fields[name].endswith(f".png?picSize={size}")
        image = requests.get(fields[name], timeout=30)
        assert image.headers["Content-Type"] == "image/png"
        assert image.content.startswith(b"\x89PNG\r\n\x1a\n")
    svg = requests.get(fields["pic_url"].replace(".png", ".svg"), timeout=30)
    assert svg.headers["Content-Type"] == "image/svg+xml"
    assert b"<svg" in svg.content
    # The same request again gives the same QR code.
    assert merchant.ok(PRECREATE, params, charset="gbk")["qr_code"] == fields["qr_code"]
    assert merchant.ok(QUERY, {"partner_trans_id": out_trade_no})["alipay_trans_status"] == "WAIT_BUYER_PAY"

    browser = Browser(emu, urlsplit(fields["qr_code"]).path)
    assert "8.80 SGD" in browser.page.text
    browser.login()
    done = browser.pay()
    assert done.status_code == 200
    assert "Payment successful" in done.text
    assert merchant.ok(QUERY, {"partner_trans_id": out_trade_no})["alipay_trans_status"] == "TRADE_SUCCESS"
    (record,) = receiver.wait("/qr", 1)
    # Form-encoded in the request's charset (GBK), and the subject travels with in-store notifications.
    assert record.headers["Content-Type"].endswith("charset=GBK")
    assert "%C4%CC%B2%E8" in record.body.decode("ascii")  # 奶茶 in GBK
    assert record.params["subject"] == "奶茶"
    assert record.params["trade_status"] == "TRADE_SUCCESS"
    assert record.params["notify_action_type"] == "payByAccountAction"
    assert verify(record.params, "MD5", merchant.md5_key, "gbk")
    again = merchant.ok(PRECREATE, params, charset="gbk")
    assert (again["result_code"], again["detail_error_code"]) == ("FAIL", "TRADE_HAS_SUCCESS")


def test_precreate_errors(merchant: Merchant) -> None:
    base = {
        "out_trade_no": new_id("Q"),
        "subject": "x",
        "product_code": "OVERSEAS_MBARCODE_PAY",
        "total_fee": "1.00",
    }
    assert merchant.error(PRECREATE, base) == "ILLEGAL_ARGUMENT"  # no currency
    assert (
        merchant.error(PRECREATE, {**base, "currency": "SGD", "trans_currency": "USD"}) == "ILLEGAL_ARGUMENT"
    )
    assert merchant.error(PRECREATE, {**base, "currency": "XYZ"}) == "ILLEGAL_CURRENCY"
    assert (
        merchant.error(PRECREATE, {**base, "currency": "USD", "timestamp": "1456507704121"})
        == "ILLEGAL_ARGUMENT"
    )
    assert merchant.ok(PRECREATE, {**base, "currency": "USD"})["result_code"] == "SUCCESS"
    other = merchant.ok(PRECREATE, {**base, "currency": "USD", "total_fee": "2.00"})
    assert (other["result_code"], other["detail_error_code"]) == ("FAIL", "ILLEGAL_ARGUMENT")


def _cancel(merchant: Merchant, out_trade_no: str, emu: EmulatorProcess, **extra: str) -> dict[str, str]:
    timestamp = extra.pop("timestamp", None) or emu.control("clock")["beijing"]
    return merchant.ok(CANCEL, {"out_trade_no": out_trade_no, "timestamp": timestamp, **extra})


def test_reverse_and_cancel_close_unpaid_and_refund_paid_trades(
    emu: EmulatorProcess, merchant: Merchant
) -> None:
    unpaid = merchant.spot_pay(SLOW_BARCODE, "1.00")["partner_trans_id"]
    reversed_ = merchant.ok(REVERSE, {"partner_trans_id": unpaid})
    assert reversed_["result_code"] == "SUCCESS"
    assert re.fullmatch(r"[0-9]{14}", reversed_["alipay_reverse_time"])
    assert merchant.ok(QUERY, {"partner_trans_id": unpaid})["alipay_trans_status"] == "TRADE_CLOSED"

    before = _balance(emu, "buyer@alitest.com")
    paid = merchant.spot_pay(BARCODE, "10.00")["partner_trans_id"]
    cancelled = _cancel(merchant, paid, emu)
    assert (cancelled["result_code"], cancelled["action"], cancelled["retry_flag"]) == (
        "SUCCESS",
        "refund",
        "N",
    )
    assert merchant.ok(QUERY, {"partner_trans_id": paid})["alipay_trans_status"] == "TRADE_CLOSED"
    assert _balance(emu, "buyer@alitest.com") == before
    # Retrying a REVERSE/cancel that already happened answers success again.
    assert _cancel(merchant, paid, emu)["result_code"] == "SUCCESS"
    assert merchant.ok(REVERSE, {"partner_trans_id": paid})["result_code"] == "SUCCESS"

    precreated = merchant.ok(
        PRECREATE,
        {
            "out_trade_no": new_id("Q"),
            "subject": "x",
            "product_code": "OVERSEAS_MBARCODE_PAY",
            "total_fee": "1.00",
            "currency": "USD",
        },
    )["out_trade_no"]
    closed = _cancel(merchant, precreated, emu, timestamp=str(int(time.time() * 1000)))
    assert (closed["result_code"], closed["action"]) == ("SUCCESS", "close")


def test_reverse_and_cancel_errors(emu: EmulatorProcess, merchant: Merchant) -> None:
    assert merchant.ok(REVERSE, {"partner_trans_id": "nope"})["error"] == "TRADE_NOT_EXIST"
    missing = _cancel(merchant, "nope", emu)
    assert (missing["result_code"], missing["detail_error_code"]) == ("FAIL", "TRADE_NOT_EXIST")
    ptid = merchant.spot_pay(BARCODE, "10.00")["partner_trans_id"]
    _refund(merchant, ptid, "1.00")
    partial = merchant.ok(REVERSE, {"partner_trans_id": ptid})
    assert (partial["result_code"], partial["error"]) == ("FAILED", "TRADE_STATUS_ERROR")
    assert merchant.error(CANCEL, {"out_trade_no": ptid}) == "ILLEGAL_ARGUMENT"  # no timestamp
    stale = {"out_trade_no": ptid, "timestamp": "2001-01-01 00:00:00"}
    assert merchant.error(CANCEL, stale) == "ILLEGAL_ARGUMENT"
    wrong_trade_no = _cancel(merchant, ptid, emu, trade_no="2024050122000000000000000000")
    assert wrong_trade_no["detail_error_code"] == "TRADE_NOT_EXIST"
