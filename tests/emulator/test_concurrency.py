"""Concurrent refunds of one payment never give back more than was paid."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from .conftest import BARCODE, EmulatorProcess, new_id


def test_twenty_concurrent_spot_refunds(emu: EmulatorProcess) -> None:
    merchant = emu.merchant()
    ptid = merchant.spot_pay(BARCODE, "100.00")["partner_trans_id"]

    def refund(_: int) -> str:
        params = {
            "partner_trans_id": ptid,
            "partner_refund_id": new_id("F"),
            "refund_amount": "10.00",
            "currency": "USD",
        }
        fields = merchant.ok("alipay.acquire.overseas.spot.refund", params)
        return fields.get("error") or fields["result_code"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = Counter(pool.map(refund, range(20)))
    assert results["SUCCESS"] == 10
    assert sum(results.values()) == 20
    assert set(results) <= {"SUCCESS", "RETURN_AMOUNT_EXCEED", "TRADE_HAS_CLOSE"}
    (trade,) = emu.control(f"trades?partner={merchant.partner}")["trades"]
    assert (trade["refunded"], trade["status"]) == ("100.00", "TRADE_CLOSED")


def test_twenty_concurrent_forex_refunds(emu: EmulatorProcess) -> None:
    merchant = emu.merchant(refund_interval=0)
    out_trade_no = merchant.paid_online_trade("100.00")

    def refund(_: int) -> str:
        params = {
            "out_return_no": new_id("R"),
            "out_trade_no": out_trade_no,
            "return_amount": "7.00",
            "currency": "USD",
            "gmt_return": "20240501120000",
        }
        envelope = merchant.xml("forex_refund", params)
        return "T" if envelope.is_success else str(envelope.error)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = Counter(pool.map(refund, range(20)))
    assert results == Counter({"T": 14, "RETURN_AMOUNT_EXCEED": 6})
    (trade,) = emu.control(f"trades?partner={merchant.partner}")["trades"]
    assert trade["refunded"] == "98.00"


def test_concurrent_retries_of_one_refund_id_refund_once(emu: EmulatorProcess) -> None:
    merchant = emu.merchant()
    ptid = merchant.spot_pay(BARCODE, "50.00")["partner_trans_id"]
    params = {
        "partner_trans_id": ptid,
        "partner_refund_id": new_id("F"),
        "refund_amount": "30.00",
        "currency": "USD",
    }
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(
            pool.map(lambda _: merchant.ok("alipay.acquire.overseas.spot.refund", params), range(10))
        )
    assert all(answer == answers[0] for answer in answers)
    assert answers[0]["result_code"] == "SUCCESS"
    (trade,) = emu.control(f"trades?partner={merchant.partner}")["trades"]
    assert trade["refunded"] == "30.00"
