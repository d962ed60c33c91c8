"""Gateway fault injection: SYSTEM_ERROR, latency, dropped connections, truncation, no signature, HTTP 502."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest
import requests

from tests.conftest import CONTROL_HEADERS

from .conftest import BARCODE, EmulatorProcess, Merchant, new_id
from .signer import parse_envelope

REFUND = "alipay.acquire.overseas.spot.refund"
QUERY = "alipay.acquire.overseas.query"


def _refund_params(ptid: str, amount: str = "4.00") -> dict[str, str]:
    return {
        "partner_trans_id": ptid,
        "partner_refund_id": new_id("F"),
        "refund_amount": amount,
        "currency": "USD",
    }


def _refunded(emu: EmulatorProcess, merchant: Merchant) -> str:
    (trade,) = emu.control(f"trades?partner={merchant.partner}")["trades"]
    return trade["refunded"]


def test_system_error_refuses_before_processing(emu: EmulatorProcess, merchant: Merchant) -> None:
    ptid = merchant.spot_pay(BARCODE, "10.00")["partner_trans_id"]
    emu.control("faults", {"services": {REFUND: {"system_error_rate": 1, "limit": 1}}})
    params = _refund_params(ptid)
    assert merchant.error(REFUND, params) == "SYSTEM_ERROR"
    assert _refunded(emu, merchant) == "0.00"
    # The limit is reached: the same request now goes through.
    assert merchant.ok(REFUND, params)["result_code"] == "SUCCESS"
    assert _refunded(emu, merchant) == "4.00"
    assert emu.control("faults")["services"][REFUND]["fired"] == 1


def test_dropped_connection_after_the_refund_was_made(emu: EmulatorProcess, merchant: Merchant) -> None:
    ptid = merchant.spot_pay(BARCODE, "10.00")["partner_trans_id"]
    emu.control("faults", {"services": {REFUND: {"drop_rate": 1, "limit": 1}}})
    params = _refund_params(ptid)
    with pytest.raises(requests.ConnectionError):
        merchant.request(REFUND, params)
    # The merchant could not know, but the refund happened; a retry with the same id says so.
    assert _refunded(emu, merchant) == "4.00"
    retried = merchant.ok(REFUND, params)
    assert (retried["result_code"], retried["refund_amount"]) == ("SUCCESS", "4.00")
    assert _refunded(emu, merchant) == "4.00"
    calls = emu.control(f"calls?partner={merchant.partner}&service={REFUND}")["calls"]
    assert [c["fault"] for c in calls] == ["drop", ""]


def test_truncated_answer(emu: EmulatorProcess, merchant: Merchant) -> None:
    emu.control("faults", {"services": {QUERY: {"truncate_rate": 1}}})
    response = merchant.request(QUERY, {"partner_trans_id": "x"})
    assert response.status_code == 200
    assert response.content.startswith(b"<?xml")
    assert int(response.headers["Content-Length"]) == len(response.content)
    with pytest.raises(ET.ParseError):
        parse_envelope(response.content)


def test_unsigned_answer(emu: EmulatorProcess, merchant: Merchant) -> None:
    emu.control("faults", {"services": {QUERY: {"unsigned_rate": 1}}})
    envelope = merchant.xml(QUERY, {"partner_trans_id": "x"})
    assert (envelope.is_success, envelope.fields["result_code"]) == (True, "FAIL")
    assert (envelope.sign, envelope.sign_type) == (None, None)


def test_bad_gateway_html_page(emu: EmulatorProcess, merchant: Merchant) -> None:
    ptid = merchant.spot_pay(BARCODE, "10.00")["partner_trans_id"]
    emu.control("faults", {"services": {REFUND: {"http_502_rate": 1}}})
    response = merchant.request(REFUND, _refund_params(ptid))
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text
    # Like a proxy failing after the gateway answered: the refund may have been made (here it was).
    assert _refunded(emu, merchant) == "4.00"


def test_added_latency(emu: EmulatorProcess, merchant: Merchant) -> None:
    emu.control("faults", {"services": {QUERY: {"latency": 0.3}}})
    started = time.monotonic()
    assert merchant.ok(QUERY, {"partner_trans_id": "x"})["result_code"] == "FAIL"
    assert time.monotonic() - started >= 0.3


def test_a_service_rule_replaces_the_global_rule(emu: EmulatorProcess, merchant: Merchant) -> None:
    emu.control("faults", {"global": {"system_error_rate": 1}, "services": {QUERY: {}}})
    assert merchant.ok(QUERY, {"partner_trans_id": "x"})["result_code"] == "FAIL"
    assert merchant.error("single_trade_query", {"out_trade_no": "x"}) == "SYSTEM_ERROR"


def test_a_page_service_system_error_is_an_error_page(emu: EmulatorProcess, merchant: Merchant) -> None:
    emu.control("faults", {"services": {"create_forex_trade": {"system_error_rate": 1}}})
    params = {
        "out_trade_no": new_id(),
        "subject": "x",
        "currency": "USD",
        "total_fee": "1.00",
        "product_code": "NEW_OVERSEAS_SELLER",
    }
    response = merchant.request("create_forex_trade", params)
    assert response.status_code == 200
    assert 'id="error-code">SYSTEM_ERROR<' in response.text


def test_seeded_faults_are_reproducible(emu: EmulatorProcess, merchant: Merchant) -> None:
    def run() -> list[str]:
        emu.control("faults", {"seed": 42, "services": {QUERY: {"system_error_rate": 0.5}}})
        outcomes = []
        for _ in range(16):
            envelope = merchant.xml(QUERY, {"partner_trans_id": "x"})
            outcomes.append(envelope.error or envelope.fields["result_code"])
        return outcomes

    first = run()
    assert set(first) == {"SYSTEM_ERROR", "FAIL"}
    assert run() == first


@pytest.mark.parametrize(
    "plan",
    [
        {"global": {"system_error_rate": 2}},
        {"global": {"drop": 1}},
        {"services": {QUERY: {"latency": -1}}},
        {"notifications": {"out_of_order": "yes"}},
        {"seed": "x"},
        {"everything": True},
    ],
)
def test_an_invalid_plan_is_refused(emu: EmulatorProcess, plan: dict) -> None:
    response = requests.post(f"{emu.base}/control/faults", json=plan, headers=CONTROL_HEADERS, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_fault_plan"
