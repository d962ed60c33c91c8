"""The file services: forex_rate_file, forex_compare_file and forex_liquidation_file as |-separated text."""

from __future__ import annotations

import re

import pytest

from .conftest import BARCODE, EmulatorProcess, Merchant, new_id


def _text(merchant: Merchant, service: str, params: dict[str, str] | None = None) -> str:
    response = merchant.request(service, params or {})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    return response.text


def test_rate_file(emu: EmulatorProcess, merchant: Merchant) -> None:
    emu.control("clock", {"now": "2024-05-01T09:30:15+08:00"})
    lines = _text(merchant, "forex_rate_file").splitlines()
    rates = {}
    for line in lines:
        day, clock, currency, rate = line.split("|")
        assert (day, clock) == ("20240501", "093015")
        assert re.fullmatch(r"[0-9]+\.[0-9]+", rate)
        rates[currency] = rate
    assert {"USD", "EUR", "JPY", "KRW", "HKD", "GBP", "SGD"} <= set(rates)
    assert "CNY" not in rates
    assert rates["USD"] == "6.64640000"


def test_compare_and_liquidation_files(emu: EmulatorProcess, merchant: Merchant) -> None:
    emu.control("clock", {"now": "2024-04-10T23:30:00+08:00"})
    paid_online = merchant.paid_online_trade("12.34", "EUR")
    emu.control("clock", {"now": "2024-04-11T10:00:00+08:00"})
    spot = merchant.spot_pay(BARCODE, "500", "JPY")
    params = {
        "partner_trans_id": spot["partner_trans_id"],
        "partner_refund_id": new_id("F"),
        "refund_amount": "200",
        "currency": "JPY",
    }
    emu.control("clock", {"now": "2024-04-12T08:00:00+08:00"})
    merchant.ok("alipay.acquire.overseas.spot.refund", params)
    emu.control("clock", {"now": "2024-04-20T12:00:00+08:00"})

    trade_no = merchant.ok("single_trade_query", {"out_trade_no": paid_online})["trade_no"]
    compare = _text(merchant, "forex_compare_file", {"start_date": "20240410", "end_date": "20240411"})
    rows = [line.split("|") for line in compare.splitlines()]
    assert rows == [
        [paid_online, "12.34", "EUR", "20240410233000", "", "P", "0.00", "S", trade_no],
        [
            spot["partner_trans_id"],
            "500",
            "JPY",
            "20240411100000",
            "",
            "P",
            "0",
            "S",
            spot["alipay_trans_id"],
        ],
    ]
    refunds = _text(merchant, "forex_compare_file", {"start_date": "20240412", "end_date": "20240412"})
    assert refunds.split("|")[:6] == [spot["partner_trans_id"], "200", "JPY", "20240412080000", "", "R"]

    # Settlement is T+1: the 10 April payment settles on the 11th, the others on the 12th and 13th.
    settled = _text(merchant, "forex_liquidation_file", {"start_date": "20240411", "end_date": "20240411"})
    (line,) = settled.splitlines()
    assert line.split("|")[:6] == [paid_online, "12.34", "EUR", "20240410233000", "20240411100000", "P"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"start_date": "20240401", "end_date": "20240415"},
            "File download failed:Over 10 days to Date period",
        ),
        (
            {"start_date": "20240410", "end_date": "20240401"},
            "File download failed:Finish date ahead of begin date",
        ),
        (
            {"start_date": "20240501", "end_date": "20240501"},
            "File download failed:Finish date not ahead of today",
        ),
        # Recorded against the real gateway for a missing or invalid date (an independent SDK's README).
        ({"start_date": "2024-04-01", "end_date": "20240402"}, "File download failed:Illegal Date period!"),
        ({"start_date": "20240231", "end_date": "20240302"}, "File download failed:Illegal Date period!"),
        ({}, "File download failed:Illegal Date period!"),
    ],
)
def test_file_errors(emu: EmulatorProcess, merchant: Merchant, params: dict, message: str) -> None:
    emu.control("clock", {"now": "2024-05-01T12:00:00+08:00"})
    for service in ("forex_compare_file", "forex_liquidation_file"):
        assert _text(merchant, service, params) == message


def test_no_data_in_the_period(emu: EmulatorProcess, merchant: Merchant) -> None:
    emu.control("clock", {"now": "2024-05-01T12:00:00+08:00"})
    period = {"start_date": "20240101", "end_date": "20240102"}
    assert _text(merchant, "forex_compare_file", period) == "No balance account data in the period"
    assert _text(merchant, "forex_liquidation_file", period) == "No balance amount data in the period"


def test_a_bad_partner_gets_the_xml_envelope(emu: EmulatorProcess) -> None:
    stranger = Merchant(emu, "2088777777777777", "k" * 32)
    envelope = stranger.xml("forex_compare_file", {"start_date": "20240101", "end_date": "20240102"})
    assert (envelope.is_success, envelope.error) == (False, "ILLEGAL_PARTNER")
