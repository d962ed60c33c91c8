"""A developer uses the emulator's console in a real browser instead of curl: clock, faults, notifications."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from django_alipay.domain import trades
from django_alipay.models import Merchant
from tests.browser.conftest import control

pytestmark = pytest.mark.slow


@pytest.fixture
def console(page: Any, emulator: str) -> Any:
    page.goto(emulator)
    yield page
    control(emulator, "clock", now="real")
    control(emulator, "faults")


def test_the_clock_is_set_in_beijing_time_moved_a_day_and_sent_back_to_real_time(
    console: Any, screenshot: Any
) -> None:
    console.fill("#clock-now", "2024-05-01 23:59:59")
    console.click("#clock-set")
    assert console.inner_text("#clock-beijing") == "2024-05-01 23:59:59"
    assert "2024-05-01 15:59:59 UTC" in console.inner_text("#clock-utc")
    assert "stands still" in console.inner_text("#clock-mode")

    console.click("#clock-day")
    assert console.inner_text("#clock-beijing") == "2024-05-02 23:59:59"
    screenshot("emulator-console-clock")

    console.fill("#clock-now", "2024-05-03T10:00:00 08:00")  # a "+" lost to form decoding
    console.click("#clock-set")
    assert console.inner_text("#clock-beijing") == "2024-05-03 10:00:00"

    console.fill("#clock-now", "tomorrow")
    console.click("#clock-set")
    assert "is not a time" in console.inner_text("#clock-error")

    console.click("#clock-real")
    assert "runs with the real time" in console.inner_text("#clock-mode")


def test_faults_are_added_listed_and_cleared(console: Any, emulator: str, screenshot: Any) -> None:
    console.select_option("#fault-target", "forex_refund")
    console.select_option("#fault-kind", "system_error_rate")
    console.fill("#fault-value", "1.0")
    console.fill("#fault-limit", "1")
    console.click("#fault-add")

    assert "forex_refund" in console.inner_text("#fault-list")
    plan = requests.get(emulator + "control/faults", timeout=10).json()
    assert plan["services"]["forex_refund"]["system_error_rate"] == 1.0
    assert plan["services"]["forex_refund"]["limit"] == 1
    screenshot("emulator-console-faults")

    console.fill("#fault-value", "lots")
    console.click("#fault-add")
    assert "must be numbers" in console.inner_text("#faults-error")

    console.click("#fault-clear")
    assert "No faults" in console.inner_text("#fault-list")
    assert requests.get(emulator + "control/faults", timeout=10).json()["services"] == {}


@pytest.mark.django_db
def test_a_notification_is_listed_and_resent_now(
    console: Any, emulator: str, screenshot: Any, make_merchant: Callable[..., Merchant], settings: Any
) -> None:
    # Nobody listens on port 9: every send fails, so the notification stays to be resent.
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_URL_BASE": "http://127.0.0.1:9/alipay/notify/"}
    shop = make_merchant(name="Console shop", gateway_url=emulator + "gateway.do")
    order = "CON-" + uuid.uuid4().hex[:8].upper()
    start = trades.create_trade(shop, out_trade_no=order, amount="10.00", currency="USD", subject="Tea")
    assert requests.get(start.url, timeout=10).status_code == 200
    control(emulator, "pay", partner=shop.partner, out_trade_no=order)
    console.reload()
    row = console.locator("#notification-list tr", has_text=order)
    before = int(row.locator("td").nth(4).inner_text())

    row.locator("button").click()

    row = console.locator("#notification-list tr", has_text=order)
    assert int(row.locator("td").nth(4).inner_text()) == before + 1
    assert order in console.inner_text("#trades")
    screenshot("emulator-console-notifications")
