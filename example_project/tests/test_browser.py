"""A shopper and a cashier in headless Chromium: checkout to the cashier and back to a paid order; the POS.

The shop runs on pytest-django's live server; Alipay is the test kit's emulator process, whose notifier
posts notifications to the live server by itself, so the order page turns paid on its own, as in the demo.
Missing Chromium or Playwright fails these tests: the shop is only known to read well once a browser has
shown it. Screenshots go to artifacts/screenshots/shop-*.png.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from shop.models import Order, Product

from django_alipay.models import Merchant
from django_alipay.testing import EmulatorProcess
from django_alipay.testing.browser import headless_chromium
from tests.conftest import STAFF_PASSWORD

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

SCREENSHOTS = pathlib.Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), driven by Playwright; fails when either is missing."""
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-GB")
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"shop-{name}.png"), full_page=True)


@pytest.fixture
def shop(
    live_server: Any, alipay_emulator: EmulatorProcess, products: list[Product], settings: Any
) -> Merchant:
    """The shop on the live server, its merchant on the emulator, notifications sent to the live server."""
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_URL_BASE": f"{live_server.url}/alipay/notify/"}
    return alipay_emulator.merchant(sign_type="RSA2", name=django_settings.SHOP_MERCHANT_NAME)


@pytest.mark.alipay_emulator(notifier=True)
def test_a_shopper_pays_at_the_cashier_and_sees_the_order_paid(
    page: Any, live_server: Any, shop: Merchant
) -> None:
    page.goto(live_server.url + "/")
    assert page.locator(".product").count() == len(Product.objects.all())
    shot(page, "01-products")
    page.click("#product-clay-teapot button")
    page.click("#product-celadon-teacup button")
    assert page.inner_text("#nav-cart") == "Cart 2"
    page.click("#nav-cart")
    assert page.inner_text("#cart-total") == "106.00 USD"
    shot(page, "02-cart")

    page.click("#pay-web")  # to Alipay's (the emulator's) cashier
    page.wait_for_selector("#login-form")
    assert "106.00 USD" in page.inner_text("main")
    shot(page, "03-cashier")
    page.fill("#login_id", "buyer@alitest.com")
    page.fill("#password", "111111")
    page.click("#login")
    page.wait_for_selector("#pay")
    shot(page, "04-cashier-confirm")
    page.click("#pay")

    # Back at the shop; the notification arrives by itself and the page's poll shows it.
    page.wait_for_url(f"{live_server.url}/orders/**")
    page.wait_for_selector("#order-status[data-status=paid]", timeout=30_000)
    assert page.inner_text("#order-status") == "Paid"
    assert page.locator(".messages li.info:visible").count() == 0  # no stale "confirming" message
    order = Order.objects.get(number=page.inner_text("#order-number"))
    assert order.paid_at is not None
    assert order.trade is not None
    assert page.inner_text("#trade-no") == order.trade.trade_no
    page.wait_for_timeout(1300)  # let the highlight fade for the picture
    shot(page, "05-order-paid")


@pytest.mark.alipay_emulator(notifier=True)
def test_a_cashier_charges_a_barcode_at_the_point_of_sale(
    page: Any, live_server: Any, shop: Merchant
) -> None:
    User.objects.create_user("mei", password=STAFF_PASSWORD, is_staff=True, is_superuser=True)
    page.goto(live_server.url + "/pos/")  # staff only: the admin's login first
    page.fill("#id_username", "mei")
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#pos-form")
    page.fill("#qty-oolong-tea", "1")
    page.fill("#qty-jasmine-pearls", "2")
    assert page.inner_text("#pos-total") == "90.00 USD"  # the total before charging
    page.click("[data-barcode='2512345678901234']")  # what a scanner would type
    assert page.input_value("#barcode") == "2512345678901234"
    shot(page, "06-pos")
    page.click("#charge-barcode")
    page.wait_for_selector("#order-status[data-status=paid]")
    assert "90.00 USD" in page.inner_text("#total")
    assert page.inner_text("#buyer") == "138****8000"
    assert "Paid at the counter" in page.inner_text("#status-text")
    shot(page, "07-pos-paid")


def _log_in_staff(page: Any, live_server: Any, path: str) -> None:
    User.objects.create_user("mei", password=STAFF_PASSWORD, is_staff=True, is_superuser=True)
    page.goto(f"{live_server.url}/admin/login/?next={path}")
    page.fill("#id_username", "mei")
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")


@pytest.mark.alipay_emulator(notifier=True)
def test_an_order_paid_in_another_tab_hides_its_cashier_button_and_stops_polling(
    page: Any, live_server: Any, shop: Merchant, alipay_emulator: EmulatorProcess
) -> None:
    page.goto(live_server.url + "/")
    page.click("#product-clay-teapot button")
    page.click("#nav-cart")
    page.click("#pay-web")
    page.wait_for_selector("#login-form")
    number = page.inner_text("#out-trade-no")
    page.goto(f"{live_server.url}/orders/{number}/")  # the order page, still waiting
    assert page.locator("#continue-payment").is_visible()

    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "status.json" in request.url else None)
    alipay_emulator.pay(number)  # the buyer pays in another tab; the notification follows by itself
    page.wait_for_selector("#order-status[data-status=paid]", timeout=30_000)

    assert not page.locator("#continue-payment").is_visible()
    assert page.inner_text("#live") == ""
    seen = len(polls)
    page.wait_for_timeout(4500)  # two poll intervals: a final order is not asked about again
    assert len(polls) == seen
    shot(page, "08-order-paid-elsewhere")

    # An old cashier link (a bookmark, the back button) says the order is paid, and leads back.
    order = Order.objects.get(number=number)
    assert order.trade is not None
    page.goto(order.trade.payment_url)
    assert page.inner_text("#error-code") == "TRADE_HAS_SUCCESS"
    page.click("#error-back")
    page.wait_for_url(f"{live_server.url}/orders/{number}/")


@pytest.mark.alipay_emulator(notifier=True)
def test_a_pos_payment_confirmed_after_an_unknown_answer_shows_no_error(
    page: Any, live_server: Any, shop: Merchant, alipay_emulator: EmulatorProcess
) -> None:
    _log_in_staff(page, live_server, "/pos/")
    page.wait_for_selector("#pos-form")
    page.fill("#qty-oolong-tea", "1")
    page.fill("#barcode", "290000000000000006")  # the emulator's slow buyer: UNKNOW, paid later
    page.click("#charge-barcode")
    page.wait_for_selector("#order-status")
    number = page.inner_text("#order-number")

    alipay_emulator.pay(partner_trans_id=number)
    page.wait_for_selector("#order-status[data-status=paid]", timeout=30_000)

    assert not page.locator("#problem").is_visible()
    assert "UNKNOW" not in page.inner_text("main")
    page.reload()
    assert not page.locator("#problem").is_visible()
    shot(page, "09-pos-paid-after-unknown")


def _paid_order(page: Any, live_server: Any, alipay_emulator: EmulatorProcess) -> Order:
    """An online order for the clay teapot (88.00 USD), paid at the emulator; the page is on its order."""
    page.goto(live_server.url + "/")
    page.click("#product-clay-teapot button")
    page.click("#nav-cart")
    page.click("#pay-web")
    page.wait_for_selector("#login-form")
    number = page.inner_text("#out-trade-no")
    alipay_emulator.pay(number)
    page.goto(f"{live_server.url}/orders/{number}/")
    page.wait_for_selector("#order-status[data-status=paid]", timeout=30_000)
    return Order.objects.get(number=number)


@pytest.mark.alipay_emulator(notifier=True)
def test_the_browsable_apis_refund_form_refunds_and_keeps_what_was_typed_after_a_refusal(
    page: Any, live_server: Any, shop: Merchant, alipay_emulator: EmulatorProcess
) -> None:
    order = _paid_order(page, live_server, alipay_emulator)
    assert order.trade is not None
    _log_in_staff(page, live_server, f"/alipay/api/trades/{order.trade.pk}/refunds/")
    form = page.locator("#post-object-form form")
    form.wait_for()
    assert page.inner_text(".content-main h1") == "Refunds"  # not "Refund list create"
    assert form.locator("input[name=currency]").input_value() == ""  # the trade's currency unless typed
    first_key = form.locator("input[name=idempotency_key]").input_value()
    assert first_key

    form.locator("input[name=amount]").fill("500.00")
    form.locator("input[name=reason]").fill("Chipped lid")
    form.locator(".form-actions button").click()
    page.wait_for_selector(".response-info")
    assert "refund_amount_exceeded" in page.inner_text(".response-info")
    form = page.locator("#post-object-form form")
    assert form.locator("input[name=amount]").input_value() == "500.00"  # what was typed, kept
    assert form.locator("input[name=reason]").input_value() == "Chipped lid"
    assert form.locator("input[name=idempotency_key]").input_value() not in ("", first_key)
    shot(page, "10-api-refund-refused")

    form.locator("input[name=amount]").fill("8.00")
    form.locator(".form-actions button").click()
    page.wait_for_selector(".response-info")
    assert "HTTP 201 Created" in page.inner_text(".response-info")
    (refund,) = order.trade.refunds.all()
    assert (refund.amount, refund.reason) == (Decimal("8.00"), "Chipped lid")
    shot(page, "11-api-refund-made")


def test_the_api_root_links_interactive_docs_served_without_the_internet(
    page: Any, live_server: Any, shop: Merchant
) -> None:
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(live_server.url) else outside.append(r.url))
    _log_in_staff(page, live_server, "/alipay/api/")
    page.wait_for_selector(".response-info")
    assert f"{live_server.url}/alipay/api/docs/" in page.inner_text(".response-info")

    page.goto(f"{live_server.url}/alipay/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "django-alipay-global REST API" in page.inner_text(".swagger-ui .info .title")
    assert "Refund part or all of a trade" in page.inner_text(".swagger-ui")
    shot(page, "12-api-docs")
    assert outside == []


@pytest.mark.alipay_emulator(notifier=True)
def test_the_cashier_fits_a_phone(browser: Any, live_server: Any, shop: Merchant) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB", is_mobile=True)
    phone = context.new_page()
    try:
        phone.goto(live_server.url + "/")
        phone.click("#product-clay-teapot button")
        phone.click("#nav-cart")
        phone.click("#pay-web")
        phone.wait_for_selector("#login-form")

        assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        shot(phone, "13-cashier-phone")
    finally:
        context.close()
