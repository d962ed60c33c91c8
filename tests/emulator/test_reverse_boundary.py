"""REVERSE/cancel of a paid trade works until 23:59:59 Beijing time on the payment's day, in any zone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import BARCODE, EmulatorProcess, Merchant

REVERSE = "alipay.acquire.overseas.spot.reverse"
CANCEL = "alipay.acquire.cancel"
QUERY = "alipay.acquire.overseas.query"


@pytest.fixture(scope="module", params=["UTC", "Asia/Shanghai", "America/Los_Angeles"])
def zoned(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmulatorProcess]:
    """An emulator whose process runs in the given time zone (TZ and Django TIME_ZONE)."""
    process = EmulatorProcess(tmp_path_factory.mktemp("tz"), tz=request.param).start()
    yield process
    assert process.stop() == 0


def _pay_at(emu: EmulatorProcess, merchant: Merchant, when: str) -> str:
    emu.control("clock", {"now": when})
    return merchant.spot_pay(BARCODE, "10.00")["partner_trans_id"]


def test_reverse_at_235959_and_at_midnight_beijing(zoned: EmulatorProcess) -> None:
    merchant = zoned.merchant()
    # Paid at 08:00 Beijing on 1 March 2024 (= 29 Feb 16:00 in Los Angeles, 1 Mar 00:00 UTC).
    early = _pay_at(zoned, merchant, "2024-03-01T08:00:00+08:00")
    late = _pay_at(zoned, merchant, "2024-03-01T08:00:00+08:00")
    cancelled = _pay_at(zoned, merchant, "2024-03-01T08:00:00+08:00")

    zoned.control("clock", {"now": "2024-03-01T15:59:59+00:00"})  # 23:59:59 Beijing, same day
    assert merchant.ok(REVERSE, {"partner_trans_id": early})["result_code"] == "SUCCESS"
    assert merchant.ok(QUERY, {"partner_trans_id": early})["alipay_trans_status"] == "TRADE_CLOSED"

    zoned.control("clock", {"now": "2024-03-02T00:00:00+08:00"})  # 16:00 UTC: still 1 March in UTC and LA
    refused = merchant.ok(REVERSE, {"partner_trans_id": late})
    assert (refused["result_code"], refused["error"]) == ("FAILED", "TRADE_STATUS_ERROR")
    assert merchant.ok(QUERY, {"partner_trans_id": late})["alipay_trans_status"] == "TRADE_SUCCESS"
    failed = merchant.ok(CANCEL, {"out_trade_no": cancelled, "timestamp": "2024-03-02 00:00:00"})
    assert (failed["result_code"], failed["detail_error_code"]) == ("FAIL", "TRADE_STATUS_ERROR")
    # After the day, REFUND is the way to give the money back.
    params = {
        "partner_trans_id": late,
        "partner_refund_id": late + "-r",
        "refund_amount": "10.00",
        "currency": "USD",
    }
    assert merchant.ok("alipay.acquire.overseas.spot.refund", params)["result_code"] == "SUCCESS"
    zoned.control("clock", {"now": "real"})


def test_cancel_at_235959_beijing_and_unpaid_after_midnight(zoned: EmulatorProcess) -> None:
    merchant = zoned.merchant()
    paid = _pay_at(zoned, merchant, "2024-07-10T00:00:00+08:00")  # first second of the Beijing day
    zoned.control("clock", {"now": "2024-07-10T08:59:59-07:00"})  # 23:59:59 Beijing, in Los Angeles time
    ok = merchant.ok(CANCEL, {"out_trade_no": paid, "timestamp": "2024-07-10 23:59:59"})
    assert (ok["result_code"], ok["action"]) == ("SUCCESS", "refund")

    zoned.control("clock", {"now": "2024-07-10T20:00:00+08:00"})
    precreated = merchant.ok(
        "alipay.acquire.precreate",
        {
            "out_trade_no": paid + "-q",
            "subject": "x",
            "product_code": "OVERSEAS_MBARCODE_PAY",
            "total_fee": "1.00",
            "currency": "USD",
            "it_b_pay": "1d",
        },
    )["out_trade_no"]
    zoned.control("clock", {"now": "2024-07-11T00:00:00+08:00"})
    # An unpaid trade can be closed after midnight: the day rule is for paid trades.
    closed = merchant.ok(CANCEL, {"out_trade_no": precreated, "timestamp": "2024-07-11 00:00:00"})
    assert (closed["result_code"], closed["action"]) == ("SUCCESS", "close")
    zoned.control("clock", {"now": "real"})
