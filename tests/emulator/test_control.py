"""The control API: partners, buyers, trades, calls, config, clock, deliver, reset, and the index page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.conftest import CONTROL_HEADERS

from .conftest import BARCODE, EmulatorProcess


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """An emulator of its own: these tests reset it."""
    process = EmulatorProcess(tmp_path_factory.mktemp("control"), "--no-notifier").start()
    yield process
    assert process.stop() == 0


def test_buyers_are_listed_with_barcodes_and_balances(own: EmulatorProcess) -> None:
    listing = own.control("buyers")
    assert listing["password"] == "111111"
    by_login = {b["login_id"]: b for b in listing["buyers"]}
    assert by_login["buyer@alitest.com"]["barcode"] == BARCODE
    assert by_login["poor@alitest.com"]["balance"] == "10.00"
    assert by_login["frozen@alitest.com"]["enabled"] is False
    assert by_login["slow@alitest.com"]["needs_confirmation"] is True
    for buyer in listing["buyers"]:
        assert buyer["user_id"].startswith("2088")
        assert len(buyer["user_id"]) == 16
        assert 16 <= len(buyer["barcode"]) <= 24
        assert 25 <= int(buyer["barcode"][:2]) <= 30


def test_partner_registration_answers_and_errors(own: EmulatorProcess) -> None:
    body = {"partner": "2088555555555555", "md5_key": "k" * 32, "sign_types": "MD5"}
    summary = own.control("partners", body)
    assert summary == {
        "partner": "2088555555555555",
        "has_md5_key": True,
        "merchant_public_key": None,
        "sign_types": ["MD5"],
        "services": "all",
        "refund_interval": None,
    }
    bad = requests.post(
        f"{own.base}/control/partners",
        json={"partner": "2088", "md5_key": "k"},
        headers=CONTROL_HEADERS,
        timeout=30,
    )
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_partner")
    assert requests.get(f"{own.base}/control/pay", timeout=30).status_code == 405


def test_clock_config_calls_deliver_and_reset(own: EmulatorProcess) -> None:
    merchant = own.merchant()
    clock = own.control("clock", {"now": "2024-02-29T23:59:59+08:00", "time_scale": 10})
    assert (clock["beijing"], clock["fixed"], clock["time_scale"]) == ("2024-02-29 23:59:59", True, 10)
    assert own.control("clock", {"advance": 1})["beijing"] == "2024-03-01 00:00:00"
    bad = requests.post(
        f"{own.base}/control/clock", json={"now": "2024-02-29T23:59:59"}, headers=CONTROL_HEADERS, timeout=30
    )
    assert bad.status_code == 400
    assert "offset" in bad.json()["message"]

    config = own.control("config", {"notify_id_ttl": 30})
    assert config["notify_id_ttl"] == 30
    assert config["retry_schedule"] == [120, 600, 600, 3600, 7200, 21600, 54000]
    url = f"{own.base}/control/config"
    assert requests.post(url, json={"bogus": 1}, headers=CONTROL_HEADERS, timeout=30).status_code == 400
    assert (
        requests.post(url, json={"notify_id_ttl": "x"}, headers=CONTROL_HEADERS, timeout=30).status_code
        == 400
    )
    form = requests.post(
        url, data={"retry_schedule": "1,2", "refund_interval": "0"}, headers=CONTROL_HEADERS, timeout=30
    )
    assert (form.json()["retry_schedule"], form.json()["refund_interval"]) == ([1, 2], 0)

    merchant.spot_pay(BARCODE, "1.00", notify_url="http://127.0.0.1:9/n")
    (call,) = own.control(f"calls?partner={merchant.partner}")["calls"]
    assert (call["service"], call["outcome"]) == ("alipay.acquire.overseas.spot.pay", "SUCCESS")
    assert call["status_code"] == 200
    assert call["params"]["buyer_identity_code"] == BARCODE
    # No notifier thread in this emulator: notifications wait for control/deliver.
    assert own.control(f"notifications?partner={merchant.partner}")["deliveries"] == []
    (delivery,) = own.control("deliver", {})["deliveries"]
    assert (delivery["attempt"], delivery["outcome"]) == (1, "error")

    reset = own.control("reset", {})
    assert (reset["fixed"], reset["time_scale"]) == (False, 1)
    assert own.control("trades")["trades"] == []
    assert own.control("calls")["calls"] == []
    assert own.control("config")["notify_id_ttl"] == 60
    assert merchant.partner in [p["partner"] for p in own.control("partners")["partners"]]
    own.control("reset", {"partners": True})
    assert own.control("partners")["partners"] == []


def test_index_page(own: EmulatorProcess) -> None:
    page = requests.get(own.base + "/", timeout=30)
    assert page.status_code == 200
    assert own.gateway in page.text
    assert "buyer@alitest.com" in page.text
    assert BARCODE in page.text


def test_the_clock_takes_an_offset_whose_plus_form_decoding_turned_into_a_space(own: EmulatorProcess) -> None:
    # What `curl -d now=2024-05-01T10:00:00+08:00` sends: the "+" unencoded, so it is read as a space.
    body = "now=2024-05-01T10:00:00+08:00"
    headers = {"Content-Type": "application/x-www-form-urlencoded", **CONTROL_HEADERS}
    try:
        answer = requests.post(own.base + "/control/clock", data=body, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["beijing"] == "2024-05-01 10:00:00"
        plain = requests.post(
            own.base + "/control/clock",
            data={"now": "2024-05-01T11:00:00+08:00"},
            headers=CONTROL_HEADERS,
            timeout=30,
        )
        assert plain.json()["beijing"] == "2024-05-01 11:00:00"
    finally:
        own.control("clock", {"now": "real"})
