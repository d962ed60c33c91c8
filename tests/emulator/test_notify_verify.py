"""notify_verify: true while a notify_id is fresh and unacknowledged, false after, invalid if malformed."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import requests

from .conftest import EmulatorProcess, Merchant, Received, Receiver
from .signer import sign


def _verify(merchant: Merchant, notify_id: str, *, signed: bool = False, partner: str | None = None) -> str:
    params = {"service": "notify_verify", "partner": partner or merchant.partner, "notify_id": notify_id}
    if signed:
        params["sign"] = sign(params, "MD5", merchant.md5_key)
        params["sign_type"] = "MD5"
    response = requests.get(f"{merchant.emu.gateway}?{urlencode(params)}", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.text


def _wait_state(emu: EmulatorProcess, partner: str, state: str) -> dict:
    deadline = time.monotonic() + 10
    while True:
        notifications = emu.control(f"notifications?partner={partner}")["notifications"]
        if notifications and notifications[0]["state"] == state:
            return notifications[0]
        assert time.monotonic() < deadline, notifications
        time.sleep(0.05)


def test_true_while_handling_then_false_once_acknowledged(merchant: Merchant, receiver: Receiver) -> None:
    verdicts: list[str] = []

    def handle(record: Received) -> tuple[int, str]:
        # What a careful merchant does: verify with Alipay before answering success.
        verdicts.append(_verify(merchant, record.params["notify_id"]))
        verdicts.append(_verify(merchant, record.params["notify_id"], signed=True))
        return 200, "success"

    receiver.answer("/n", handle)
    merchant.paid_online_trade(notify_url=receiver.url("/n"))
    (record,) = receiver.wait("/n", 1)
    assert verdicts == ["true", "true"]
    _wait_state(merchant.emu, merchant.partner, "acknowledged")
    assert _verify(merchant, record.params["notify_id"]) == "false"


def test_each_send_has_its_own_notify_id(
    emu: EmulatorProcess, merchant: Merchant, receiver: Receiver
) -> None:
    emu.control("clock", {"time_scale": 600})  # first retry after 0.2 s; a notify_id lives 0.1 s
    receiver.answer("/retry", "fail", "fail", "success")
    merchant.paid_online_trade(notify_url=receiver.url("/retry"))
    records = receiver.wait("/retry", 3)
    ids = [r.params["notify_id"] for r in records]
    assert len(set(ids)) == 3
    _wait_state(emu, merchant.partner, "acknowledged")
    # The first two were never acknowledged but are older than 60 s in emulated time; the third was.
    assert [_verify(merchant, notify_id) for notify_id in ids] == ["false", "false", "false"]


def test_a_notify_id_expires_after_sixty_scaled_seconds(
    emu: EmulatorProcess, merchant: Merchant, receiver: Receiver
) -> None:
    emu.control("clock", {"time_scale": 100})  # 60 s last 0.6 s; the first retry comes after 1.2 s
    receiver.answer("/late", "fail")
    merchant.paid_online_trade(notify_url=receiver.url("/late"))
    (record,) = receiver.wait("/late", 1)
    assert _verify(merchant, record.params["notify_id"]) == "true"
    time.sleep(0.7)
    assert _verify(merchant, record.params["notify_id"]) == "false"


def test_unknown_or_foreign_notify_id_is_false(
    emu: EmulatorProcess, merchant: Merchant, receiver: Receiver
) -> None:
    assert _verify(merchant, "5b89a773c60af059d96b1693dd3b3d6nc1") == "false"
    receiver.answer("/other", "fail")
    other = emu.merchant()
    other.paid_online_trade(notify_url=receiver.url("/other"))
    (record,) = receiver.wait("/other", 1)
    assert _verify(other, record.params["notify_id"]) == "true"
    assert _verify(merchant, record.params["notify_id"]) == "false"


def test_invalid_requests(merchant: Merchant) -> None:
    assert _verify(merchant, "") == "invalid"
    assert _verify(merchant, "abc", partner="2088999999999998") == "invalid"
    params = {"service": "notify_verify", "partner": merchant.partner, "notify_id": "abc"}
    params.update(sign="0" * 32, sign_type="MD5")
    response = requests.get(f"{merchant.emu.gateway}?{urlencode(params)}", timeout=30)
    assert response.text == "invalid"
    assert _verify(merchant, "abc", signed=True) == "false"
