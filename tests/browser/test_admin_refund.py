"""A shop owner in a real browser: a trade paid via the emulator, a partial refund, a late reverse refused."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.contrib.auth.models import Permission, User

from django_alipay.domain import clock as domain_clock
from django_alipay.domain import trades
from django_alipay.models import Merchant, Notification, Refund, Trade
from django_alipay.protocol.clock import BEIJING, FixedClock, beijing_date
from tests.browser.conftest import control

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PASSWORD = "a-long-test-password"
#: The emulator's slow buyer: spot.pay answers UNKNOW and waits until the payment is made via control/pay.
SLOW_BUYER_BARCODE = "290000000000000006"


@pytest.fixture
def shop(live_server: Any, emulator: str, make_merchant: Callable[..., Merchant], settings: Any) -> Merchant:
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_URL_BASE": f"{live_server.url}/alipay/notify/"}
    return make_merchant(name="Teahouse Lin", gateway_url=emulator + "gateway.do")


class Clocks:
    """The shop's domain clock and the emulator's business clock, standing and moving together."""

    def __init__(self, emulator: str, start: datetime) -> None:
        self.emulator = emulator
        self.domain = FixedClock(start)
        domain_clock.set_clock(self.domain)
        control(emulator, "clock", now=start.isoformat())

    def advance(self, seconds: float) -> None:
        self.domain.advance(seconds=seconds)
        control(self.emulator, "clock", advance=seconds)

    def set(self, when: datetime) -> None:
        self.domain.set(when)
        control(self.emulator, "clock", now=when.isoformat())


@pytest.fixture
def clock(emulator: str) -> Any:
    """Both clocks at 10:00 Beijing time today: refunds are synchronous then (not 00:00-01:30)."""
    clocks = Clocks(emulator, datetime.now(BEIJING).replace(hour=10, minute=0, second=0, microsecond=0))
    yield clocks
    domain_clock.set_clock(None)
    control(emulator, "clock", now="real")


@pytest.fixture
def cashier(db: None) -> User:
    """A staff member who may see, refund, reverse and update trades (not a superuser)."""
    user = User.objects.create_user("mei", password=PASSWORD, is_staff=True)
    codenames = [
        "view_merchant",  # the merchants whose trades they see (the merchant policy)
        "view_trade",
        "view_refund",
        "view_notification",
        "refund_trade",
        "reverse_trade",
        "sync_trade",
    ]
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_alipay", codename__in=codenames)
    )
    return user


def log_in(page: Any, live_server: Any, user: User) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def deliver_notifications(emulator: str, out_trade_no: str) -> list[dict[str, Any]]:
    """Have the emulator send what is due, and return the sends made for this order."""
    control(emulator, "deliver")
    listing = requests.get(
        emulator + "control/notifications", params={"out_trade_no": out_trade_no}, timeout=10
    )
    return list(listing.json()["deliveries"])


def messages_on(page: Any) -> list[str]:
    return [text.strip() for text in page.locator("ul.messagelist li").all_inner_texts()]


def test_a_shop_owner_refunds_part_of_a_paid_trade(
    page: Any, screenshot: Any, live_server: Any, emulator: str, shop: Merchant, cashier: User, clock: Clocks
) -> None:
    order = "TEA-" + uuid.uuid4().hex[:8].upper()
    start = trades.create_trade(
        shop, out_trade_no=order, amount="88.00", currency="USD", subject="Celadon teapot"
    )
    assert requests.get(start.url, timeout=10).status_code == 200  # the buyer reaches the cashier
    clock.advance(95)  # the buyer logs in and pays
    control(emulator, "pay", partner=shop.partner, out_trade_no=order)
    sends = deliver_notifications(emulator, order)
    assert [(s["status_code"], s["response_text"]) for s in sends] == [(200, "success")], sends
    trade = Trade.objects.get(pk=start.trade.pk)
    assert trade.status == "TRADE_FINISHED"
    clock.advance(3 * 3600 + 17 * 60)  # the buyer writes in the afternoon: the spout is chipped

    log_in(page, live_server, cashier)
    page.goto(f"{live_server.url}/admin/django_alipay/trade/")
    row = page.locator("#result_list tbody tr", has_text=order)
    assert "Paid (finished)" in row.inner_text()
    assert "88.00 USD" in row.inner_text()
    screenshot("01-trade-list")
    page.set_viewport_size({"width": 1280, "height": 900})  # a laptop: every column still shows
    results = page.locator("#changelist .results")
    assert results.evaluate("e => e.scrollWidth <= e.clientWidth"), "the trade list's columns are clipped"
    page.set_viewport_size({"width": 1440, "height": 900})

    row.locator("input[name=_selected_action]").check()
    page.select_option("select[name=action]", "refund_partially")
    page.click("button[name=index]")
    page.wait_for_selector("#alipay-submit-refund")
    assert page.inner_text("#alipay-refundable") == "88.00 USD"
    page.fill("input[name=amount]", "30.00")
    page.fill("input[name=reason]", "Chipped spout")
    screenshot("02-refund-form")

    page.click("#alipay-submit-refund")
    page.wait_for_selector("#alipay-timeline")
    assert messages_on(page) == [f"Refund of 30.00 USD for order {order} succeeded."]
    assert page.inner_text("#alipay-refundable") == "58.00 USD"
    timeline = page.inner_text("#alipay-timeline")
    for step in (
        "Order created",
        "Paid",
        "Alipay reported TRADE_FINISHED: applied",
        "Refund of 30.00 USD succeeded",
    ):
        assert step in timeline, step
    screenshot("03-trade-after-refund")
    page.goto(f"{live_server.url}/admin/django_alipay/refund/")
    assert "Succeeded" in page.locator("#result_list tbody tr", has_text=order).inner_text()
    screenshot("11-refund-ledger")
    page.goto(f"{live_server.url}/admin/django_alipay/notification/")
    screenshot("12-notification-log")
    page.goto(f"{live_server.url}/admin/django_alipay/trade/{trade.pk}/change/")

    refund = Refund.objects.get(trade=trade)
    assert (refund.status, refund.amount, refund.reason) == ("succeeded", Decimal("30.00"), "Chipped spout")
    calls = requests.get(emulator + "control/calls", params={"service": "forex_refund"}, timeout=10).json()
    assert [c["params"]["out_return_no"] for c in calls["calls"]] == [refund.gateway_refund_id]

    # A wrong amount is refused in words, on the same page, and nothing is sent.
    page.goto(f"{live_server.url}/admin/django_alipay/trade/{trade.pk}/refund/")
    page.fill("input[name=amount]", "58.01")
    page.click("#alipay-submit-refund")
    page.wait_for_selector(".errorlist")
    assert "58.00 USD" in page.inner_text(".errorlist")
    screenshot("04-refund-form-too-much")
    assert Refund.objects.filter(trade=trade).count() == 1


def test_the_day_after_an_in_store_payment_the_reversal_is_refused_and_a_refund_offered(
    page: Any,
    screenshot: Any,
    live_server: Any,
    emulator: str,
    shop: Merchant,
    cashier: User,
    clock: Clocks,
) -> None:
    order = "POS-" + uuid.uuid4().hex[:8].upper()
    start = trades.create_trade(
        shop,
        out_trade_no=order,
        amount="42.00",
        currency="USD",
        subject="Oolong, 250 g",
        product="barcode",
        buyer_identity_code=SLOW_BUYER_BARCODE,
    )
    assert start.trade.status == "WAIT_BUYER_PAY"  # the buyer has not confirmed yet
    clock.advance(40)
    control(emulator, "pay", partner=shop.partner, partner_trans_id=order)
    assert deliver_notifications(emulator, order)
    trade = Trade.objects.get(pk=start.trade.pk)
    assert trade.status == "TRADE_SUCCESS"
    assert trade.paid_at is not None

    # The day of payment (Beijing time): a reversal is offered.
    clock.advance(600)
    log_in(page, live_server, cashier)
    change = f"{live_server.url}/admin/django_alipay/trade/{trade.pk}/change/"
    page.goto(change)
    assert page.locator("#alipay-reverse-button").is_visible()

    # The next Beijing day: refused, with the reason, and a refund offered instead.
    paid_day = beijing_date(trade.paid_at)
    clock.set(
        datetime.combine(paid_day + timedelta(days=1), datetime.min.time(), BEIJING) + timedelta(hours=9)
    )
    page.goto(change)
    assert page.locator("#alipay-reverse-button").count() == 0
    refusal = page.inner_text("#alipay-reverse-refusal")
    assert f"paid on {paid_day.isoformat()} (Beijing time)" in refusal
    assert "refund it instead" in refusal
    screenshot("05-trade-next-day")

    page.goto(f"{live_server.url}/admin/django_alipay/trade/")
    page.locator("#result_list tbody tr", has_text=order).locator("input[name=_selected_action]").check()
    page.select_option("select[name=action]", "reverse_trades")
    page.click("button[name=index]")
    page.wait_for_selector("table.alipay-rows")
    assert "only possible on the day of payment" in page.inner_text("table.alipay-rows")
    screenshot("06-reverse-action-refused")

    page.goto(f"{live_server.url}/admin/django_alipay/trade/{trade.pk}/reverse/")
    assert "only possible on the day of payment" in page.inner_text("#alipay-refusal")
    assert page.locator("#alipay-submit-reverse").count() == 0
    screenshot("07-reverse-page-refused")
    page.click("#alipay-refund-instead")
    page.wait_for_selector("#alipay-submit-refund")
    page.fill("input[name=amount]", "12.00")
    page.click("#alipay-submit-refund")
    page.wait_for_selector("#alipay-timeline")
    assert messages_on(page) == [f"Refund of 12.00 USD for order {order} succeeded."]
    screenshot("08-instore-trade-after-refund")
    assert not Refund.objects.filter(trade=trade, kind="REVERSE").exists()
    assert Trade.objects.get(pk=trade.pk).refunded_amount == Decimal("12.00")


def test_markup_sent_in_a_notification_never_runs_in_the_admin(
    page: Any, screenshot: Any, live_server: Any, shop: Merchant, cashier: User
) -> None:
    note = Notification.objects.create(
        merchant=shop,
        kind="trade",
        out_trade_no="<script>alert('out_trade_no')</script>",
        params={"subject": "<script>alert('subject')</script>", "body": "<img src=x onerror=alert('body')>"},
        body=b"subject=%3Cscript%3Ealert%28%27subject%27%29%3C%2Fscript%3E",
        verification="rejected",
        outcome="rejected",
        flag="bad_signature",
    )
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, live_server, cashier)
    page.goto(f"{live_server.url}/admin/django_alipay/notification/")
    page.goto(f"{live_server.url}/admin/django_alipay/notification/{note.pk}/change/")
    assert re.search(r"<script>alert\('subject'\)</script>", page.inner_text("#content-main"))
    screenshot("09-notification-escaped")
    assert dialogs == []


def test_the_shop_owner_tests_the_merchant_credentials_against_the_gateway(
    page: Any, screenshot: Any, live_server: Any, shop: Merchant, db: None
) -> None:
    owner = User.objects.create_user("lin", password=PASSWORD, is_staff=True)
    owner.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_alipay",
            codename__in=["view_merchant", "change_merchant", "view_trade"],
        )
    )
    log_in(page, live_server, owner)
    page.goto(f"{live_server.url}/admin/django_alipay/merchant/{shop.pk}/change/")
    assert page.input_value("#alipay-notify-url") == f"{live_server.url}/alipay/notify/{shop.notify_token}/"
    assert page.locator("input[name=md5_key]").get_attribute("type") == "password"
    assert page.input_value("input[name=md5_key]") == ""
    page.click("#alipay-test-credentials")
    page.wait_for_selector("ul.messagelist")
    [message] = messages_on(page)
    assert message.startswith("Teahouse Lin: The credentials work")
    assert "TRADE_NOT_EXIST" in message
    screenshot("10-merchant-credentials")


def paid_online_trade(emulator: str, shop: Merchant, clock: Clocks, amount: str = "88.00") -> Trade:
    """An online trade paid at the emulator, its notification applied."""
    order = "TEA-" + uuid.uuid4().hex[:8].upper()
    start = trades.create_trade(shop, out_trade_no=order, amount=amount, currency="USD", subject="Teapot")
    assert requests.get(start.url, timeout=10).status_code == 200
    clock.advance(60)
    control(emulator, "pay", partner=shop.partner, out_trade_no=order)
    assert deliver_notifications(emulator, order)
    return Trade.objects.get(pk=start.trade.pk)


def test_the_refund_form_speaks_of_what_is_left_trims_spaces_and_asks_before_a_repeat(
    page: Any, screenshot: Any, live_server: Any, emulator: str, shop: Merchant, cashier: User, clock: Clocks
) -> None:
    trade = paid_online_trade(emulator, shop, clock)
    clock.advance(3600)
    log_in(page, live_server, cashier)
    form = f"{live_server.url}/admin/django_alipay/trade/{trade.pk}/refund/"

    page.goto(form)
    page.fill("input[name=amount]", "200000000.00")  # beyond Alipay's limit, and far beyond what is left
    page.click("#alipay-submit-refund")
    page.wait_for_selector(".errorlist")
    assert page.inner_text(".errorlist") == "At most 88.00 USD is left to refund on this order."
    page.fill("input[name=amount]", "0.00")
    page.click("#alipay-submit-refund")
    page.wait_for_selector(".errorlist")
    assert page.inner_text(".errorlist") == "The smallest refund is 0.01 USD."

    page.fill("input[name=amount]", " 8.00 ")  # pasted with spaces
    page.fill("input[name=reason]", "  Chipped lid ")
    page.click("#alipay-submit-refund")
    page.wait_for_selector("#alipay-timeline")
    refund = Refund.objects.get(trade=trade)
    assert (refund.amount, refund.reason) == (Decimal("8.00"), "Chipped lid")

    # The same amount a moment later (a second tab, a double check): asked first, sent only when confirmed.
    clock.advance(60)
    page.goto(form)
    page.fill("input[name=amount]", "8.00")
    page.click("#alipay-submit-refund")
    page.wait_for_selector(".errorlist.nonfield")
    assert "A refund of 8.00 USD was made on this order 1 minute(s) ago" in page.inner_text(".errorlist")
    assert Refund.objects.filter(trade=trade).count() == 1
    screenshot("13-refund-repeat-asked")
    page.check("input[name=repeat]")

    # While the refund is on its way (it may wait for the 3-second spacing), the page says so.
    page.evaluate(
        "document.getElementById('alipay-refund-form').addEventListener('submit', e => e.preventDefault())"
    )
    page.click("#alipay-submit-refund")
    assert page.input_value("#alipay-submit-refund") == "Sending to Alipay…"
    assert page.locator("#alipay-sending").is_visible()
    screenshot("14-refund-sending")
    page.evaluate("HTMLFormElement.prototype.submit.call(document.getElementById('alipay-refund-form'))")
    page.wait_for_selector("#alipay-timeline")
    assert sorted(r.amount for r in Refund.objects.filter(trade=trade)) == [Decimal("8.00"), Decimal("8.00")]


def paid_at_the_pos(emulator: str, shop: Merchant, amount: str, subject: str) -> Trade:
    """An in-store trade at the real time: the buyer's barcode scanned, the payment confirmed at the emulator
    and its notification applied."""
    order = "POS-" + uuid.uuid4().hex[:8].upper()
    start = trades.create_trade(
        shop,
        out_trade_no=order,
        amount=amount,
        currency="USD",
        subject=subject,
        product="barcode",
        buyer_identity_code=SLOW_BUYER_BARCODE,
    )
    control(emulator, "pay", partner=shop.partner, partner_trans_id=order)
    assert deliver_notifications(emulator, order)
    trade = Trade.objects.get(pk=start.trade.pk)
    assert trade.status == "TRADE_SUCCESS"
    return trade


def test_a_second_reverse_from_another_tab_says_already_reversed(
    page: Any, screenshot: Any, live_server: Any, emulator: str, shop: Merchant, cashier: User
) -> None:
    # Real clocks: the gateway refuses a reverse whose timestamp is far from its own clock.
    trade = paid_at_the_pos(emulator, shop, "42.00", "Oolong, 250 g")
    order = trade.out_trade_no
    log_in(page, live_server, cashier)
    reverse_page = f"{live_server.url}/admin/django_alipay/trade/{trade.pk}/reverse/"
    other_tab = page.context.new_page()
    other_tab.goto(reverse_page)  # opened before the first reversal
    page.goto(reverse_page)
    page.click("#alipay-submit-reverse")
    page.wait_for_selector("#alipay-timeline")
    assert messages_on(page) == [f"Reversal of 42.00 USD for order {order} succeeded."]

    other_tab.click("#alipay-submit-reverse")
    other_tab.wait_for_load_state()
    other_tab.goto(reverse_page)

    assert "has already been reversed" in other_tab.inner_text("#alipay-refusal")
    assert "closed" not in other_tab.inner_text("#alipay-refusal")
    assert other_tab.locator("#alipay-refund-instead").count() == 0
    assert Refund.objects.filter(trade=trade, kind="REVERSE").count() == 1
    screenshot("15-reverse-again-refused")
    other_tab.goto(f"{live_server.url}/admin/django_alipay/trade/")
    row = other_tab.locator("#result_list tbody tr", has_text=order)
    assert "Reversed" in row.inner_text()  # not just "Closed", like an order never paid
    assert "Closed" not in row.inner_text()


def test_a_reversal_refused_because_only_the_emulator_clock_moved_says_which_clock_to_set(
    page: Any, screenshot: Any, live_server: Any, emulator: str, shop: Merchant, cashier: User
) -> None:
    # Paid at real time; then only the emulator's clock is moved a day on, as a developer does on its
    # console. The shop still says "today", so the admin offers the reversal; the gateway refuses its
    # timestamp, and the owner must be told why, not left with a bare ILLEGAL_ARGUMENT.
    trade = paid_at_the_pos(emulator, shop, "18.00", "Jasmine, 100 g")
    control(emulator, "clock", advance=24 * 3600)
    try:
        log_in(page, live_server, cashier)
        page.goto(f"{live_server.url}/admin/django_alipay/trade/{trade.pk}/reverse/")
        page.click("#alipay-submit-reverse")
        page.wait_for_selector("ul.messagelist")
        [message] = messages_on(page)
        screenshot("16-reverse-refused-clock-moved")
    finally:
        control(emulator, "clock", now="real")
    assert "ILLEGAL_ARGUMENT" in message
    assert "Alipay's clock is 24 h 00 min ahead of this server's" in message
    assert "set it back to real time on the emulator's console" in message
    trade.refresh_from_db()
    assert trade.status == "TRADE_SUCCESS"  # nothing was reversed
