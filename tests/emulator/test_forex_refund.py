"""forex_refund: partial and repeated refunds up to the paid amount, idempotency, spacing, sync and async."""

from __future__ import annotations

import time

import pytest

from .conftest import EmulatorProcess, Merchant, Receiver, new_id
from .signer import verify

REFUND = "forex_refund"


def _refund(merchant: Merchant, out_trade_no: str, amount: str, **extra: str) -> dict[str, str]:
    params = {
        "out_return_no": extra.pop("out_return_no", None) or new_id("R"),
        "out_trade_no": out_trade_no,
        "return_amount": amount,
        "currency": extra.pop("currency", "USD"),
        "gmt_return": extra.pop("gmt_return", "20240501120000"),
        "reason": "customer request",
        "product_code": "NEW_OVERSEAS_SELLER",
        **extra,
    }
    return params


def _refunded(merchant: Merchant, out_trade_no: str) -> str:
    (trade,) = merchant.emu.control(f"trades?partner={merchant.partner}&out_trade_no={out_trade_no}")[
        "trades"
    ]
    return trade["refunded"]


def test_partial_refunds_up_to_the_paid_amount(merchant: Merchant) -> None:
    out_trade_no = merchant.paid_online_trade("100.00")
    envelope = merchant.xml(REFUND, _refund(merchant, out_trade_no, "30.00"))
    # A bare <alipay><is_success>T</is_success></alipay>: nothing to sign.
    assert (envelope.is_success, envelope.element, envelope.sign) == (True, None, None)
    assert merchant.xml(REFUND, _refund(merchant, out_trade_no, "70.00")).is_success
    assert merchant.error(REFUND, _refund(merchant, out_trade_no, "0.01")) == "RETURN_AMOUNT_EXCEED"
    assert _refunded(merchant, out_trade_no) == "100.00"
    # Online trades stay TRADE_FINISHED after a full refund.
    assert (
        merchant.ok("single_trade_query", {"out_trade_no": out_trade_no})["trade_status"] == "TRADE_FINISHED"
    )


def test_refunds_in_cents_add_up_exactly_to_the_paid_amount(merchant: Merchant) -> None:
    """0.10 three times is 0.30 (the emulator's SQLite would add them in floating point)."""
    out_trade_no = merchant.paid_online_trade("0.30")
    for _ in range(3):
        assert merchant.xml(REFUND, _refund(merchant, out_trade_no, "0.10")).is_success
    assert _refunded(merchant, out_trade_no) == "0.30"
    assert merchant.error(REFUND, _refund(merchant, out_trade_no, "0.01")) == "RETURN_AMOUNT_EXCEED"


def test_more_than_paid_in_one_go(merchant: Merchant) -> None:
    out_trade_no = merchant.paid_online_trade("10.00")
    assert merchant.error(REFUND, _refund(merchant, out_trade_no, "10.01")) == "RETURN_AMOUNT_EXCEED"
    assert _refunded(merchant, out_trade_no) == "0.00"


def test_exact_repeat_answers_the_documented_repeated_refundment_request_and_refunds_once(
    merchant: Merchant,
) -> None:
    out_trade_no = merchant.paid_online_trade("50.00")
    params = _refund(merchant, out_trade_no, "20.00")
    assert merchant.xml(REFUND, params).is_success
    assert merchant.error(REFUND, params) == "REPEATED_REFUNDMENT_REQUEST"
    assert _refunded(merchant, out_trade_no) == "20.00"


def test_exact_repeat_answers_the_original_result_under_the_knob_and_refunds_once(merchant: Merchant) -> None:
    out_trade_no = merchant.paid_online_trade("50.00")
    params = _refund(merchant, out_trade_no, "20.00")
    assert (
        merchant.emu.control("config", {"repeat_refund_answer": "original_result"})["repeat_refund_answer"]
        == "original_result"
    )
    try:
        assert merchant.xml(REFUND, params).is_success
        assert merchant.xml(REFUND, params).is_success
        assert merchant.xml(REFUND, {**params, "gmt_return": "2024-05-01 12:00:05"}).is_success
        assert merchant.error(REFUND, {**params, "return_amount": "10.00"}) == "REPEATED_REFUNDMENT_REQUEST"
    finally:
        merchant.emu.control("config", {"repeat_refund_answer": "repeated_refundment_request"})
    assert _refunded(merchant, out_trade_no) == "20.00"


def test_same_out_return_no_for_another_refund_is_repeated(merchant: Merchant) -> None:
    out_trade_no = merchant.paid_online_trade("50.00")
    params = _refund(merchant, out_trade_no, "20.00")
    assert merchant.xml(REFUND, params).is_success
    assert merchant.error(REFUND, {**params, "return_amount": "10.00"}) == "REPEATED_REFUNDMENT_REQUEST"
    other = merchant.paid_online_trade("50.00")
    assert merchant.error(REFUND, {**params, "out_trade_no": other}) == "REPEATED_REFUNDMENT_REQUEST"
    assert _refunded(merchant, other) == "0.00"


def test_business_errors(merchant: Merchant) -> None:
    paid = merchant.paid_online_trade("10.00")
    unpaid, _ = merchant.online_trade("10.00")
    assert merchant.error(REFUND, _refund(merchant, "no-such-trade", "1.00")) == "PURCHASE_TRADE_NOT_EXIST"
    assert merchant.error(REFUND, _refund(merchant, unpaid, "1.00")) == "PURCHASE_TRADE_NOT_EXIST"
    assert merchant.error(REFUND, _refund(merchant, paid, "1.00", currency="EUR")) == "CURRENCY_NOT_SAME"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"return_amount": "1.001"}, "ILLEGAL_ARGUMENT"),
        ({"return_amount": "-1.00"}, "ILLEGAL_ARGUMENT"),
        ({"return_amount": "0.00"}, "ILLEGAL_ARGUMENT"),
        ({"return_amount": "1,00"}, "ILLEGAL_ARGUMENT"),
        ({"gmt_return": "2024/05/01 12:00:00"}, "ILLEGAL_ARGUMENT"),
        ({"gmt_return": ""}, "ILLEGAL_ARGUMENT"),
        ({"out_return_no": "x" * 65}, "ILLEGAL_ARGUMENT"),
        ({"is_sync": "yes"}, "ILLEGAL_ARGUMENT"),
        ({"return_rmb_amount": "1.00"}, "ILLEGAL_ARGUMENT"),
        ({"product_code": "OVERSEAS_MBARCODE_PAY"}, "ILLEGAL_ARGUMENT"),
    ],
)
def test_malformed_requests(merchant: Merchant, change: dict, code: str) -> None:
    out_trade_no = merchant.paid_online_trade("10.00")
    params = {k: v for k, v in {**_refund(merchant, out_trade_no, "1.00"), **change}.items() if v != ""}
    assert merchant.error(REFUND, params) == code
    assert _refunded(merchant, out_trade_no) == "0.00"


def test_gmt_return_in_either_documented_format(merchant: Merchant) -> None:
    out_trade_no = merchant.paid_online_trade("10.00")
    assert merchant.xml(
        REFUND, _refund(merchant, out_trade_no, "1.00", gmt_return="20240501120000")
    ).is_success
    assert merchant.xml(
        REFUND, _refund(merchant, out_trade_no, "1.00", gmt_return="2024-05-01 12:00:00")
    ).is_success


def test_jpy_refunds_are_whole_yen(merchant: Merchant) -> None:
    out_trade_no = merchant.paid_online_trade("1000", "JPY")
    assert (
        merchant.error(REFUND, _refund(merchant, out_trade_no, "100.5", currency="JPY")) == "ILLEGAL_ARGUMENT"
    )
    assert merchant.xml(REFUND, _refund(merchant, out_trade_no, "100", currency="JPY")).is_success
    assert _refunded(merchant, out_trade_no) == "100"


def test_async_refund_notifies_the_trade_notify_url(merchant: Merchant, receiver: Receiver) -> None:
    receiver.answer("/refund", "success")
    out_trade_no = merchant.paid_online_trade("10.00", notify_url=receiver.url("/refund"))
    receiver.wait("/refund", 1)  # the payment's own notification
    params = _refund(merchant, out_trade_no, "4.00")
    assert merchant.xml(REFUND, params).is_success
    notification = receiver.wait("/refund", 2)[1]
    fields = notification.params
    assert {
        k: fields[k] for k in ("notify_type", "out_trade_no", "out_return_no", "refund_status", "currency")
    } == {
        "notify_type": "refund_status_sync",
        "out_trade_no": out_trade_no,
        "out_return_no": params["out_return_no"],
        "refund_status": "REFUND_SUCCESS",
        "currency": "USD",
    }
    assert fields["return_amount"] == "4.00"
    assert {"notify_id", "notify_time", "sign", "sign_type"} <= set(fields)
    assert verify(fields, "MD5", merchant.md5_key)


def test_sync_refund_sends_no_notification(merchant: Merchant, receiver: Receiver) -> None:
    receiver.answer("/sync", "success")
    out_trade_no = merchant.paid_online_trade("10.00", notify_url=receiver.url("/sync"))
    receiver.wait("/sync", 1)
    assert merchant.xml(REFUND, _refund(merchant, out_trade_no, "4.00", is_sync="Y")).is_success
    assert merchant.emu.control(
        f"notifications?partner={merchant.partner}&notify_type=refund_status_sync"
    ) == {
        "deliveries": [],
        "notifications": [],
    }


def test_refunds_of_one_partner_must_be_three_seconds_apart(emu: EmulatorProcess) -> None:
    merchant = emu.merchant(refund_interval=None)  # the emulator's default: 3 s at time scale 1
    first = merchant.paid_online_trade("10.00")
    second = merchant.paid_online_trade("10.00")
    assert merchant.xml(REFUND, _refund(merchant, first, "1.00")).is_success
    assert merchant.error(REFUND, _refund(merchant, second, "1.00")) == "SYSTEM_ERROR"
    assert _refunded(merchant, second) == "0.00"
    calls = emu.control(f"calls?partner={merchant.partner}&service=forex_refund")["calls"]
    assert "refund interval violated" in calls[-1]["note"]
    # Another partner is not held back.
    assert emu.merchant(refund_interval=None).error(REFUND, _refund(merchant, "x", "1.00")) == (
        "PURCHASE_TRADE_NOT_EXIST"
    )


def test_the_refund_interval_is_configurable_per_partner(emu: EmulatorProcess) -> None:
    merchant = emu.merchant(refund_interval=0.3)
    out_trade_no = merchant.paid_online_trade("10.00")
    assert merchant.xml(REFUND, _refund(merchant, out_trade_no, "1.00")).is_success
    assert merchant.error(REFUND, _refund(merchant, out_trade_no, "1.00")) == "SYSTEM_ERROR"
    time.sleep(0.35)
    assert merchant.xml(REFUND, _refund(merchant, out_trade_no, "1.00")).is_success
    assert _refunded(merchant, out_trade_no) == "2.00"
