"""The notifier: Alipay's eight-send retry schedule under a time scale, acknowledgement, faults."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from .conftest import BARCODE, EmulatorProcess, Merchant, Receiver, new_id
from .signer import verify

SCALE = 20000
GAPS = (120, 600, 600, 3600, 7200, 21600, 54000)  # 2m 10m 10m 1h 2h 6h 15h


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """An emulator whose durations run 20000 times faster: the 24h22m schedule takes about 4.4 s."""
    process = EmulatorProcess(tmp_path_factory.mktemp("fast"), "--time-scale", str(SCALE)).start()
    yield process
    assert process.stop() == 0


@pytest.fixture
def shop(fast: EmulatorProcess) -> Iterator[Merchant]:
    yield fast.merchant()
    fast.control("faults", {})
    fast.control("config", {"retry_schedule": list(GAPS)})


def _settled(emu: EmulatorProcess, partner: str, count: int = 1) -> dict:
    deadline = time.monotonic() + 20
    while True:
        found = emu.control(f"notifications?partner={partner}")
        states = [n["state"] for n in found["notifications"]]
        if len(states) >= count and all(state != "pending" for state in states):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


def test_eight_sends_on_alipays_schedule_when_never_acknowledged(shop: Merchant, receiver: Receiver) -> None:
    receiver.answer("/never", "fail")
    shop.paid_online_trade(notify_url=receiver.url("/never"))
    records = receiver.wait("/never", 8, timeout=30)
    found = _settled(shop.emu, shop.partner)
    (notification,) = found["notifications"]
    assert (notification["state"], notification["attempts"]) == ("gave_up", 8)
    deliveries = found["deliveries"]
    assert [d["attempt"] for d in deliveries] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert {d["outcome"] for d in deliveries} == {"rejected"}
    assert len({d["notify_id"] for d in deliveries}) == 8
    assert len({r.params["notify_id"] for r in records}) == 8
    sent = [datetime.fromisoformat(d["sent_at"]) for d in deliveries]
    for gap, before, after in zip(GAPS, sent[:-1], sent[1:], strict=True):
        # Never earlier than the scaled gap (the notifier may only be late, never early).
        assert (after - before).total_seconds() >= gap / SCALE
    time.sleep(0.3)
    assert len(receiver.got("/never")) == 8


def test_stops_at_the_first_success_trimmed_and_in_any_case(shop: Merchant, receiver: Receiver) -> None:
    receiver.answer("/ack", "fail", lambda record: (500, "success"), lambda record: (200, "  SUCCESS \n"))
    shop.paid_online_trade(notify_url=receiver.url("/ack"))
    receiver.wait("/ack", 3)
    found = _settled(shop.emu, shop.partner)
    assert found["notifications"][0]["state"] == "acknowledged"
    assert [d["outcome"] for d in found["deliveries"]] == ["rejected", "rejected", "acknowledged"]
    assert found["deliveries"][1]["status_code"] == 500
    time.sleep(0.3)  # the next send would have been due after 0.03 s
    assert len(receiver.got("/ack")) == 3


def test_an_unreachable_notify_url_is_retried_and_recorded(shop: Merchant) -> None:
    # The schedule is configurable: seven one-second gaps (a moment at this scale) instead of 24 hours.
    assert shop.emu.control("config", {"retry_schedule": [1] * 7})["retry_schedule"] == [1] * 7
    shop.paid_online_trade(notify_url="http://127.0.0.1:9/unreachable")
    found = _settled(shop.emu, shop.partner)
    assert found["notifications"][0]["state"] == "gave_up"
    assert len(found["deliveries"]) == 8
    assert all(d["outcome"] == "error" and d["error"] for d in found["deliveries"])


def test_refund_spacing_is_scaled_too(shop: Merchant) -> None:
    merchant = shop.emu.merchant(refund_interval=None)  # 3 s, i.e. 0.15 ms at this scale
    out_trade_no = merchant.paid_online_trade("10.00")
    for _ in range(2):
        time.sleep(0.01)
        params = {
            "out_return_no": new_id("R"),
            "out_trade_no": out_trade_no,
            "return_amount": "1.00",
            "currency": "USD",
            "gmt_return": "20240501120000",
        }
        assert merchant.xml("forex_refund", params).is_success


def test_dropped_notification_is_sent_again(shop: Merchant, receiver: Receiver) -> None:
    shop.emu.control("faults", {"notifications": {"drop_rate": 1, "limit": 1}})
    receiver.answer("/drop", "success")
    shop.paid_online_trade(notify_url=receiver.url("/drop"))
    (record,) = receiver.wait("/drop", 1)
    found = _settled(shop.emu, shop.partner)
    assert [(d["attempt"], d["outcome"]) for d in found["deliveries"]] == [
        (1, "dropped"),
        (2, "acknowledged"),
    ]
    assert record.params["notify_id"] == found["deliveries"][1]["notify_id"]


def test_duplicated_notification_arrives_twice(shop: Merchant, receiver: Receiver) -> None:
    shop.emu.control("faults", {"notifications": {"duplicate_rate": 1, "limit": 1}})
    receiver.answer("/dup", "success")
    shop.paid_online_trade(notify_url=receiver.url("/dup"))
    first, second = receiver.wait("/dup", 2)
    assert first.body == second.body
    assert verify(second.params, "MD5", shop.md5_key)
    found = _settled(shop.emu, shop.partner)
    assert [d["duplicate"] for d in found["deliveries"]] == [False, True]


def test_notifications_out_of_order(shop: Merchant, receiver: Receiver) -> None:
    shop.emu.control("faults", {"notifications": {"out_of_order": True, "hold": 0.5}})
    receiver.answer("/order", "success")
    ptid = shop.spot_pay(BARCODE, "10.00", notify_url=receiver.url("/order"))["partner_trans_id"]
    params = {
        "partner_trans_id": ptid,
        "partner_refund_id": new_id("F"),
        "refund_amount": "1.00",
        "currency": "USD",
        "notify_url": receiver.url("/order"),
    }
    assert shop.ok("alipay.acquire.overseas.spot.refund", params)["result_code"] == "SUCCESS"
    first, second = receiver.wait("/order", 2)
    # The refund's notification overtakes the payment's.
    assert first.params["notify_type"] == "refund_status_sync"
    assert (second.params["notify_type"], second.params["trade_status"]) == (
        "trade_status_sync",
        "TRADE_SUCCESS",
    )
